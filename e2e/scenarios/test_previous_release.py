"""Upgrade from the previous release, as users do: its chart and its image, then the working tree's.

The previous release (``e2e/previous.py``: the latest tag, or a pinned commit before the first
one) is installed from its own chart with its own app image, built from its own files. An
operation runs on its pod while ``helm upgrade`` moves to the working tree's chart and image:
the new hook must fence the old app (across versions of the HTTP contract, with the token the
old chart generated), the upgrade must succeed (a changed selector or any other immutable field
fails it), the Deployment and Service must be the same objects (a renamed one would replace the
old pod at once), and the operation must finish before its pod is replaced.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from e2e.cluster.providers.interface import ClusterProvider
from e2e.kube import is_ready, wait_for
from e2e.phases import Phases
from e2e.previous import PreviousRelease, build_image, chart_defaults, export, find, fit_values
from e2e.stage import BASE_VALUES, Stage, merge

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def previous_release(
    cluster: ClusterProvider,
    pytestconfig: pytest.Config,
    tmp_path_factory: pytest.TempPathFactory,
    phases: Phases,
) -> PreviousRelease:
    previous = find()
    with phases.measure(f"previous release {previous.label}: git archive, build image, load"):
        source = export(previous, tmp_path_factory.mktemp("previous") / previous.short)
        return build_image(
            cluster,
            previous,
            source,
            push_to=pytestconfig.getoption("--registry"),
            base_image=pytestconfig.getoption("--base-image"),
        )


def test_upgrade_from_the_previous_release_waits_for_the_operation(
    stage: Stage, previous_release: PreviousRelease
) -> None:
    # Long enough for the new hook to start and fence the old pod while it runs, even on a
    # busy machine (the hook's Job, its pod, then Python importing the Kubernetes client).
    seconds = 40
    label = previous_release.previous.label
    _install_previous(stage, previous_release)
    old = stage.only_pod()
    old_name, old_uid = old.metadata.name, old.metadata.uid
    assert _version(stage, old_name) == label
    before = _objects(stage)
    op_id = stage.start_operation(old_name, seconds)

    with stage.recording(f"upgrade from {label} to the working tree ({stage.helm.name})"):
        # Every value the working tree's chart knows, as a user's values file would set them.
        upgrade = stage.upgrade("v2", **BASE_VALUES)
        wait_for(stage.hook_running, timeout=30, what="the new chart's hook running")
        fenced = wait_for(
            lambda: stage.kube.call(stage.namespace, old_name, "GET", "/upgradeable").body.get(
                "draining"
            ),
            timeout=30,
            what=f"the {label} pod fenced by the new hook",
        )
        assert fenced
        state = stage.kube.call(stage.namespace, old_name, "GET", f"/operations/{op_id}").body.get(
            "state"
        )
        assert state == "running", f"the operation was {state} before the new hook fenced its pod"
        refused = stage.kube.call(stage.namespace, old_name, "POST", "/operations", {"seconds": 1})
        assert refused.status == 503, refused
        still = stage.kube.pod(stage.namespace, old_name)
        assert still is not None
        assert still.metadata.uid == old_uid
        assert still.metadata.deletion_timestamp is None
        assert stage.status() == "pending-upgrade"
        assert upgrade.running()

        assert stage.finish(upgrade, timeout=seconds + 180) == 0, upgrade.output
        _, gate_opened = stage.hook_verdict(upgrade)
        stage.wait_gone(old_uid)

    op, _ = stage.survived(op_id, old_uid)
    assert op.finished is not None
    assert op.finished <= gate_opened
    # The new chart's hook succeeded: with gate.hookKind auto, a Job under Helm 3, a bare Pod
    # under Helm 4 (chart/templates/_helpers.tpl, upgrade-gate.hookKind).
    timeline = stage.timeline()
    jobs = list(timeline.jobs.values())
    hooks = [
        (pod.exit_code, pod.finished is not None)
        for pod in timeline.pods.values()
        if pod.role == "hook"
    ]
    if stage.helm.major == 3:
        assert [j.completed is not None for j in jobs] == [True], (jobs, hooks)
    else:
        assert (jobs, hooks) == ([], [(0, True)])
    assert stage.version_served() == {"v2"}
    # The same Deployment and Service (UIDs kept), and the Service selects the new pod.
    assert _objects(stage) == before
    assert _selected(stage) == {p.metadata.name for p in stage.app_pods()}
    assert stage.helm.history(stage.release, stage.namespace) == [
        (1, "superseded"),
        (2, "deployed"),
    ]


def _install_previous(stage: Stage, release: PreviousRelease) -> None:
    """The previous chart with its own image, given only the values that chart knows."""
    wanted = merge(BASE_VALUES, {"image": {"repository": release.repository, "tag": release.tag}})
    stage.values = fit_values(wanted, chart_defaults(release.chart))
    with stage.phases.measure(f"install {release.previous.label} ({stage.helm.name})"):
        stage.helm.install(stage.release, stage.namespace, stage.values, chart_dir=release.chart)
    wait_for(
        lambda: [is_ready(p) for p in stage.app_pods()] == [True],
        timeout=120,
        what=f"the {release.previous.label} pod Ready",
    )


def _version(stage: Stage, pod: str) -> str:
    return str(stage.kube.call(stage.namespace, pod, "GET", "/version").body.get("version"))


def _objects(stage: Stage) -> dict[str, str]:
    """Name -> UID of the release's Deployments and Services."""
    selector = f"app.kubernetes.io/instance={stage.release}"
    apps: Any = client.AppsV1Api(stage.kube.api_client)
    found = {
        f"deployment/{d.metadata.name}": d.metadata.uid
        for d in apps.list_namespaced_deployment(stage.namespace, label_selector=selector).items
    }
    found.update(
        {
            f"service/{s.metadata.name}": s.metadata.uid
            for s in stage.kube.core.list_namespaced_service(
                stage.namespace, label_selector=selector
            ).items
        }
    )
    return found


def _selected(stage: Stage) -> set[str]:
    """Live pods chosen by the release's Service selector."""
    (service,) = stage.kube.core.list_namespaced_service(
        stage.namespace, label_selector=f"app.kubernetes.io/instance={stage.release}"
    ).items
    selector = ",".join(f"{k}={v}" for k, v in sorted(service.spec.selector.items()))
    pods = stage.kube.core.list_namespaced_pod(stage.namespace, label_selector=selector)
    return {p.metadata.name for p in pods.items if p.metadata.deletion_timestamp is None}
