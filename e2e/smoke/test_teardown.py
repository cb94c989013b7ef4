"""`down` stops every process it started and removes every mount, interface, rule and file.

Runs last (see conftest.py). Each check looks at the host itself, not at the provider's
bookkeeping alone: the PIDs recorded before `down`, /proc/self/mountinfo, `ip link`,
iptables-save, the cgroup hierarchies.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from e2e.host.processes import proc_start_time
from e2e.providers.local.cluster import LocalProvider
from e2e.providers.local.ledger import Ledger, leftovers
from e2e.providers.local.settings import BRIDGE, CGROUP_ROOT, CHAIN_PREFIXES

pytestmark = pytest.mark.smoke


def _chains() -> set[str]:
    found = set()
    for saver in ("iptables-save", "ip6tables-save"):
        out = subprocess.run([saver], capture_output=True, text=True, check=False).stdout
        found |= {
            f"{saver}:{line[1:].split()[0]}" for line in out.splitlines() if line.startswith(":")
        }
    return found


def test_down_leaves_nothing_behind(provider: LocalProvider, keep_cluster: bool) -> None:
    if keep_cluster:
        pytest.skip("--keep-cluster: the cluster stays up")
    s = provider.settings
    ledger = Ledger.load(s.ledger)
    assert ledger is not None, "up records the host's state before it changes it"
    daemons = provider.table.alive()
    assert {d.name for d in daemons} >= {"etcd", "kube-apiserver", "kubelet", "containerd"}
    baseline_chains = {
        f"{'iptables-save' if fam == 'ipv4' else 'ip6tables-save'}:{c}"
        for fam, tables in ledger.chains.items()
        for chains in tables.values()
        for c in chains
    }
    assert any(c.split(":", 1)[1].startswith("KUBE-") for c in _chains() - baseline_chains)

    provider.down()

    for daemon in daemons:
        assert proc_start_time(daemon.pid) != daemon.start_time, f"{daemon.name} still runs"
    mountinfo = Path("/proc/self/mountinfo").read_text()
    for root in (s.data_dir, s.run_dir):
        assert str(root) not in mountinfo
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert f" {BRIDGE}:" not in links
    assert "master " + BRIDGE not in links
    new_chains = {
        c for c in _chains() - baseline_chains if c.split(":", 1)[1].startswith(CHAIN_PREFIXES)
    }
    assert not new_chains
    assert not list(Path("/sys/fs/cgroup").glob(f"*/{CGROUP_ROOT}"))
    assert not s.kubeconfig.exists()
    assert leftovers(s, ledger) == []
