"""Scenario 6: `helm rollback` during an operation waits for it (pre-rollback gating)."""

from __future__ import annotations

import pytest

from e2e.kube import wait_for
from e2e.scenario import Scenario

pytestmark = pytest.mark.e2e


def test_rollback_waits_for_the_operation_in_flight(scenario: Scenario) -> None:
    # Helm runs the pre-rollback hooks of the revision rolled back to: revision
    # 1 must carry them.
    scenario.install("v1", gate={"preRollback": True})
    upgrade = scenario.upgrade("v2")
    assert scenario.finish(upgrade, timeout=120) == 0, upgrade.output
    current = scenario.only_pod()
    op_id = scenario.start_operation(current.metadata.name, 20)

    with scenario.recording("rollback waits for the operation in flight"):
        rollback = scenario.rollback(1)
        wait_for(scenario.hook_running, timeout=30, what="the pre-rollback hook running")
        wait_for(
            lambda: scenario.status() == "pending-rollback",
            timeout=30,
            what="release pending-rollback",
        )
        pod = scenario.kube.pod(scenario.namespace, current.metadata.name)
        assert pod is not None
        assert pod.metadata.deletion_timestamp is None
        assert rollback.running()
        assert scenario.finish(rollback, timeout=150) == 0, rollback.output
        scenario.wait_gone(current.metadata.uid)

    scenario.survived(op_id, current.metadata.uid)
    assert scenario.version_served() == {"v1"}
