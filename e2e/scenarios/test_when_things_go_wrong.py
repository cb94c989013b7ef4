"""The gate fails safe: a deadline, a killed hook, and what happens without it.

Scenario 4 (deadline), 5 (bypass with --no-hooks), 7 (the hook pod killed).
"""

from __future__ import annotations

import pytest

from e2e.kube import wait_for
from e2e.scenario import Scenario

pytestmark = pytest.mark.e2e


def test_deadline_fails_the_upgrade_and_changes_nothing(scenario: Scenario) -> None:
    scenario.install("v1")
    old = scenario.only_pod()
    op_id = scenario.start_operation(old.metadata.name, 40)

    with scenario.recording("deadline: the hook gives up, nothing changes"):
        # The hook runs with the values of the upgrade: a 10 s gate.
        upgrade = scenario.upgrade("v2", gate={"timeoutSeconds": 10})
        code = scenario.finish(upgrade, timeout=150)
    assert code != 0
    assert "deadline of 10s reached, fences released" in upgrade.output
    assert op_id in upgrade.output

    pod = scenario.kube.pod(scenario.namespace, old.metadata.name)
    assert pod is not None
    assert pod.metadata.uid == old.metadata.uid
    assert pod.metadata.deletion_timestamp is None
    assert scenario.status() == "failed"
    assert scenario.version_served() == {"v1"}
    # The old pod takes work again at once, and the first operation goes on.
    accepted = scenario.kube.call(
        scenario.namespace, old.metadata.name, "POST", "/operations", {"seconds": 1}
    )
    assert accepted.status == 202
    wait_for(
        lambda: (
            scenario.kube.call(
                scenario.namespace, old.metadata.name, "GET", f"/operations/{op_id}"
            ).body.get("state")
            == "succeeded"
        ),
        timeout=60,
        what="the long operation to complete",
    )
    # Once idle, the next upgrade goes through.
    retry = scenario.upgrade("v2")
    assert scenario.finish(retry, timeout=120, label="upgrade after a failed one") == 0, (
        retry.output
    )
    assert scenario.version_served() == {"v2"}


def test_without_the_gate_the_operation_is_cut_off(scenario: Scenario) -> None:
    # An app with no graceful drain of its own (like the original demo):
    # SIGTERM ends it within a second. Only the gate stands between an
    # upgrade and its work.
    scenario.install("v1", app={"shutdownTimeoutSeconds": 1, "preStopSleepSeconds": 0})
    old = scenario.only_pod()
    op_id = scenario.start_operation(old.metadata.name, 60)

    with scenario.recording("bypass: --no-hooks cuts the operation off"):
        upgrade = scenario.upgrade("v2", "--no-hooks")
        assert scenario.finish(upgrade, timeout=120, label="in-flight upgrade, --no-hooks") == 0
        scenario.wait_gone(old.metadata.uid)

    timeline = scenario.timeline()
    (op,) = [o for o in timeline.operations.values() if o.id == op_id]
    assert op.cut_off, f"expected the operation cut off: {op}"
    assert not timeline.jobs, "no hook may run with --no-hooks"
    assert scenario.version_served() == {"v2"}


def test_a_killed_hook_pod_is_replaced_and_the_promise_holds(scenario: Scenario) -> None:
    scenario.install("v1")
    old = scenario.only_pod()
    op_id = scenario.start_operation(old.metadata.name, 25)

    with scenario.recording("the hook pod is killed mid-wait"):
        upgrade = scenario.upgrade("v2")
        first = wait_for(lambda: _running_hook_pod(scenario), timeout=30, what="a running hook pod")
        wait_for(
            lambda: scenario.kube.call(
                scenario.namespace, old.metadata.name, "GET", "/upgradeable"
            ).body.get("draining"),
            timeout=30,
            what="the old pod fenced",
        )
        scenario.kube.core.delete_namespaced_pod(first, scenario.namespace)
        second = wait_for(
            lambda: (name := _running_hook_pod(scenario)) and name != first and name,
            timeout=60,
            what="the Job's replacement hook pod",
        )
        assert second != first
        # Killed by SIGTERM, the hook released its fences and exited 143,
        # which the chart's podFailurePolicy does not count as a failure.
        (job,) = scenario.kube.hook_jobs(scenario.namespace, scenario.release)
        assert not job.status.failed, job.status
        assert upgrade.running()
        assert scenario.finish(upgrade, timeout=150) == 0, upgrade.output
        scenario.wait_gone(old.metadata.uid)

    scenario.survived(op_id, old.metadata.uid)
    exits = {p.name: p.exit_code for p in scenario.timeline().pods.values() if p.role == "hook"}
    assert exits == {first: 143, second: 0}
    assert scenario.version_served() == {"v2"}


def _running_hook_pod(scenario: Scenario) -> str | None:
    pods = scenario.kube.core.list_namespaced_pod(
        scenario.namespace, label_selector="app.kubernetes.io/component=upgrade-gate"
    ).items
    for pod in pods:
        if pod.status.phase == "Running" and pod.metadata.deletion_timestamp is None:
            return str(pod.metadata.name)
    return None
