"""Cluster providers behind one interface (see base.py): kind, and existing (any cluster)."""

from __future__ import annotations

import os
from pathlib import Path

from e2e.providers.base import ClusterProvider, ProviderError

PROVIDERS = ("kind", "existing")
# The node image kind runs where none is given (a laptop's, the laptop rehearsal's stand-in).
KIND_IMAGE_ENV = "UPGRADE_GATE_KIND_IMAGE"


def make_provider(
    name: str,
    *,
    kubeconfig: Path | None = None,
    registry: str | None = None,
    kind_path: Path | None = None,
    kubectl_path: Path | None = None,
    cluster_name: str | None = None,
    kind_image: str | None = None,
    kind_nodes: int = 1,
) -> ClusterProvider:
    """The provider called name; imports are lazy so each needs only its own tools.

    kind's node image: ``kind_image``, else ``$UPGRADE_GATE_KIND_IMAGE``, else kind's own
    (``kindest/node``), or where no Docker daemon answers, one built here."""
    if name == "kind":
        from e2e.providers.kind import KindProvider

        return KindProvider(
            cluster_name,
            kind_path=kind_path,
            kubectl_path=kubectl_path,
            image=kind_image or os.environ.get(KIND_IMAGE_ENV) or None,
            kubeconfig=kubeconfig,
            nodes=kind_nodes,
        )
    if name == "existing":
        from e2e.providers.existing import ExistingProvider

        if kubeconfig is None:
            raise ProviderError("the existing provider needs --kubeconfig")
        return ExistingProvider(kubeconfig, registry=registry)
    raise ProviderError(f"unknown provider {name!r}; choose one of {PROVIDERS}")


__all__ = ["PROVIDERS", "ClusterProvider", "ProviderError", "make_provider"]
