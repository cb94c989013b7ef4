"""Host prerequisites: the Debian packages, kernel modules and sysctls the cluster needs.

A fresh machine has Go, Python and gcc and nothing else of this list, so `up` installs the
missing packages itself with apt-get and says so.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from e2e.host import packages, sysctls
from e2e.host.commands import run
from e2e.providers.base import Progress, ProviderError

log = logging.getLogger("e2e.local.hostprep")

# Debian bookworm packages: the container runtime, CNI plugins, etcd, the image tools and
# what kubelet and kube-proxy call (iptables, conntrack, socat for port-forward, ...).
PACKAGES = (
    "containerd",
    "runc",
    "containernetworking-plugins",
    "etcd-server",
    "docker.io",
    "debootstrap",
    "iptables",
    "conntrack",
    "socat",
    "ethtool",
    "iproute2",
    "ebtables",
    "kmod",
    "util-linux",
    "mount",
)

# Toolchains the build needs; a fresh machine has them, and apt's would be too old for Go.
TOOLCHAINS = ("go", "gcc")

# Sysctls the cluster needs, with the value it needs.
REQUIRED_SYSCTLS = {
    "net/ipv4/ip_forward": "1",
    "net/bridge/bridge-nf-call-iptables": "1",
    "net/bridge/bridge-nf-call-ip6tables": "1",
}

# Sysctls our daemons change on their own (kubelet's kernel tunables, the bridge plugin,
# kube-proxy): recorded before `up` so that `down` puts every one of them back.
TOUCHED_SYSCTLS = (
    *REQUIRED_SYSCTLS,
    "net/ipv4/conf/all/route_localnet",
    "net/ipv4/conf/all/forwarding",
    *sysctls.KUBELET_SYSCTLS,
    "net/netfilter/nf_conntrack_max",
)


def ensure_packages(progress: Progress, log_file: Path) -> None:
    packages.ensure_packages(PACKAGES, progress, log_file)


def ensure_toolchains() -> None:
    absent = [tool for tool in TOOLCHAINS if shutil.which(tool) is None]
    if absent:
        raise ProviderError(
            f"{', '.join(absent)} not on PATH: the local provider builds Kubernetes with Go "
            "(>= 1.24) and the pause binary with gcc"
        )


def ensure_kernel_modules(log_file: Path) -> None:
    """br_netfilter makes bridged pod traffic pass iptables (Services); overlay is for images."""
    if not Path("/proc/sys/net/bridge").is_dir():
        run(["modprobe", "br_netfilter"], log_file=log_file)
    if "overlay" not in Path("/proc/filesystems").read_text():
        run(["modprobe", "overlay"], log_file=log_file)


def snapshot_sysctls() -> dict[str, str]:
    return sysctls.snapshot_sysctls(TOUCHED_SYSCTLS)


def apply_required_sysctls() -> None:
    for name, value in REQUIRED_SYSCTLS.items():
        if sysctls.read_sysctl(name) != value:
            log.info("sysctl %s=%s", name, value)
            sysctls.write_sysctl(name, value)
