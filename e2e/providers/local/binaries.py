"""The local cluster's binaries, built by e2e.builds.golang and cached by version.

Kubernetes v1.34.4's control plane, kubelet, kube-proxy and kubectl, and `cri-sweep` (ours:
crisweep/main.go, built in the same throwaway module) under <cache>/kubernetes/<version>/bin/;
CoreDNS and the distribution registry with `go install`.
"""

from __future__ import annotations

from pathlib import Path

from e2e.builds.golang import KubernetesBuild, go_install
from e2e.builds.record import Built
from e2e.providers.base import Progress
from e2e.providers.local.settings import Settings

# Built from the k8s.io/kubernetes module, in this order (the slowest first is no faster).
KUBERNETES_COMMANDS = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
)
CRI_SWEEP = "cri-sweep"
CRI_SWEEP_SOURCE = Path(__file__).with_name("crisweep") / "main.go"
COREDNS_MODULE = "github.com/coredns/coredns"
REGISTRY_MODULE = "github.com/distribution/distribution/v3"


def kubernetes(settings: Settings, progress: Progress) -> KubernetesBuild:
    return KubernetesBuild(
        settings.kubernetes_version,
        settings.cache,
        progress,
        local={CRI_SWEEP: CRI_SWEEP_SOURCE},
    )


def ensure_kubernetes(settings: Settings, progress: Progress) -> dict[str, Built]:
    return kubernetes(settings, progress).ensure([*KUBERNETES_COMMANDS, CRI_SWEEP])


def ensure_coredns(settings: Settings, progress: Progress) -> Built:
    return go_install(
        "coredns",
        COREDNS_MODULE,
        settings.coredns_version,
        COREDNS_MODULE,
        settings.cache,
        progress,
        commit_variable=f"{COREDNS_MODULE}/coremain.GitCommit",
    )


def ensure_registry(settings: Settings, progress: Progress) -> Built:
    """The CNCF distribution registry, for tests of the paths that push images."""
    return go_install(
        "registry",
        REGISTRY_MODULE,
        settings.registry_version,
        f"{REGISTRY_MODULE}/cmd/registry",
        settings.cache,
        progress,
    )
