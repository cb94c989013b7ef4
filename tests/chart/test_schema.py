"""values.schema.json: helm refuses wrong types and out-of-range values, naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.helm import Helm, one

pytestmark = pytest.mark.chart

REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"replicaCount": "two"}, "/replicaCount"),
    ({"replicaCount": -1}, "/replicaCount"),
    ({"replicaCount": 1.5}, "/replicaCount"),
    ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ({"image": {"repository": ""}}, "/image/repository"),
    ({"image": {"tag": 1.0}}, "/image/tag"),
    ({"image": {"digest": "sha256:short"}}, "/image/digest"),
    ({"service": {"type": "Ingress"}}, "/service/type"),
    ({"service": {"port": 70000}}, "/service/port"),
    ({"app": {"logLevel": "verbose"}}, "/app/logLevel"),
    ({"app": {"operationDefaultSeconds": 0}}, "/app/operationDefaultSeconds"),
    ({"app": {"shutdownTimeoutSeconds": 0}}, "/app/shutdownTimeoutSeconds"),
    ({"app": {"shutdownTimeoutSeconds": "5m"}}, "/app/shutdownTimeoutSeconds"),
    ({"app": {"preStopSleepSeconds": -1}}, "/app/preStopSleepSeconds"),
    ({"app": {"threads": 1}}, "/app/threads"),
    ({"drainToken": {"value": "short"}}, "/drainToken/value"),
    ({"gate": {"enabled": "yes"}}, "/gate/enabled"),
    ({"gate": {"timeoutSeconds": 0}}, "/gate/timeoutSeconds"),
    ({"gate": {"timeoutSeconds": "3m"}}, "/gate/timeoutSeconds"),
    ({"gate": {"timeoutSeconds": 10.5}}, "/gate/timeoutSeconds"),
    ({"gate": {"activeDeadlineSeconds": -5}}, "/gate/activeDeadlineSeconds"),
    ({"gate": {"pollSeconds": 61}}, "/gate/pollSeconds"),
    ({"gate": {"leaseSeconds": 0}}, "/gate/leaseSeconds"),
    ({"gate": {"holdSeconds": -1}}, "/gate/holdSeconds"),
    ({"gate": {"backoffLimit": 100}}, "/gate/backoffLimit"),
    ({"gate": {"outputLogPolicy": ["always"]}}, "/gate/outputLogPolicy"),
    ({"gate": {"image": {"pullPolicy": "Sometimes"}}}, "/gate/image/pullPolicy"),
    ({"podDisruptionBudget": {"minAvailable": "half"}}, "/podDisruptionBudget/minAvailable"),
    # A misspelt key must not fall back to the default in silence.
    ({"gate": {"timeout": 60}}, "timeout"),
    ({"replicas": 3}, "replicas"),
]


@pytest.mark.parametrize(
    ("values", "field"), REFUSED, ids=[f"{field}={values}" for values, field in REFUSED]
)
def test_schema_refuses(helm: Helm, values: dict[str, Any], field: str) -> None:
    message = helm.template_error(values)
    assert "schema" in message
    assert field in message


ACCEPTED: list[dict[str, Any]] = [
    {"replicaCount": 0},
    {"gate": {"activeDeadlineSeconds": None, "helmTimeoutSeconds": None}},
    {"gate": {"outputLogPolicy": []}},
    {"gate": {"ttlSecondsAfterFinished": 3600}},
    {"podDisruptionBudget": {"enabled": True, "minAvailable": "50%"}},
    {"image": {"repository": "registry.example:5000/team/app", "tag": "1.2.3-rc.1"}},
    {"drainToken": {"existingSecret": "my-token", "key": "drain.token"}},
    {"global": {"anything": True}},
]


@pytest.mark.parametrize("values", ACCEPTED, ids=[str(v) for v in ACCEPTED])
def test_schema_accepts(helm: Helm, values: dict[str, Any]) -> None:
    assert one(helm.template(values), "Deployment")
