"""The way in for clusters this project does not run: app images through a real registry.

``--cluster existing --registry HOST:PORT`` pushes the images and lets the node pull them.
Here the local cluster plays someone else's cluster and a CNCF distribution registry on
loopback plays their registry; the node's containerd pulls from it over plain HTTP.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from e2e.providers.local.cluster import LocalProvider

pytestmark = pytest.mark.smoke

ROOT = Path(__file__).resolve().parents[2]
IDLE_SCENARIO = "e2e/scenarios/files/idle-upgrade.scenario.yaml"


def test_a_scenario_runs_on_an_existing_cluster_through_a_registry(
    provider: LocalProvider, tmp_path: Path
) -> None:
    assert provider.base_image is not None
    with provider.registry() as registry:
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                IDLE_SCENARIO,
                "-p",
                "no:cacheprovider",
                "--fail-on-skip",
                "--cluster",
                "existing",
                "--kubeconfig",
                str(provider.kubeconfig),
                "--registry",
                registry.address,
                # No registry can give the Dockerfile's default base here.
                "--base-image",
                provider.base_image,
                "--artifacts",
                str(tmp_path),
            ],
            cwd=ROOT,
            env={**os.environ, **provider.docker_env()},
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
        assert "1 passed" in run.stdout
        # The node resolved the pushed tag at the registry; nothing of that name was imported.
        pullers = registry.pulls("upgrade-gate-app")
        assert any(agent.startswith("containerd/") for agent in pullers), registry.log()[-3000:]
