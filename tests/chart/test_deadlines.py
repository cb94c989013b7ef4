"""gate timeout < Job activeDeadlineSeconds < helm --timeout, refused at render otherwise."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.chart.helm import (
    NAMESPACE,
    RELEASE,
    Helm,
    Manifest,
    annotations_of,
    container,
    flag,
    gate_hook,
    one,
)

pytestmark = pytest.mark.chart

HOOK = f"{RELEASE}-upgrade-gate-hook"


def timings(docs: list[Manifest]) -> tuple[int, int, int]:
    """(gate --timeout, Job activeDeadlineSeconds, the helm --timeout the chart asks for)."""
    job = gate_hook(docs)
    gate = int(flag(container(job, "gate")["args"], "--timeout"))
    helm_timeout = annotations_of(job)["upgrade-gate/helm-timeout"]
    assert helm_timeout.endswith("s")
    return gate, int(job["spec"]["activeDeadlineSeconds"]), int(helm_timeout[:-1])


def test_defaults_fit_helms_default_timeout(default_render: list[Manifest]) -> None:
    # Helm's default --timeout is 5m: the defaults must work without one.
    assert timings(default_render) == (180, 240, 300)


@pytest.mark.parametrize(
    "gate_values",
    [
        {"timeoutSeconds": 1},
        {"timeoutSeconds": 600},
        {"timeoutSeconds": 600, "activeDeadlineSeconds": 601},
        {"timeoutSeconds": 30, "activeDeadlineSeconds": 45, "helmTimeoutSeconds": 46},
        {"helmTimeoutSeconds": 900},
    ],
    ids=str,
)
def test_order_holds(helm: Helm, gate_values: dict[str, int]) -> None:
    gate, deadline, helm_timeout = timings(helm.template({"gate": gate_values}))
    assert gate < deadline < helm_timeout
    assert gate == gate_values.get("timeoutSeconds", 180)
    for key, got in (("activeDeadlineSeconds", deadline), ("helmTimeoutSeconds", helm_timeout)):
        if key in gate_values:
            assert got == gate_values[key], "an explicit value is used as given"


def test_derived_deadlines_follow_the_gate_timeout(helm: Helm) -> None:
    assert timings(helm.template({"gate": {"timeoutSeconds": 100}})) == (100, 160, 220)


# The gate's own refusals (the dependency's, under its alias: "gate: ...").
@pytest.mark.parametrize(
    ("gate_values", "words"),
    [
        (
            {"timeoutSeconds": 300, "activeDeadlineSeconds": 300},
            ["gate: activeDeadlineSeconds (300)", "timeoutSeconds (300)"],
        ),
        (
            {"timeoutSeconds": 300, "activeDeadlineSeconds": 200},
            ["gate: activeDeadlineSeconds (200)", "timeoutSeconds (300)"],
        ),
        (
            {"helmTimeoutSeconds": 240},
            ["gate: helmTimeoutSeconds (240)", "activeDeadlineSeconds (240)", "timed out"],
        ),
        (
            {"activeDeadlineSeconds": 1000, "helmTimeoutSeconds": 600},
            ["gate: helmTimeoutSeconds (600)", "activeDeadlineSeconds (1000)"],
        ),
    ],
    ids=["deadline=timeout", "deadline<timeout", "helm=deadline", "helm<deadline"],
)
def test_misaligned_deadlines_fail_the_render(
    helm: Helm, gate_values: dict[str, int], words: list[str]
) -> None:
    message = helm.template_error({"gate": gate_values})
    assert "execution error" in message, "refused by the chart's fail, not by something else"
    for word in words:
        assert word in message


def test_deadlines_are_not_checked_when_the_gate_is_off(helm: Helm) -> None:
    values = {"gate": {"enabled": False, "timeoutSeconds": 300, "activeDeadlineSeconds": 10}}
    assert one(helm.template(values), "Deployment")


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"gate": {"leaseSeconds": 5, "pollSeconds": 10}}, ["gate: leaseSeconds (5)", "half"]),
        (
            {"app": {"operationDefaultSeconds": 60, "operationMaxSeconds": 30}},
            ["app.operationDefaultSeconds (60)", "app.operationMaxSeconds (30)"],
        ),
        (
            {"podDisruptionBudget": {"enabled": True, "maxUnavailable": None}},
            ["podDisruptionBudget", "minAvailable or maxUnavailable"],
        ),
    ],
    ids=["lease<poll/2", "default>max", "pdb-empty"],
)
def test_settings_the_programs_refuse_fail_the_render(
    helm: Helm, values: dict[str, Any], words: list[str]
) -> None:
    message = helm.template_error(values)
    for word in words:
        assert word in message


def test_no_fence_needs_no_lease(helm: Helm) -> None:
    docs = helm.template({"gate": {"fence": False, "leaseSeconds": 1, "pollSeconds": 60}})
    assert "--no-fence" in container(gate_hook(docs), "gate")["args"]


# -- NOTES.txt -------------------------------------------------------------------


def test_notes_give_the_timeout_the_watch_and_the_bypass(helm: Helm) -> None:
    notes = helm.notes({"gate": {"hookKind": "Job"}})
    assert f"helm upgrade {RELEASE} <chart> --namespace {NAMESPACE} --timeout 300s" in notes
    assert f"kubectl --namespace {NAMESPACE} logs --follow job/{HOOK}" in notes
    assert "--no-hooks" in notes
    numbers = re.findall(
        r"^\s+(gate deadline|Job activeDeadlineSeconds|helm --timeout)\s+(\d+)s",
        notes,
        re.MULTILINE,
    )
    assert [int(n) for _, n in numbers] == [180, 240, 300]


def test_notes_name_the_hook_pod_when_the_hook_is_a_pod(helm: Helm) -> None:
    notes = helm.notes({"gate": {"hookKind": "Pod"}})
    assert f"first runs the hook Pod {HOOK}" in notes
    assert f"kubectl --namespace {NAMESPACE} logs --follow pod/{HOOK}" in notes


def test_notes_follow_the_values(helm: Helm) -> None:
    notes = helm.notes({"gate": {"timeoutSeconds": 600, "preRollback": True}})
    assert "--timeout 720s" in notes
    assert "`helm rollback`" in notes


def test_notes_without_the_gate(helm: Helm) -> None:
    notes = helm.notes({"gate": {"enabled": False}})
    assert "gate is off" in notes
    assert "--timeout" not in notes
    assert "job/" not in notes
