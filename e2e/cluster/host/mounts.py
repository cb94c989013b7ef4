"""Mounts and cgroups the cluster leaves on the host, found and removed.

Our Docker daemon (and containerd under it) mounts overlay root filesystems, shm and network
namespaces, and a debootstrap build mounts /proc and /dev in its root. All of them live under
our state and runtime directories, so "ours" is "under one of those".
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path

from e2e.cluster.base import ClusterError

log = logging.getLogger("e2e.cluster.host.mounts")

CGROUP_V1 = Path("/sys/fs/cgroup")


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mount_points() -> list[Path]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if len(fields) > 4:
            points.append(Path(_unescape(fields[4])))
    return points


def _under(path: Path, roots: Iterable[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def mounts_under(roots: Iterable[Path]) -> list[Path]:
    roots = [r.resolve() for r in roots]
    return [p for p in mount_points() if _under(p, roots)]


def unmount_under(roots: Iterable[Path]) -> None:
    """Unmount everything under roots, deepest first; lazily if a mount stays busy."""
    roots = list(roots)
    for _ in range(20):
        points = sorted(set(mounts_under(roots)), key=lambda p: -len(p.parts))
        if not points:
            return
        for point in points:
            done = subprocess.run(
                ["umount", str(point)], capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                log.warning("umount %s: %s; detaching lazily", point, done.stderr.strip())
                subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)
            else:
                log.info("unmounted %s", point)
    left = mounts_under(roots)
    if left:
        raise ClusterError(f"mounts survived unmounting: {[str(p) for p in left]}")


# --- cgroups (v1: one hierarchy per controller) ----------------------------------------------
def hierarchies() -> list[Path]:
    if not CGROUP_V1.is_dir():
        return []
    found = []
    for entry in sorted(CGROUP_V1.iterdir()):
        # cgroup v1 controllers; 'unified' is the v2 mount of a hybrid host.
        if entry.is_dir() and not entry.is_symlink() and (entry / "cgroup.procs").exists():
            found.append(entry)
    return found


def create_cgroup_root(name: str) -> None:
    """kubelet needs its cgroupRoot to exist in every hierarchy before it starts."""
    for hierarchy in hierarchies():
        path = hierarchy / name
        path.mkdir(exist_ok=True)
        # A new cpuset cgroup has no CPUs or memory nodes; copy the parent's or no task fits.
        for knob in ("cpuset.cpus", "cpuset.mems"):
            own = path / knob
            if own.exists() and not own.read_text().strip():
                own.write_text((hierarchy / knob).read_text())


def cgroup_tasks(name: str) -> set[int]:
    """PIDs in any cgroup under /<name>: containers whose runtime died before stopping them."""
    pids: set[int] = set()
    for root in [h / name for h in hierarchies()]:
        for procs in root.rglob("cgroup.procs") if root.is_dir() else []:
            with contextlib.suppress(OSError):
                pids |= {int(line) for line in procs.read_text().split()}
    return pids


def cgroup_leftovers(name: str) -> list[Path]:
    return [h / name for h in hierarchies() if (h / name).is_dir()]


def remove_cgroups(name: str) -> None:
    for root in cgroup_leftovers(name):
        for directory, _subdirs, _files in os.walk(root, topdown=False):
            try:
                Path(directory).rmdir()
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("cgroup %s not removed: %s", directory, exc)
    left = cgroup_leftovers(name)
    if left:
        raise ClusterError(f"cgroups still hold tasks: {[str(p) for p in left]}")
