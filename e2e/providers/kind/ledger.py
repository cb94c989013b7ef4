"""What the host looked like before the kind provider's first `up`, and what of it is left.

Everything kind makes lives in our dockerd's network namespace, so the host's interfaces and
iptables chains must be exactly as before. What can still reach the host: directories Docker
creates for bind mounts (kind mounts /lib/modules), tunables a privileged node writes (kubelet
sets vm.* and kernel.* values, which are not namespaced), our processes, mounts and cgroups.
`leftovers()` is the check both `down` and the teardown test use.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from e2e.host import iptables, mounts, sysctls
from e2e.host.processes import processes_matching
from e2e.providers.kind.settings import CGROUP_PARENT, KindSettings

# Host paths Docker or kind create when they are missing (kind bind-mounts /lib/modules;
# dockerd 20.10 writes a trust key); any that did not exist before the first `up` is removed
# by `down` (a directory only if all it holds is empty directories: dockerd makes
# /run/docker/plugins, its plugin sockets' directory, whatever its --exec-root).
HOST_PATHS = ("/etc/docker/key.json", "/lib/modules", "/etc/docker", "/run/docker")


@dataclass
class KindLedger:
    absent_paths: list[str] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    chains: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    interfaces: list[str] = field(default_factory=list)

    @classmethod
    def record(cls) -> KindLedger:
        return cls(
            absent_paths=[d for d in HOST_PATHS if not Path(d).exists()],
            sysctls=sysctls.snapshot_sysctls(sysctls.writable_sysctls()),
            chains=iptables.chain_snapshot(),
            interfaces=interfaces(),
        )

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    def remove_absent_paths(self) -> list[str]:
        """Remove what of the paths absent before is there now: a file, or a directory whose
        whole tree is empty directories (all of it or nothing: a tree that holds a file, a
        socket or a link now is someone's and stays, as does a directory that is a link).
        Returns the paths left."""
        kept = []
        for absent in self.absent_paths:  # files first, then their directories
            path = Path(absent)
            if path.is_file() and not path.is_symlink():
                path.unlink()
            elif path.is_dir() and not path.is_symlink() and _only_directories(path):
                for below, _dirs, _files in os.walk(path, topdown=False):  # the deepest first
                    with contextlib.suppress(OSError):  # made meanwhile: kept, and reported
                        Path(below).rmdir()
            if path.exists() or path.is_symlink():
                kept.append(absent)
        return kept

    @classmethod
    def load(cls, path: Path) -> KindLedger | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


# What our dockerd and kind's nodes would add to a network namespace: if any showed up on the
# host, the namespace leaked. (Other chains and veths may be the local provider's.)
DOCKER_CHAIN_PREFIX = "DOCKER"


def _only_directories(top: Path) -> bool:
    """Whether everything under `top` is a directory (links are not followed)."""
    for below, dirs, files in os.walk(top):
        if files or any((Path(below) / d).is_symlink() for d in dirs):
            return False
    return True


def interfaces() -> list[str]:
    done = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=False)
    return sorted(link["ifname"] for link in json.loads(done.stdout or "[]"))


def docker_interfaces() -> list[str]:
    """Docker bridges on the host, and the veths attached to them."""
    done = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=False)
    links = json.loads(done.stdout or "[]")
    bridges = {
        link["ifname"]
        for link in links
        if link["ifname"] == "docker0" or link["ifname"].startswith("br-")
    }
    return sorted(
        link["ifname"]
        for link in links
        if link["ifname"] in bridges or link.get("master") in bridges
    )


def our_processes(settings: KindSettings) -> list[tuple[int, list[str]]]:
    """Processes whose command line names our runtime or data directories: dockerd, its
    containerd and shims, docker-proxy, the API server relay."""
    markers = (str(settings.run_dir), str(settings.docker_data_root))
    me = os.getpid()

    def ours(pid: int, argv: list[str]) -> bool:
        return pid != me and any(m in arg for arg in argv for m in markers)

    return processes_matching(ours)


def mount_roots(settings: KindSettings) -> list[Path]:
    return [settings.run_dir, settings.docker_data_root]


def leftovers(settings: KindSettings, ledger: KindLedger | None) -> list[str]:
    found: list[str] = []
    found += [f"process PID {pid}: {' '.join(argv)[:160]}" for pid, argv in our_processes(settings)]
    found += [f"mount {p}" for p in mounts.mounts_under(mount_roots(settings))]
    found += [f"cgroup {p}" for p in mounts.cgroup_leftovers(CGROUP_PARENT)]
    if settings.run_dir.exists():
        found.append(f"directory {settings.run_dir}")
    if ledger is not None:
        found += [f"path {d}" for d in ledger.absent_paths if Path(d).exists()]
        found += sysctls.changed_sysctls(ledger.sysctls)
        found += [
            f"iptables {c}"
            for c in iptables.new_chains(ledger.chains)
            if c.rsplit("/", 1)[1].startswith(DOCKER_CHAIN_PREFIX)
        ]
        new = set(docker_interfaces()) - set(ledger.interfaces)
        found += [f"interface {i}" for i in sorted(new)]
    return found
