"""The existing provider: a cluster someone else runs, reached through its kubeconfig.

It neither creates nor deletes anything. Images reach the cluster through a registry the
cluster can pull from (given as `registry`, e.g. "registry.example:5000"): load_images tags
each image into that registry and pushes it; without one it says so and stops.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from e2e.cluster.base import ClusterError


class ExistingProvider:
    name = "existing"
    base_image: str | None = None

    def __init__(self, kubeconfig: Path, *, registry: str | None = None) -> None:
        if not kubeconfig.is_file():
            raise ClusterError(f"existing provider: no kubeconfig at {kubeconfig}")
        self.kubeconfig: Path = kubeconfig.resolve()
        self.registry = registry

    def up(self) -> None:
        """Nothing to start: the cluster is someone else's."""

    def down(self) -> None:
        """Nothing to stop: the cluster is someone else's."""

    def docker_env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if k.startswith("DOCKER_")}

    def registry_ref(self, ref: str) -> str:
        if self.registry is None:
            raise ClusterError("existing provider: no registry given")
        return f"{self.registry.rstrip('/')}/{ref.split('/')[-1]}"

    def load_images(self, refs: Sequence[str]) -> None:
        if self.registry is None:
            raise ClusterError(
                "existing provider cannot load images without a registry: pass --registry "
                "(pushed images are then referred to as <registry>/<name>:<tag>)"
            )
        env = {**os.environ, **self.docker_env()}
        for ref in refs:
            target = self.registry_ref(ref)
            for args in (["docker", "tag", ref, target], ["docker", "push", target]):
                done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    raise ClusterError(f"{' '.join(args)} failed: {done.stderr.strip()}")
