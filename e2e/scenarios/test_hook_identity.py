"""Which identity the hook runs as, on a real cluster, where the chart's lookups answer.

The chart renders the hook's ServiceAccount, Role and RoleBinding as regular
objects of the release, and reuses them at an upgrade when they are in the
cluster as this release made them; otherwise it renders them as hooks too.
``helm template`` looks nothing up, so only a real upgrade shows the choice:
in the hooks Helm stored for the revision.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from e2e.helm import CHART
from e2e.kube import wait_for
from e2e.stage import Stage

pytestmark = pytest.mark.e2e

RBAC_KINDS = {"ServiceAccount", "Role", "RoleBinding"}
IDENTITY = "{release}-upgrade-gate-gate"  # regular objects of the release
HOOK_IDENTITY = "{release}-upgrade-gate-hook"  # made as hooks when those cannot serve
REPLICASETS_RULE = """
- apiGroups: ["apps"]
  resources: ["replicasets"]
  verbs: ["list"]"""


def _hooks(stage: Stage) -> list[dict[str, Any]]:
    return stage.helm.hooks(stage.release, stage.namespace)


def _accounts(hooks: list[dict[str, Any]]) -> set[str]:
    """The ServiceAccounts the hook pods run as (a Job's template, or a bare Pod)."""
    specs = [
        h["spec"]["template"]["spec"] if h["kind"] == "Job" else h["spec"]
        for h in hooks
        if h["kind"] in ("Job", "Pod")
    ]
    return {spec["serviceAccountName"] for spec in specs}


def _upgrade(stage: Stage, tag: str, **values: Any) -> str:
    upgrade = stage.upgrade(tag, **values)
    assert stage.finish(upgrade, timeout=180) == 0, upgrade.output
    assert "upgrade may proceed" in upgrade.output, upgrade.output
    return upgrade.output


def test_an_upgrade_runs_the_hook_as_the_releases_own_identity(
    stage: Stage, each_helm: object
) -> None:
    stage.install("v1")  # the install creates the identity as regular objects
    _upgrade(stage, "v2")
    hooks = _hooks(stage)
    # No RBAC hook was made, created, deleted or waited for: the gate (which
    # listed the pods, or it could not have said yes) ran as the release's own.
    assert not {h["kind"] for h in hooks} & RBAC_KINDS, [h["kind"] for h in hooks]
    assert _accounts(hooks) == {IDENTITY.format(release=stage.release)}


def test_a_hook_that_needs_other_rights_brings_its_own_identity(
    stage: Stage, each_helm: object, tmp_path: Path
) -> None:
    # Installed from a chart whose Role grants less (an older version): the
    # new hook, which also lists ReplicaSets, would exit 3 (forbidden) as it.
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    # The hook's rules are the gate's: the dependency in the chart's charts/ (alias gate).
    helpers = chart / "charts" / "upgrade-gate-hook" / "templates" / "_helpers.tpl"
    text = helpers.read_text()
    fewer = text.replace(REPLICASETS_RULE, "")
    assert fewer != text, "the chart's rule for ReplicaSets is not where this test expects it"
    helpers.write_text(fewer)
    stage.install_chart(chart, "v1")
    _upgrade(stage, "v2")
    hooks = _hooks(stage)
    assert {h["kind"] for h in hooks} >= RBAC_KINDS
    assert _accounts(hooks) == {HOOK_IDENTITY.format(release=stage.release)}
    # The upgrade applied the chart's Role: the next upgrade runs as it.
    name = IDENTITY.format(release=stage.release)
    role = stage.kube.rbac.read_namespaced_role(name, stage.namespace)
    assert {r.resources[0] for r in role.rules} == {"pods", "replicasets", "configmaps"}
    _upgrade(stage, "v1")
    assert _accounts(_hooks(stage)) == {name}


def test_an_identity_deleted_by_hand_is_made_again(stage: Stage, each_helm: object) -> None:
    stage.install("v1")
    name = IDENTITY.format(release=stage.release)
    stage.kube.rbac.delete_namespaced_role_binding(name, stage.namespace)
    _upgrade(stage, "v2")
    assert _accounts(_hooks(stage)) == {HOOK_IDENTITY.format(release=stage.release)}
    stage.kube.rbac.read_namespaced_role_binding(name, stage.namespace)  # made again
    _upgrade(stage, "v1")
    assert _accounts(_hooks(stage)) == {name}


def test_a_rollback_to_a_revision_run_as_the_identity_lifts_the_fences(
    stage: Stage,
) -> None:
    # Revision 2 ran as the release's identity, so its stored post-rollback
    # Job does too: rolled back to, it must still find the identity (the
    # rollback applies revision 2's objects first) and lift the fences.
    stage.install("v1")
    _upgrade(stage, "v2")  # revision 2: no RBAC hook
    _upgrade(stage, "v1")  # revision 3
    rollback = stage.rollback(2)
    assert stage.finish(rollback, timeout=180) == 0, rollback.output
    hooks = _hooks(stage)
    assert _accounts(hooks) == {IDENTITY.format(release=stage.release)}
    # hook-succeeded deletes it once it succeeded; a failed one would stay.
    wait_for(
        lambda: (
            not [
                j
                for j in stage.kube.hook_jobs(stage.namespace, stage.release)
                if j.metadata.name.endswith("-release")
            ]
        ),
        timeout=120,
        what="the post-rollback Job succeeded and deleted by its hook-succeeded policy",
    )
    for pod in stage.app_pods():
        answer = stage.kube.call(stage.namespace, pod.metadata.name, "GET", "/upgradeable")
        assert answer.body.get("draining") is False, (pod.metadata.name, answer.body)


def test_a_gate_that_runs_before_rollbacks_brings_its_own_identity(stage: Stage) -> None:
    # A pre-rollback hook runs under whatever the current revision left, maybe
    # a revision with the gate off: it must not count on the regular objects.
    stage.install("v1", gate={"preRollback": True})
    _upgrade(stage, "v2")
    hooks = _hooks(stage)
    assert {h["kind"] for h in hooks} >= RBAC_KINDS
    assert _accounts(hooks) == {HOOK_IDENTITY.format(release=stage.release)}
