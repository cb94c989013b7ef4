"""values.schema.json: helm refuses wrong types and out-of-range values, naming the field."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.chart.helm import CHART, Helm, one

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
    ({"gate": {"drainToken": {"value": "short"}}}, "/gate/drainToken/value"),
    # Moved under gate (the gate's, from the dependency): refused, not ignored.
    ({"drainToken": {"value": "x" * 32}}, "drainToken"),
    ({"gate": {"enabled": "yes"}}, "/gate/enabled"),
    # "false" as a string is truthy in a template: it would keep the feature on.
    ({"gate": {"skipUnchangedPods": "false"}}, "/gate/skipUnchangedPods"),
    ({"gate": {"skipUnchangedPods": 0}}, "/gate/skipUnchangedPods"),
    ({"gate": {"releaseOnRollback": "false"}}, "/gate/releaseOnRollback"),
    ({"gate": {"releaseOnRollback": 1}}, "/gate/releaseOnRollback"),
    ({"gate": {"timeoutSeconds": 0}}, "/gate/timeoutSeconds"),
    ({"gate": {"timeoutSeconds": "3m"}}, "/gate/timeoutSeconds"),
    ({"gate": {"timeoutSeconds": 10.5}}, "/gate/timeoutSeconds"),
    ({"gate": {"activeDeadlineSeconds": -5}}, "/gate/activeDeadlineSeconds"),
    ({"gate": {"pollSeconds": 61}}, "/gate/pollSeconds"),
    ({"gate": {"leaseSeconds": 0}}, "/gate/leaseSeconds"),
    ({"gate": {"holdSeconds": -1}}, "/gate/holdSeconds"),
    ({"gate": {"backoffLimit": 100}}, "/gate/backoffLimit"),
    ({"gate": {"hookKind": "Deployment"}}, "/gate/hookKind"),
    ({"gate": {"hookKind": "pod"}}, "/gate/hookKind"),
    ({"gate": {"outputLogPolicy": ["always"]}}, "/gate/outputLogPolicy"),
    ({"gate": {"image": {"pullPolicy": "Sometimes"}}}, "/gate/image/pullPolicy"),
    # The hook has no image to fall back on: the app's carries no hook.
    ({"gate": {"image": {"repository": ""}}}, "/gate/image/repository"),
    # Required by the dependency's own schema, which helm checks under the alias gate.
    ({"gate": {"image": {"repository": None}}}, "repository"),
    ({"gate": {"image": {"repository": "Registry.example/Hook"}}}, "/gate/image/repository"),
    ({"gate": {"image": {"repository": "registry.example/hook/"}}}, "/gate/image/repository"),
    ({"gate": {"image": {"tag": 2}}}, "/gate/image/tag"),
    ({"gate": {"image": {"tag": "-latest"}}}, "/gate/image/tag"),
    ({"gate": {"image": {"digest": "sha256:short"}}}, "/gate/image/digest"),
    ({"gate": {"image": {"registry": "ghcr.io"}}}, "registry"),
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
    {"gate": {"skipUnchangedPods": False, "releaseOnRollback": False}},
    {"podDisruptionBudget": {"enabled": True, "minAvailable": "50%"}},
    {"image": {"repository": "registry.example:5000/team/app", "tag": "1.2.3-rc.1"}},
    {"gate": {"image": {"repository": "registry.example:5000/team/hook", "tag": "1.2.3"}}},
    {"gate": {"image": {"tag": "", "digest": "sha256:" + "c" * 64, "pullPolicy": "Always"}}},
    {"gate": {"drainToken": {"existingSecret": "my-token", "key": "drain.token"}}},
    {"global": {"anything": True}},
]


@pytest.mark.parametrize("values", ACCEPTED, ids=[str(v) for v in ACCEPTED])
def test_schema_accepts(helm: Helm, values: dict[str, Any]) -> None:
    assert one(helm.template(values), "Deployment")


# -- null: Helm's "delete this key" -------------------------------------------------


def accepts_null(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(accepts_null(s) for s in [*schema.get("oneOf", []), *schema.get("anyOf", [])])


def required_gaps(schema: dict[str, Any], defaults: Any, path: str = "") -> list[str]:
    """Keys values.yaml sets to something that the schema does not require.

    Exempt: defaults of null, "", [] or {} (a null leaves the same nothing),
    and keys whose schema accepts null (it is one of their values).
    """
    properties = schema.get("properties")
    if not properties or not isinstance(defaults, dict):
        return []
    required = set(schema.get("required", []))
    gaps = []
    for key, value in defaults.items():
        if value in (None, "", [], {}) or key not in properties or accepts_null(properties[key]):
            continue
        if key not in required:
            gaps.append(f"{path}/{key}")
        gaps += required_gaps(properties[key], value, f"{path}/{key}")
    return gaps


def test_every_value_with_a_default_is_required() -> None:
    # Helm reads a null value (`enabled:` left empty in a values file, --set
    # x=null) as "remove the key, default included": the template then sees
    # nothing, which is false, 0 or an empty securityContext, and a schema
    # checks only the keys present. Required keys turn that into a refusal.
    schema = json.loads((CHART / "values.schema.json").read_text())
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    assert required_gaps(schema, defaults) == []


NULLED: list[tuple[dict[str, Any], str]] = [
    # Each was rendered before: no gate at all, no fence, a hook that refuses
    # --timeout 0 on every upgrade, gunicorn with 0 threads, a Deployment
    # with no replicas field, pods without their restricted security context.
    ({"gate": {"enabled": None}}, "enabled"),
    ({"gate": {"fence": None}}, "fence"),
    ({"gate": {"skipUnchangedPods": None}}, "skipUnchangedPods"),
    ({"gate": {"releaseOnRollback": None}}, "releaseOnRollback"),
    ({"gate": {"timeoutSeconds": None}}, "timeoutSeconds"),
    ({"gate": {"hookKind": None}}, "hookKind"),
    ({"app": {"threads": None}}, "threads"),
    ({"replicaCount": None}, "replicaCount"),
    ({"podSecurityContext": None}, "podSecurityContext"),
]


@pytest.mark.parametrize(("values", "key"), NULLED, ids=[f"{key}=null" for _, key in NULLED])
def test_a_null_value_is_refused_not_read_as_false(
    helm: Helm, values: dict[str, Any], key: str
) -> None:
    message = helm.template_error(values)
    assert "schema" in message
    assert key in message


def test_the_gate_schema_is_the_dependencys_without_its_required() -> None:
    # Helm checks the gate's values with the dependency's own schema, required keys
    # included, once its defaults are in; this chart's copy names the same keys (a typo
    # is refused with the path /gate/...), and requires only what its own values.yaml
    # sets, as `helm lint` does not merge the dependency's defaults in.
    def without_required(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: without_required(v) for k, v in node.items() if k != "required"}
        if isinstance(node, list):
            return [without_required(v) for v in node]
        return node

    gate = json.loads((CHART / "values.schema.json").read_text())["properties"]["gate"]
    dependency = json.loads((CHART / "charts/upgrade-gate-hook/values.schema.json").read_text())
    assert without_required(gate["properties"]) == without_required(dependency["properties"])
    assert gate["additionalProperties"] is dependency["additionalProperties"] is False
    assert set(gate["required"]) <= set(dependency["required"])


def test_a_null_gate_is_refused(helm: Helm) -> None:
    # Helm fills gate back in with the dependency's defaults, whose selector is empty:
    # refused by the gate's own check, in one line, rather than a gate of no pods.
    message = helm.template_error({"gate": None})
    assert "gate: selector.matchLabels is empty" in message
