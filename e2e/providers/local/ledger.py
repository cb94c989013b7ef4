"""What the host looked like before the cluster, and what of the cluster is still on it.

`up` records the ledger once (before anything starts); `down` restores from it, and
`leftovers()` is the check both `down` and the smoke test use: any process, mount, interface,
iptables chain, cgroup, sysctl or file of ours that is still there.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from e2e.host import iptables, mounts, sysctls
from e2e.host.processes import ProcessTable, processes_matching
from e2e.providers.local import hostprep, network
from e2e.providers.local.settings import CGROUP_ROOT, Settings

# Host directories our daemons create on their own whatever we configure; any that did not
# exist before `up` is removed by `down`.
HOST_DIRS = (
    "/var/lib/cni",
    "/var/lib/cni/results",
    "/var/log/containers",
    "/var/log/pods",
)
CONTAINER_LOG_LINKS = Path("/var/log/containers")


@dataclass
class Ledger:
    sysctls: dict[str, str] = field(default_factory=dict)
    chains: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    absent_dirs: list[str] = field(default_factory=list)
    cni_cache: list[str] = field(default_factory=list)

    @classmethod
    def record(cls) -> Ledger:
        return cls(
            sysctls=hostprep.snapshot_sysctls(),
            chains=iptables.chain_snapshot(),
            absent_dirs=[d for d in HOST_DIRS if not Path(d).exists()],
            cni_cache=network.cni_cache_names(),
        )

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Ledger | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


def mount_roots(settings: Settings) -> list[Path]:
    return [settings.data_dir, settings.run_dir, settings.docker_data_root]


def our_processes(settings: Settings) -> list[tuple[int, list[str]]]:
    """Processes whose command line names our binaries or our runtime/state directories.

    That catches the daemons, containerd's shims (`-address <our socket>`) and anything
    started from our cache, whatever its pidfile says.
    """
    markers = (
        str(settings.run_dir),
        str(settings.data_dir),
        str(settings.kubernetes_bin),
        str(settings.coredns_bin),
        str(settings.registry_bin),
    )
    me = os.getpid()

    def ours(pid: int, argv: list[str]) -> bool:
        return pid != me and any(m in arg for arg in argv for m in markers)

    return processes_matching(ours)


def container_log_links(settings: Settings) -> list[Path]:
    if not CONTAINER_LOG_LINKS.is_dir():
        return []
    links = []
    for link in CONTAINER_LOG_LINKS.iterdir():
        if link.is_symlink() and str(settings.pod_logs) in str(link.readlink()):
            links.append(link)
    return links


def leftovers(settings: Settings, ledger: Ledger | None) -> list[str]:
    found: list[str] = []
    table = ProcessTable(settings.pids_dir)
    found += [f"process {r.name} PID {r.pid}" for r in table.alive()]
    found += [f"process PID {pid}: {' '.join(argv)[:160]}" for pid, argv in our_processes(settings)]
    found += [f"mount {p}" for p in mounts.mounts_under(mount_roots(settings))]
    found += [f"interface {name}" for name in network.our_interfaces()]
    found += [f"iptables {c}" for c in network.iptables_leftovers(ledger.chains if ledger else {})]
    found += [f"cgroup {p}" for p in mounts.cgroup_leftovers(CGROUP_ROOT)]
    if ledger is not None:
        found += sysctls.changed_sysctls(ledger.sysctls)
        found += [f"directory {d}" for d in ledger.absent_dirs if Path(d).exists()]
    found += [f"file {p}" for p in network.cni_cache_files(ledger.cni_cache if ledger else [])]
    found += [f"file {p}" for p in container_log_links(settings)]
    for path in (settings.data_dir, settings.run_dir, settings.kubeconfig):
        if path.exists():
            found.append(f"state {path}")
    return found
