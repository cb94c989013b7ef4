"""The way in for clusters this project does not run: app images through a real registry.

``--cluster existing --registry HOST:PORT`` pushes the images and lets the nodes pull them.
Here the kind cluster plays someone else's cluster and a CNCF distribution registry plays
their registry (e2e/smoke/registry.py); the nodes' containerd pulls from it over plain HTTP.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from e2e.cluster.providers.kind import KindProvider
from e2e.smoke.registry import KindNetworkRegistry

pytestmark = pytest.mark.smoke

ROOT = Path(__file__).resolve().parents[2]
IDLE_SCENARIO = "e2e/scenarios/files/idle-upgrade.scenario.yaml"


def test_a_scenario_runs_on_an_existing_cluster_through_a_registry(
    kind: KindProvider, tmp_path: Path
) -> None:
    # Where no registry can give the Dockerfile's default base, the provider's own.
    base = ["--base-image", kind.base_image] if kind.base_image else []
    with KindNetworkRegistry(kind) as registry:
        run = subprocess.run(
            [
                *(sys.executable, "-m", "pytest", IDLE_SCENARIO),
                *("-p", "no:cacheprovider", "--fail-on-skip"),
                *("--cluster", "existing", "--kubeconfig", str(kind.kubeconfig)),
                *("--registry", registry.address, *base, "--artifacts", str(tmp_path)),
            ],
            cwd=ROOT,
            env={**os.environ, **kind.docker_env()},
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
        assert "1 passed" in run.stdout
        # The nodes resolved the pushed tag at the registry; nothing of that name was loaded.
        for repository in ("upgrade-gate-app", "upgrade-gate-hook"):  # the hook's image too
            pullers = registry.pulls(repository)
            assert any(agent.startswith("containerd/") for agent in pullers), (
                repository,
                registry.log()[-3000:],
            )
