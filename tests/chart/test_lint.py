"""`helm lint --strict` is clean with every helm, for the defaults and every option."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.helm import Helm, chart_copy

pytestmark = pytest.mark.chart

SETS: dict[str, dict[str, Any] | None] = {
    "defaults": None,
    "gate-off": {"gate": {"enabled": False}},
    "gate-every-pod-no-release": {"gate": {"skipUnchangedPods": False, "releaseOnRollback": False}},
    "everything": {
        "replicaCount": 3,
        "image": {"repository": "registry.example/app", "tag": "2", "pullPolicy": "Never"},
        "imagePullSecrets": [{"name": "pull"}],
        "app": {
            "version": "2.0.0",
            "preStopSleepSeconds": 0,
            "extraEnv": [{"name": "X", "value": "1"}],
        },
        "service": {"type": "LoadBalancer", "annotations": {"a": "b"}},
        "podDisruptionBudget": {"enabled": True, "minAvailable": "50%"},
        "priorityClassName": "high",
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        },
        "gate": {
            "drainToken": {"existingSecret": "ops-token"},
            "imagePullSecrets": [{"name": "pull"}],
            "priorityClassName": "high",
            "preRollback": True,
            "fence": False,
            "timeoutSeconds": 900,
            "activeDeadlineSeconds": 960,
            "helmTimeoutSeconds": 1200,
            "ttlSecondsAfterFinished": 86400,
            "outputLogPolicy": ["hook-failed"],
            "image": {"repository": "hook", "tag": "1", "pullPolicy": "Always"},
            "logLevel": "DEBUG",
            "podAnnotations": {"a": "b"},
            "nodeSelector": {"kubernetes.io/os": "linux"},
        },
    },
}


@pytest.mark.parametrize("name", sorted(SETS))
def test_lint_strict_is_clean(helm: Helm, name: str) -> None:
    result = helm.lint(SETS[name])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout
    assert "[ERROR]" not in result.stdout


def test_lint_catches_a_broken_chart(helm: Helm) -> None:
    # The lint test must be able to fail: a template helm cannot parse.
    with chart_copy() as chart:
        (chart / "templates" / "broken.yaml").write_text("{{ if }}\n")
        result = helm.lint(chart=chart)
    assert result.returncode != 0
