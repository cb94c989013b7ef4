"""Kernel tunables: read, set, recorded before a provider changes them and put back after.

Some are not namespaced (kubelet's vm.* and kernel.* tunables): a kubelet in a kind node
changes the host's values, so the host ledger (hostledger.py) records them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from e2e.cluster.base import ClusterError

log = logging.getLogger("e2e.cluster.host.sysctls")

# What any kubelet sets on its own at start-up (protectKernelDefaults=false): not namespaced.
KUBELET_SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)


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
        raise ClusterError(f"cannot set {name}={value}: {exc}") from exc


# Writable entries that change on their own, or hold no setting.
VOLATILE = ("kernel/ns_last_pid", "kernel/random/", "fs/binfmt_misc/", "vm/drop_caches")


def writable_sysctls(roots: Iterable[str] = ("kernel", "vm", "fs")) -> list[str]:
    """Every writable entry under the given /proc/sys directories (the ones not namespaced
    by network: a privileged container that writes them writes the host's)."""
    base = Path("/proc/sys")
    names = []
    for root in roots:
        for path in sorted((base / root).rglob("*")):
            name = str(path.relative_to(base))
            try:
                writable = path.is_file() and bool(path.stat().st_mode & 0o200)
            except OSError:
                continue
            if writable and not name.startswith(VOLATILE):
                names.append(name)
    return names


def snapshot_sysctls(names: Iterable[str]) -> dict[str, str]:
    values = {}
    for name in names:
        value = read_sysctl(name)
        if value is not None:
            values[name] = value
    return values


def restore_sysctls(original: dict[str, str]) -> list[str]:
    """Put each sysctl back; returns what could not be restored."""
    failed = []
    for name, value in original.items():
        if read_sysctl(name) == value:
            continue
        try:
            write_sysctl(name, value)
            log.info("sysctl %s restored to %s", name, value)
        except ClusterError as exc:
            failed.append(str(exc))
    return failed


def changed_sysctls(original: dict[str, str]) -> list[str]:
    """`name=now (was before)` for each recorded sysctl that differs now."""
    found = []
    for name, value in original.items():
        now = read_sysctl(name)
        if now != value:
            found.append(f"sysctl {name}={now} (was {value})")
    return found
