"""What a failed scenario leaves for inspection (e2e/artifacts.py), on a real cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from e2e.artifacts import collect
from e2e.kube import wait_for
from e2e.scenario import Scenario

pytestmark = pytest.mark.e2e

PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


def test_a_pod_that_logged_nothing_leaves_an_empty_log(scenario: Scenario, tmp_path: Path) -> None:
    # The last CI run's failing scenarios ended in "TypeError: data must be str, not
    # NoneType" in collect, which now writes an empty log for None. A quiet container's log
    # comes back as "" here, not None (that case was not reproduced): this checks that the
    # artifacts of a pod are written whatever its container said.
    scenario.install("v1")
    apps: Any = client.AppsV1Api(scenario.kube.api_client)
    (template,) = [
        d.spec.template for d in apps.list_namespaced_deployment(scenario.namespace).items
    ]
    spec = scenario.kube.api_client.sanitize_for_serialization(template.spec)
    (container,) = spec["containers"]
    container["command"] = ["sleep", "600"]  # runs, and says nothing
    container.pop("args", None)  # the app's, which sleep would refuse (out loud)
    for probe in PROBES:
        container.pop(probe, None)
    quiet = {"metadata": {"name": "quiet", "labels": {"test": "quiet"}}, "spec": spec}
    scenario.kube.core.create_namespaced_pod(scenario.namespace, quiet)
    wait_for(
        lambda: (
            scenario.kube.core.read_namespaced_pod("quiet", scenario.namespace).status.phase
            == "Running"
        ),
        timeout=120,
        what="the quiet pod running",
    )

    collect(scenario.kube, scenario.helm, scenario.namespace, scenario.release, tmp_path)

    assert (tmp_path / f"pod-quiet-{container['name']}.log").read_text() == ""
    assert (tmp_path / "helm-status.txt").is_file()
