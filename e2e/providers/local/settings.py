"""Versions, paths, addresses and ports of the local cluster: one place, so they agree."""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from e2e.host.layout import ProviderLayout
from e2e.providers.base import cache_root

# 1.34 is the last minor whose kubelet runs on cgroup v1 without opting in (1.35 sets
# failCgroupV1 by default); this machine has cgroup v1 only for the controllers kubelet needs.
KUBERNETES_VERSION = "v1.34.4"
# The CoreDNS release kubeadm pairs with Kubernetes 1.34 (cmd/kubeadm/app/constants).
COREDNS_VERSION = "v1.12.1"
# The CNCF distribution registry, for the paths that push images (smoke-tested here).
REGISTRY_VERSION = "v3.0.0"
# The tag upstream gives the pause image built from the same tree (build/pause/Makefile).
PAUSE_VERSION = "3.10.1"

# Names that say "ours" wherever they appear on the host: interfaces, chains, cgroups, images.
NODE_NAME = "ugate-local"
BRIDGE = "ugate0"
CNI_NETWORK = "ugate"
CGROUP_ROOT = "upgrade-gate"
IMAGE_DOMAIN = "upgrade-gate.local"
EGRESS_CHAIN = "UGATE-EGRESS"
FORWARD_CHAIN = "UGATE-FORWARD"

# Chain prefixes that only this cluster's components create on the host.
CHAIN_PREFIXES = ("KUBE-", "CNI-", "UGATE-")


@dataclass(frozen=True)
class Ports:
    etcd_client: int = 12379
    etcd_peer: int = 12380
    apiserver: int = 6443
    controller_manager: int = 10257
    scheduler: int = 10259
    kubelet: int = 10250
    kubelet_healthz: int = 10248
    kube_proxy_healthz: int = 10256
    kube_proxy_metrics: int = 10249


@dataclass(frozen=True)
class Settings(ProviderLayout):
    """Everything the local provider derives its files and flags from."""

    kubernetes_version: str = KUBERNETES_VERSION
    coredns_version: str = COREDNS_VERSION
    registry_version: str = REGISTRY_VERSION
    pause_version: str = PAUSE_VERSION
    cache: Path = field(default_factory=cache_root)
    # Sockets must fit in 108 bytes whatever XDG_CACHE_HOME is, so runtime files live in /run.
    run_dir: Path = Path("/run/upgrade-gate/local")
    pod_cidr: str = "10.244.0.0/24"
    cluster_cidr: str = "10.244.0.0/16"
    service_cidr: str = "10.96.0.0/16"
    service_ip: str = "10.96.0.1"
    dns_ip: str = "10.96.0.10"
    cluster_domain: str = "cluster.local"
    ports: Ports = field(default_factory=Ports)

    # --- cached artefacts (kept across `down`) -----------------------------------------
    @property
    def kubernetes_dir(self) -> Path:
        return self.cache / "kubernetes" / self.kubernetes_version

    @property
    def kubernetes_bin(self) -> Path:
        return self.kubernetes_dir / "bin"

    @property
    def coredns_bin(self) -> Path:
        return self.cache / "coredns" / self.coredns_version / "bin"

    @property
    def registry_bin(self) -> Path:
        return self.cache / "registry" / self.registry_version / "bin"

    @property
    def docker_data_root(self) -> Path:
        return self.cache / "docker"

    def binary(self, name: str) -> Path:
        if name == "coredns":
            return self.coredns_bin / name
        if name == "registry":
            return self.registry_bin / name
        return self.kubernetes_bin / name

    @property
    def kubectl(self) -> Path:
        return self.binary("kubectl")

    # --- cluster state (removed by `down`, except the logs) -----------------------------
    @property
    def state_dir(self) -> Path:
        return self.cache / "local"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def ledger(self) -> Path:
        """What the host looked like before the first `up`, so `down` can put it back."""
        return self.state_dir / "ledger.json"

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def pki_dir(self) -> Path:
        return self.data_dir / "pki"

    @property
    def etc_dir(self) -> Path:
        return self.data_dir / "etc"

    @property
    def cni_conf_dir(self) -> Path:
        return self.data_dir / "cni" / "net.d"

    @property
    def cni_ipam_dir(self) -> Path:
        return self.data_dir / "cni" / "ipam"

    @property
    def etcd_data(self) -> Path:
        return self.data_dir / "etcd"

    @property
    def containerd_root(self) -> Path:
        return self.data_dir / "containerd"

    @property
    def kubelet_root(self) -> Path:
        return self.data_dir / "kubelet"

    @property
    def pod_logs(self) -> Path:
        return self.data_dir / "pod-logs"

    # --- runtime files -------------------------------------------------------------------
    @property
    def containerd_state(self) -> Path:
        return self.run_dir / "containerd"

    @property
    def containerd_socket(self) -> Path:
        return self.run_dir / "containerd.sock"

    # --- images ----------------------------------------------------------------------------
    @property
    def pause_image(self) -> str:
        return f"{IMAGE_DOMAIN}/pause:{self.pause_version}"

    @property
    def coredns_image(self) -> str:
        return f"{IMAGE_DOMAIN}/coredns:{self.coredns_version}"

    @property
    def minor(self) -> str:
        match = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)", self.kubernetes_version)
        if not match:
            raise ValueError(f"not a release version: {self.kubernetes_version}")
        return match.group(2)


def node_ip() -> str:
    """The host's address on its default route: where pods reach the API server.

    Pods cannot use 127.0.0.1 (that is their own loopback), so the API server advertises an
    address of the host; traffic to it never leaves the machine.
    """
    override = os.environ.get("UPGRADE_GATE_NODE_IP")
    if override:
        return override
    out = subprocess.run(
        ["ip", "-j", "-4", "route", "show", "default"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    routes = json.loads(out or "[]")
    if not routes:
        raise RuntimeError("no IPv4 default route; set UPGRADE_GATE_NODE_IP to a host address")
    device = routes[0]["dev"]
    addrs = subprocess.run(
        ["ip", "-j", "-4", "addr", "show", "dev", device],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for link in json.loads(addrs):
        for info in link.get("addr_info", []):
            if info.get("family") == "inet":
                return str(info["local"])
    raise RuntimeError(f"no IPv4 address on {device}; set UPGRADE_GATE_NODE_IP")
