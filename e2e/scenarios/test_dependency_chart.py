"""A chart that is not ours, gated through the dependency chart alone.

``examples/batch-worker`` is a StatefulSet of workers with its own names,
labels and port name; it lists ``upgrade-gate-hook`` under ``dependencies:``
(``repository: file://...``), and its pod template includes the dependency's
named templates for the drain token. The scenario is the core one, played on
it with each helm: an operation on the only worker, ``helm upgrade`` in the
background; the old worker must stay, fenced, until the operation has ended
and the hook has said so, and only then be replaced.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from e2e.helm import DEPENDENCY_CHART, EXAMPLES, ROOT, Helm
from e2e.kube import is_ready, wait_for
from e2e.stage import Stage

pytestmark = pytest.mark.e2e

EXAMPLE = EXAMPLES / "batch-worker"
SELECTOR = "app.kubernetes.io/name=batch-worker,app.kubernetes.io/instance={release}"
OPERATION_SECONDS = 20
GATE = {"timeoutSeconds": 90, "leaseSeconds": 15, "holdSeconds": 120, "pollSeconds": 10}
HELM_TIMEOUT = f"{GATE['timeoutSeconds'] + 120}s"  # the gate's rule: + 60 (hook) + 60 (helm)


def build_example(helm: Helm, workdir: Path) -> Path:
    """The example and the dependency chart copied as they lie in the repository (the
    ``file://`` path is relative), and ``helm dependency build`` run on the copy: the
    working tree is left alone, and scenarios side by side never share a ``charts/``."""
    example = workdir / EXAMPLE.relative_to(ROOT)
    shutil.copytree(EXAMPLE, example, ignore=shutil.ignore_patterns("charts", "Chart.lock"))
    shutil.copytree(DEPENDENCY_CHART, workdir / DEPENDENCY_CHART.relative_to(ROOT))
    helm.dependency_build(example)
    return example


def values(stage: Stage, tag: str) -> dict[str, Any]:
    image = {"repository": stage.images.repository, "tag": tag, "pullPolicy": "IfNotPresent"}
    hook = {**image, "repository": stage.images.hook_repository}
    return {
        "image": image,
        "drainSeconds": 60,
        "upgrade-gate-hook": {**GATE, "image": hook},
    }


def workers(stage: Stage) -> list[Any]:
    """The example's pods, by its own labels, not terminating."""
    pods = stage.kube.core.list_namespaced_pod(
        stage.namespace, label_selector=SELECTOR.format(release=stage.release)
    ).items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def install_example(stage: Stage, tmp_path: Path) -> tuple[Path, Any]:
    """The example built and installed at v1; its chart and its one worker, Ready."""
    chart = build_example(stage.helm, tmp_path)
    stage.helm.install(stage.release, stage.namespace, values(stage, "v1"), chart_dir=chart)
    (worker,) = wait_for(
        lambda: (pods := workers(stage)) and len(pods) == 1 and is_ready(pods[0]) and pods,
        timeout=120,
        what="the worker Ready after install",
    )
    return chart, worker


def operation_state(stage: Stage, pod: str, op_id: str) -> str | None:
    records = stage.kube.operations(stage.namespace, pod) or []
    return next((r["state"] for r in records if r["id"] == op_id), None)


def test_a_chart_of_its_own_is_gated_through_the_dependency(
    stage: Stage, each_helm: Helm, tmp_path: Path
) -> None:
    chart, old = install_example(stage, tmp_path)
    name, uid = old.metadata.name, old.metadata.uid
    with stage.recording(f"a chart of its own, gated by the dependency ({stage.helm.name})"):
        op_id = stage.start_operation(name, OPERATION_SECONDS)
        upgrade = stage.helm.upgrade_in_background(
            stage.release,
            stage.namespace,
            values(stage, "v2"),
            HELM_TIMEOUT,
            chart_dir=chart,
        )
        stage.background.append(upgrade)
        stage.mark("helm upgrade started")

        # While the operation runs: the hook holds helm, and has fenced the busy worker
        # (which it can only do with the token the example's pods read from the
        # dependency's Secret), and the worker is the same pod.
        wait_for(
            lambda: stage.hook_running() and stage.kube.is_fenced(stage.namespace, name),
            timeout=120,
            what="the hook running and the busy worker fenced",
        )
        assert operation_state(stage, name, op_id) == "running"
        assert upgrade.running(), upgrade.output
        assert stage.status() == "pending-upgrade"
        assert [p.metadata.uid for p in workers(stage)] == [uid]
        stage.mark("held: hook running, worker fenced, operation running")

        assert stage.finish(upgrade, timeout=300) == 0, upgrade.output
        pods, opened = stage.hook_verdict(upgrade)
        assert pods == 1, upgrade.output
        stage.wait_gone(uid, timeout=180)

    # The hook kind the dependency chooses (hookKind auto): a bare Pod under Helm 4, a Job
    # under Helm 3, as the revision stored it.
    gate = f"{stage.release}-upgrade-gate-hook"
    stored = stage.helm.hooks(stage.release, stage.namespace)
    kinds = {h["kind"] for h in stored if h["metadata"]["name"] == gate} & {"Job", "Pod"}
    assert kinds == {"Pod" if stage.helm.major == 4 else "Job"}, kinds
    op, pod = stage.survived(op_id, uid)
    # The gate opened once the operation had ended, and the worker was replaced after.
    assert op.finished is not None  # survived() checked it
    assert pod.terminating is not None
    assert op.finished <= opened, (op, opened)
    assert opened <= pod.terminating, (opened, pod)
    assert stage.status() == "deployed"
    (new,) = wait_for(
        lambda: (pods := workers(stage)) and len(pods) == 1 and is_ready(pods[0]) and pods,
        timeout=120,
        what="the new worker Ready",
    )
    assert new.metadata.uid != uid
    answer = stage.kube.call(stage.namespace, new.metadata.name, "GET", "/version")
    assert answer.body.get("version") == "v2", answer


def test_a_config_only_upgrade_of_a_chart_of_its_own_holds_no_worker(
    stage: Stage, each_helm: Helm, tmp_path: Path
) -> None:
    """The example hands its pod template to the gate (gate-template.yaml): an upgrade that
    changes only the gate's settings replaces no worker, so the hook, reading the template's
    ConfigMap, neither waits for the busy worker nor fences it."""
    chart, worker = install_example(stage, tmp_path)
    name, uid = worker.metadata.name, worker.metadata.uid
    op_id = stage.start_operation(name, 120)  # would hold the upgrade for minutes if gated
    config_only = values(stage, "v1")
    config_only["upgrade-gate-hook"] = {**config_only["upgrade-gate-hook"], "timeoutSeconds": 80}
    upgrade = stage.helm.upgrade_in_background(
        stage.release, stage.namespace, config_only, HELM_TIMEOUT, chart_dir=chart
    )
    stage.background.append(upgrade)
    assert stage.finish(upgrade, timeout=120, label="config-only upgrade") == 0, upgrade.output
    assert "runs the new pod template already: not replaced, not gated" in upgrade.output, (
        upgrade.output
    )
    assert operation_state(stage, name, op_id) == "running"
    assert not stage.kube.is_fenced(stage.namespace, name)
    assert [p.metadata.uid for p in workers(stage)] == [uid]
