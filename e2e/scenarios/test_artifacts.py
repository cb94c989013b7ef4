"""What a failed scenario leaves for inspection (e2e/artifacts.py), on a real cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e.artifacts import collect
from e2e.kube import wait_for
from e2e.stage import Stage

pytestmark = pytest.mark.e2e

PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


def test_a_pod_that_logged_nothing_leaves_an_empty_log(stage: Stage, tmp_path: Path) -> None:
    # The last CI run's failing scenarios ended in "TypeError: data must be str, not
    # NoneType" in collect, which now writes an empty log for None. A quiet container's log
    # comes back as "" here, not None (that case was not reproduced): this checks that the
    # artifacts of a pod are written whatever its container said.
    stage.install("v1")
    spec = stage.pod_template()["spec"]
    (container,) = spec["containers"]
    container["command"] = ["sleep", "600"]  # runs, and says nothing
    container.pop("args", None)  # the app's, which sleep would refuse (out loud)
    for probe in PROBES:
        container.pop(probe, None)
    quiet = {"metadata": {"name": "quiet", "labels": {"test": "quiet"}}, "spec": spec}
    stage.kube.core.create_namespaced_pod(stage.namespace, quiet)
    wait_for(
        lambda: (
            stage.kube.core.read_namespaced_pod("quiet", stage.namespace).status.phase == "Running"
        ),
        timeout=120,
        what="the quiet pod running",
    )

    collect(stage.kube, stage.helm, stage.namespace, stage.release, tmp_path)

    assert (tmp_path / f"pod-quiet-{container['name']}.log").read_text() == ""
    assert (tmp_path / "helm-status.txt").is_file()
