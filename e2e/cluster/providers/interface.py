"""The interface every cluster provider offers the harness.

A provider owns one cluster's life: it brings the cluster up (reusing one that already runs),
makes locally built images visible to it, and takes it down again. The harness knows nothing
else about it: which Docker daemon builds the images, and which base image they start from,
are the provider's to say.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from e2e.cluster.base import ClusterError


@runtime_checkable
class ClusterProvider(Protocol):
    """What the e2e harness needs from a cluster, whoever made it."""

    name: str
    kubeconfig: Path
    # BASE_IMAGE build-arg for app/Dockerfile; None keeps the Dockerfile's default.
    base_image: str | None

    def up(self) -> None:
        """Bring the cluster up, or reuse it if it already runs. Idempotent."""

    def load_images(self, refs: Sequence[str]) -> None:
        """Make images present in the provider's Docker daemon runnable in the cluster."""

    def down(self) -> None:
        """Remove the cluster and everything the provider made for it."""

    def docker_env(self) -> dict[str, str]:
        """Environment (e.g. DOCKER_HOST) for `docker build` against the provider's daemon."""


@runtime_checkable
class ExportsLogs(Protocol):
    """A provider that can copy its nodes' logs out (kind: `kind export logs`)."""

    name: str

    def export_logs(self, dest: Path) -> Path:
        """Write the nodes' logs under dest; returns where."""


@runtime_checkable
class BreaksApiServer(Protocol):
    """A provider that can take its API server away and give it back, as an incident does
    (kind: the control-plane node's static pod)."""

    name: str

    def stop_api_server(self) -> None:
        """Stop the API server (and what cannot run without it); returns once it no longer
        answers."""

    def start_api_server(self) -> None:
        """Start it again; returns once it answers and the control plane acts again."""


@runtime_checkable
class StopsNodes(Protocol):
    """A provider that can stop a worker node and start it again, as a host that fails or is
    shut down for maintenance does (kind: the node's container). Never the control plane."""

    name: str

    def stop_node(self, node: str) -> None:
        """Stop the node ``node`` (its Node name); returns once it has stopped. Refuses the
        control-plane node and a node the cluster does not have (ClusterError)."""

    def start_node(self, node: str, timeout: float = 180) -> None:
        """Start it again; returns once its kubelet has reported it Ready since it started
        (fails after ``timeout`` s)."""


def require_all_present(refs: Sequence[str], present: Sequence[str]) -> None:
    missing = sorted(set(refs) - set(present))
    if missing:
        raise ClusterError(f"images not found in the provider's Docker daemon: {missing}")
