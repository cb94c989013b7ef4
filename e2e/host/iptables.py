"""The host's iptables chains, per family and table: recorded before a provider starts, so
that what existed before is never taken for ours, and what is new afterwards is found."""

from __future__ import annotations

import subprocess

TABLES = ("filter", "nat", "mangle", "raw")
FAMILIES = {
    "ipv4": ("iptables-save", "iptables-restore"),
    "ipv6": ("ip6tables-save", "ip6tables-restore"),
}


def save(family: str, table: str) -> list[str]:
    saver = FAMILIES[family][0]
    done = subprocess.run([saver, "-t", table], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return []
    return done.stdout.splitlines()


def chains(family: str, table: str) -> set[str]:
    return {line[1:].split()[0] for line in save(family, table) if line.startswith(":")}


def chain_snapshot() -> dict[str, dict[str, list[str]]]:
    """Every chain per family and table."""
    return {
        family: {table: sorted(chains(family, table)) for table in TABLES} for family in FAMILIES
    }


def new_chains(baseline: dict[str, dict[str, list[str]]]) -> list[str]:
    """`family/table/chain` of every chain that was not there in `baseline`."""
    found = []
    for family in FAMILIES:
        for table in TABLES:
            before = set(baseline.get(family, {}).get(table, []))
            found += [f"{family}/{table}/{c}" for c in sorted(chains(family, table) - before)]
    return found
