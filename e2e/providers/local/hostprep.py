"""Host prerequisites: the Debian packages, kernel modules and sysctls the cluster needs.

A fresh machine has Go, Python and gcc and nothing else of this list, so `up` installs the
missing packages itself with apt-get and says so.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

from e2e.providers.base import Progress, ProviderError
from e2e.providers.local.commands import run

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
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/netfilter/nf_conntrack_max",
)


def missing_packages() -> list[str]:
    missing = []
    for package in PACKAGES:
        done = subprocess.run(
            ["dpkg-query", "-W", "-f=${db:Status-Status}", package],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.stdout.strip() != "installed":
            missing.append(package)
    return missing


def ensure_packages(progress: Progress, log_file: Path) -> None:
    missing = missing_packages()
    if not missing:
        return
    progress.line(f"host-prerequisites: installing {' '.join(missing)} with apt-get")
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    # The packages' init scripts would start a system etcd, containerd and dockerd (with its
    # bridge and NAT rules); the cluster runs its own, so forbid service starts meanwhile.
    policy = Path("/usr/sbin/policy-rc.d")
    placed = not policy.exists()
    if placed:
        policy.write_text(
            "#!/bin/sh\n# upgrade-gate: installing packages starts no service\nexit 101\n"
        )
        policy.chmod(0o755)
    try:
        run(["apt-get", "update"], env=env, log_file=log_file)
        run(
            ["apt-get", "install", "-y", "--no-install-recommends", *missing],
            env=env,
            log_file=log_file,
        )
    finally:
        if placed:
            policy.unlink(missing_ok=True)
    still = missing_packages()
    if still:
        raise ProviderError(f"apt-get left these packages uninstalled: {still}; see {log_file}")


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


def read_sysctl(name: str) -> str | None:
    path = Path("/proc/sys") / name
    try:
        return path.read_text().strip()
    except OSError:
        return None


def write_sysctl(name: str, value: str) -> None:
    path = Path("/proc/sys") / name
    try:
        path.write_text(value + "\n")
    except OSError as exc:
        raise ProviderError(f"cannot set {name}={value}: {exc}") from exc


def snapshot_sysctls() -> dict[str, str]:
    values = {}
    for name in TOUCHED_SYSCTLS:
        value = read_sysctl(name)
        if value is not None:
            values[name] = value
    return values


def apply_required_sysctls() -> None:
    for name, value in REQUIRED_SYSCTLS.items():
        if read_sysctl(name) != value:
            log.info("sysctl %s=%s", name, value)
            write_sysctl(name, value)


def restore_sysctls(original: dict[str, str]) -> list[str]:
    """Put each sysctl back; returns what could not be restored."""
    failed = []
    for name, value in original.items():
        if read_sysctl(name) == value:
            continue
        try:
            write_sysctl(name, value)
            log.info("sysctl %s restored to %s", name, value)
        except ProviderError as exc:
            failed.append(str(exc))
    return failed
