"""Which identity the hook runs as, on a real cluster, where the chart's lookups answer.

The chart renders the hook's ServiceAccount, Role and RoleBinding as regular
objects of the release, and reuses them at an upgrade when they are in the
cluster as this release made them; otherwise it renders them as hooks too.
``helm template`` looks nothing up, so only a real upgrade shows the choice:
in the hooks Helm stored for the revision.
"""

from __future__ import annotations

from typing import Any

import pytest

from e2e.scenario import Scenario

pytestmark = pytest.mark.e2e

RBAC_KINDS = {"ServiceAccount", "Role", "RoleBinding"}


def _hooks(scenario: Scenario) -> list[dict[str, Any]]:
    return scenario.helm.hooks(scenario.release, scenario.namespace)


def _accounts(hooks: list[dict[str, Any]]) -> set[str]:
    """The ServiceAccounts the hook pods run as (a Job's template, or a bare Pod)."""
    specs = [
        h["spec"]["template"]["spec"] if h["kind"] == "Job" else h["spec"]
        for h in hooks
        if h["kind"] in ("Job", "Pod")
    ]
    return {spec["serviceAccountName"] for spec in specs}


def _upgrade(scenario: Scenario, tag: str, **values: Any) -> str:
    upgrade = scenario.upgrade(tag, **values)
    assert scenario.finish(upgrade, timeout=180) == 0, upgrade.output
    assert "upgrade may proceed" in upgrade.output, upgrade.output
    return upgrade.output


def test_an_upgrade_runs_the_hook_as_the_releases_own_identity(
    scenario: Scenario, each_helm: object
) -> None:
    scenario.install("v1")  # the install creates the identity as regular objects
    _upgrade(scenario, "v2")
    hooks = _hooks(scenario)
    # No RBAC hook was made, created, deleted or waited for: the gate (which
    # listed the pods, or it could not have said yes) ran as the release's own.
    assert not {h["kind"] for h in hooks} & RBAC_KINDS, [h["kind"] for h in hooks]
    assert _accounts(hooks) == {f"{scenario.release}-upgrade-gate-gate"}


def test_an_identity_changed_by_hand_is_not_trusted(scenario: Scenario) -> None:
    scenario.install("v1")
    name = f"{scenario.release}-upgrade-gate-gate"
    # The Role no longer grants listing ReplicaSets: a hook running as it would
    # exit 3 (forbidden) and fail every upgrade from now on.
    scenario.kube.rbac.patch_namespaced_role(
        name,
        scenario.namespace,
        {"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]},
    )
    _upgrade(scenario, "v2")
    hooks = _hooks(scenario)
    assert {h["kind"] for h in hooks} >= RBAC_KINDS
    assert _accounts(hooks) == {f"{scenario.release}-upgrade-gate-hook"}
    # The upgrade put the Role back as the chart has it: the next one reuses it.
    role = scenario.kube.rbac.read_namespaced_role(name, scenario.namespace)
    assert {r.resources[0] for r in role.rules} == {"pods", "replicasets"}
    _upgrade(scenario, "v1")
    assert _accounts(_hooks(scenario)) == {name}


def test_a_gate_that_runs_before_rollbacks_brings_its_own_identity(scenario: Scenario) -> None:
    # A pre-rollback hook runs under whatever the current revision left, maybe
    # a revision with the gate off: it must not count on the regular objects.
    scenario.install("v1", gate={"preRollback": True})
    _upgrade(scenario, "v2")
    hooks = _hooks(scenario)
    assert {h["kind"] for h in hooks} >= RBAC_KINDS
    assert _accounts(hooks) == {f"{scenario.release}-upgrade-gate-hook"}
