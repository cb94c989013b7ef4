"""The promise, on a real cluster: an upgrade waits for the work in flight.

Scenario 1 (idle), 2 (the core, with Helm 3 and Helm 4: scenario 8) and 3
(three replicas, the longest operation decides).
"""

from __future__ import annotations

import pytest

from e2e.kube import wait_for
from e2e.scenario import HOOK_VERDICT, Scenario

pytestmark = pytest.mark.e2e


def test_idle_upgrade_passes_the_gate_at_once(scenario: Scenario) -> None:
    scenario.install("v1")
    with scenario.recording("idle upgrade: the gate passes at once"):
        upgrade = scenario.upgrade("v2")
        assert scenario.finish(upgrade, timeout=120, label="idle upgrade, gated") == 0, (
            upgrade.output
        )
    pods, _ = scenario.hook_verdict(upgrade)
    assert pods == 1
    assert float(HOOK_VERDICT.search(upgrade.output)["after"]) <= 2.0  # type: ignore[index]
    assert scenario.version_served() == {"v2"}

    # Side by side in the session's phase table: the same idle upgrade
    # without the gate, to show what the gate costs when nothing runs.
    bypass = scenario.upgrade("v1", "--no-hooks")
    assert scenario.finish(bypass, timeout=120, label="idle upgrade, --no-hooks") == 0, (
        bypass.output
    )
    assert scenario.version_served() == {"v1"}


def test_upgrade_waits_for_the_operation_in_flight(scenario: Scenario, each_helm: object) -> None:
    """The core scenario, once with each helm (``--helm-bin``; default Helm 3 and 4)."""
    seconds = 25
    scenario.install("v1")
    old = scenario.only_pod()
    old_name, old_uid = old.metadata.name, old.metadata.uid
    op_id = scenario.start_operation(old_name, seconds)

    with scenario.recording(f"in-flight upgrade ({scenario.helm.name})"):
        upgrade = scenario.upgrade("v2")
        wait_for(scenario.hook_running, timeout=30, what="the hook Job running")
        wait_for(
            lambda: scenario.status() == "pending-upgrade",
            timeout=30,
            what="release pending-upgrade",
        )
        fenced = wait_for(
            lambda: scenario.kube.call(
                scenario.namespace, old_name, "GET", "/upgradeable"
            ).body.get("draining"),
            timeout=30,
            what="the old pod fenced",
        )
        assert fenced

        # While the operation runs, nothing moves.
        assert _op_state(scenario, old_name, op_id) == "running"
        refused = scenario.kube.call(
            scenario.namespace, old_name, "POST", "/operations", {"seconds": 1}
        )
        assert refused.status == 503
        assert refused.body["error"] == "draining"
        still = scenario.kube.pod(scenario.namespace, old_name)
        assert still is not None
        assert still.metadata.uid == old_uid
        assert still.metadata.deletion_timestamp is None
        assert scenario.hook_running()
        assert scenario.status() == "pending-upgrade"
        assert upgrade.running()

        assert scenario.finish(upgrade, timeout=seconds + 120) == 0, upgrade.output
        _, gate_opened = scenario.hook_verdict(upgrade)
        scenario.wait_gone(old_uid)

    op, old_life = scenario.survived(op_id, old_uid)
    assert op.finished is not None
    assert op.finished <= gate_opened <= op.finished + 2.0
    # The hook program has exited 0 within 2 s of the operation's end, as the
    # API server reports it (kubelet notices an exit within its 1 s relist).
    timeline = scenario.timeline()
    (hook_pod,) = [p for p in timeline.pods.values() if p.role == "hook"]
    assert hook_pod.exit_code == 0
    assert hook_pod.exited is not None
    assert hook_pod.exited <= op.finished + 2.0, hook_pod.exited - op.finished
    (job,) = timeline.jobs.values()
    assert job.completed is not None
    assert gate_opened <= job.completed
    assert old_life.terminating is not None
    assert job.completed <= old_life.terminating
    assert scenario.version_served() == {"v2"}


def test_three_replicas_wait_for_the_longest_operation(scenario: Scenario) -> None:
    scenario.install("v1", replicaCount=3)
    pods = [p.metadata.name for p in scenario.app_pods()]
    short = scenario.start_operation(pods[0], 8)
    long = scenario.start_operation(pods[1], 16)

    with scenario.recording("three replicas: the longest operation decides"):
        upgrade = scenario.upgrade("v2")
        assert scenario.finish(upgrade, timeout=180) == 0, upgrade.output
        pods_gated, gate_opened = scenario.hook_verdict(upgrade)

    timeline = scenario.timeline()
    ops = {o.id: o for o in timeline.operations.values()}
    assert ops[short].state == ops[long].state == "succeeded"
    assert ops[short].finished is not None
    last_end = ops[long].finished
    assert last_end is not None
    assert pods_gated == 3
    assert last_end <= gate_opened <= last_end + 2.0
    (job,) = timeline.jobs.values()
    assert job.completed is not None
    assert gate_opened <= job.completed
    old = [p for p in timeline.app_pods() if p.name in pods]
    assert len(old) == 3
    # No old pod began terminating before the last operation ended.
    assert all(p.terminating is None or p.terminating > last_end for p in old)
    assert not any(o.cut_off for o in timeline.operations.values())
    assert scenario.version_served() == {"v2"}


def _op_state(scenario: Scenario, pod: str, op_id: str) -> str:
    answer = scenario.kube.call(scenario.namespace, pod, "GET", f"/operations/{op_id}")
    return str(answer.body.get("state"))
