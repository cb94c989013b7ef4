"""The kind provider: a kind cluster through pytest-kind's KindCluster, for machines with Docker.

KindCluster downloads kind and kubectl when it is not given their paths; here it always is
(never a download at test time): from the arguments, from UPGRADE_GATE_KIND and
UPGRADE_GATE_KUBECTL, or else `kind` and `kubectl` found on PATH. Images load with
`kind load docker-image` from the Docker daemon kind itself uses.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from e2e.providers.base import ProviderError, cache_root


def _tool(explicit: Path | None, env_var: str, name: str) -> Path:
    if explicit is not None:
        path = explicit
    elif os.environ.get(env_var):
        path = Path(os.environ[env_var])
    elif (found := shutil.which(name)) is not None:
        path = Path(found)
    else:
        raise ProviderError(
            f"kind provider: no {name} binary; pass its path or set {env_var} "
            "(pytest-kind would download one, which this harness never does)"
        )
    if not path.is_file() or not os.access(path, os.X_OK):
        raise ProviderError(f"kind provider: {path} is not an executable file")
    return path.resolve()


class KindProvider:
    name = "kind"
    # app/Dockerfile's default base image: kind machines reach a registry.
    base_image: str | None = None

    def __init__(
        self,
        cluster_name: str = "upgrade-gate",
        *,
        kind_path: Path | None = None,
        kubectl_path: Path | None = None,
    ) -> None:
        self.cluster_name = cluster_name
        self.state_dir = cache_root() / "kind" / cluster_name
        self.kubeconfig: Path = self.state_dir / "kubeconfig"
        self.kind_path = _tool(kind_path, "UPGRADE_GATE_KIND", "kind")
        self.kubectl_path = _tool(kubectl_path, "UPGRADE_GATE_KUBECTL", "kubectl")
        self._cluster: object | None = None

    def _kind_cluster(self) -> object:
        if self._cluster is None:
            from pytest_kind import KindCluster

            self.state_dir.mkdir(parents=True, exist_ok=True)
            # KindCluster makes a ./.pytest-kind/<name> directory relative to the working
            # directory; keep it out of the repository.
            with contextlib.chdir(self.state_dir):
                self._cluster = KindCluster(
                    self.cluster_name,
                    kubeconfig=self.kubeconfig,
                    kind_path=self.kind_path,
                    kubectl_path=self.kubectl_path,
                )
        return self._cluster

    def up(self) -> None:
        cluster = self._kind_cluster()
        with contextlib.chdir(self.state_dir):
            cluster.create()  # type: ignore[attr-defined]

    def load_images(self, refs: Sequence[str]) -> None:
        cluster = self._kind_cluster()
        for ref in refs:
            cluster.load_docker_image(ref)  # type: ignore[attr-defined]

    def down(self) -> None:
        cluster = self._kind_cluster()
        with contextlib.chdir(self.state_dir):
            cluster.delete()  # type: ignore[attr-defined]

    def docker_env(self) -> dict[str, str]:
        # kind uses the Docker daemon of the environment; so do the builds.
        return {k: v for k, v in os.environ.items() if k.startswith("DOCKER_")}
