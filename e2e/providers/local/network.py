"""Pod networking on the host, and taking every trace of it away again.

Pods sit on one Linux bridge (CNI bridge + host-local IPAM + portmap). Nothing here sends a
packet off the machine: pod traffic is not masqueraded, and a mangle-table rule drops anything
a pod sends that would leave through another interface, so a pod can reach the host, other
pods and Services, and nothing else, whatever policy the host's FORWARD chain has.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Iterable
from pathlib import Path

from e2e.host.commands import run
from e2e.host.iptables import FAMILIES, TABLES, chains, save
from e2e.providers.base import ProviderError
from e2e.providers.local.settings import (
    BRIDGE,
    CHAIN_PREFIXES,
    CNI_NETWORK,
    EGRESS_CHAIN,
    FORWARD_CHAIN,
    Settings,
)

log = logging.getLogger("e2e.local.network")

CNI_CACHE = Path("/var/lib/cni")


def write_cni_config(settings: Settings) -> Path:
    """The conflist containerd's CRI plugin reads; host-local keeps its leases in our state."""
    settings.cni_conf_dir.mkdir(parents=True, exist_ok=True)
    conflist = {
        "cniVersion": "0.4.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                # No masquerade: pods have no business talking to the outside.
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": settings.pod_cidr}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(settings.cni_ipam_dir),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    path = settings.cni_conf_dir / f"10-{CNI_NETWORK}.conflist"
    path.write_text(json.dumps(conflist, indent=2) + "\n")
    return path


# --- iptables -------------------------------------------------------------------------------
def _ours(chain: str) -> bool:
    return chain.startswith(CHAIN_PREFIXES)


def our_chains(baseline: dict[str, dict[str, list[str]]]) -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for family in FAMILIES:
        for table in TABLES:
            before = set(baseline.get(family, {}).get(table, []))
            mine = sorted(c for c in chains(family, table) if _ours(c) and c not in before)
            if mine:
                found[(family, table)] = mine
    return found


def _jumps_to(rule: str, targets: Iterable[str]) -> bool:
    words = rule.split()
    for flag in ("-j", "-g"):
        if flag in words:
            index = words.index(flag)
            if index + 1 < len(words) and words[index + 1] in targets:
                return True
    return False


def remove_chains(baseline: dict[str, dict[str, list[str]]]) -> None:
    """Delete the rules that jump into our chains, then flush and delete the chains.

    `--noflush` restore changes only what the script names, in one transaction per table,
    so rules that others (Docker, a VPN) keep in the same tables are left alone.
    """
    for (family, table), mine in our_chains(baseline).items():
        targets = set(mine)
        script = [f"*{table}"]
        for line in save(family, table):
            if not line.startswith("-A "):
                continue
            chain = line.split()[1]
            if chain not in targets and _jumps_to(line, targets):
                script.append("-D " + line[3:])
        script += [f"-F {chain}" for chain in mine]
        script += [f"-X {chain}" for chain in mine]
        script.append("COMMIT")
        restorer = FAMILIES[family][1]
        log.info("removing %s %s chains: %s", family, table, " ".join(mine))
        run([restorer, "--noflush"], input_bytes=("\n".join(script) + "\n").encode())


def install_pod_rules() -> None:
    """The host's side of pod networking: pods reach each other, and nothing off the host.

    A host where Docker runs has filter/FORWARD's policy at DROP, which drops pod-to-pod and
    pod-to-Service traffic on the bridge unless a rule accepts it (the CNI bridge plugin adds
    none, and kube-proxy accepts only what it marked). Both rules sit in chains of ours, found
    and removed by `remove_chains` like kube-proxy's.
    """
    # mangle/FORWARD runs before filter/FORWARD: what leaves the bridge is dropped first.
    _chain_with_jump(
        "mangle",
        EGRESS_CHAIN,
        ["-j", "DROP"],
        "upgrade-gate: pod traffic stays on this host",
        ["-i", BRIDGE, "!", "-o", BRIDGE],
    )
    _chain_with_jump(
        "filter",
        FORWARD_CHAIN,
        ["-j", "ACCEPT"],
        "upgrade-gate: pods reach pods and Services whatever the FORWARD policy",
        ["-i", BRIDGE, "-o", BRIDGE],
    )


def _chain_with_jump(
    table: str, chain: str, rule: list[str], comment: str, match: list[str]
) -> None:
    """Make `chain` in `table` holding `rule`, and jump to it first thing in FORWARD."""
    for family in FAMILIES:
        binary = "iptables" if family == "ipv4" else "ip6tables"
        if chain in chains(family, table):
            continue
        try:
            run([binary, "-w", "-t", table, "-N", chain])
            run(
                [
                    binary,
                    "-w",
                    "-t",
                    table,
                    "-A",
                    chain,
                    "-m",
                    "comment",
                    "--comment",
                    comment,
                    *rule,
                ]
            )
            run([binary, "-w", "-t", table, "-I", "FORWARD", "1", *match, "-j", chain])
        except ProviderError:
            if family == "ipv4":
                raise
            log.warning("no ip6tables %s table here: %s skipped (pods have no IPv6)", table, chain)


def iptables_leftovers(baseline: dict[str, dict[str, list[str]]]) -> list[str]:
    return [
        f"{family} {table} chain {chain}"
        for (family, table), mine in our_chains(baseline).items()
        for chain in mine
    ]


# --- interfaces -------------------------------------------------------------------------------
def _links(*selector: str) -> list[dict[str, object]]:
    done = subprocess.run(
        ["ip", "-j", "link", "show", *selector], capture_output=True, text=True, check=False
    )
    if done.returncode != 0 or not done.stdout.strip():
        return []
    links: list[dict[str, object]] = json.loads(done.stdout)
    return links


def our_interfaces() -> list[str]:
    names = [str(link["ifname"]) for link in _links("master", BRIDGE)]
    if _links("dev", BRIDGE):
        names.append(BRIDGE)
    return names


def remove_interfaces() -> None:
    for name in our_interfaces():
        log.info("deleting interface %s", name)
        run(["ip", "link", "delete", name], check=False)


# --- CNI's own cache (containerd 1.6 keeps it in /var/lib/cni whatever we configure) ---------
def cni_cache_names() -> list[str]:
    results = CNI_CACHE / "results"
    return sorted(p.name for p in results.iterdir()) if results.is_dir() else []


def cni_cache_files(before: Iterable[str]) -> list[Path]:
    """Cache entries of our network, and loopback entries that appeared since the ledger.

    Each pod sandbox leaves `ugate-<id>-eth0` and `cni-loopback-<id>-lo` here; CNI DEL removes
    them, but a runtime that died first does not get to.
    """
    known = set(before)
    return [
        CNI_CACHE / "results" / name
        for name in cni_cache_names()
        if name.startswith(f"{CNI_NETWORK}-")
        or (name.startswith("cni-loopback-") and name not in known)
    ]


def remove_cni_cache(before: Iterable[str]) -> None:
    for path in cni_cache_files(before):
        log.info("removing CNI cache entry %s", path.name)
        path.unlink(missing_ok=True)
