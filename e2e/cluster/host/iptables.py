"""The host's iptables chains, per family and table: recorded before a provider starts, so
that what existed before is never taken for ours, and what is new afterwards is found."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

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


# --- every rule, for a host daemon whose changes are undone rule by rule ---------------------
# family -> table -> {"policies": {chain: policy}, "chains": [...], "rules": ["-A ..."]}
RuleSnapshot = dict[str, dict[str, dict[str, Any]]]
# Whether a rule (or, with an empty rule, a chain) is one the caller may undo: (chain, rule).
Ours = Callable[[str, str], bool]


def table_state(family: str, table: str) -> dict[str, Any]:
    """A table as `iptables-save` shows it, without counters: the built-in chains' policies,
    the user chains, and the rules in order. A table with nothing in it (built-in chains that
    accept, no rule) is the same as no table, so both read as empty."""
    policies: dict[str, str] = {}
    user: list[str] = []
    rules: list[str] = []
    for line in save(family, table):
        if line.startswith(":"):
            name, policy = line[1:].split()[:2]
            if policy == "-":
                user.append(name)
            else:
                policies[name] = policy
        elif line.startswith("-A "):
            rules.append(line)
    policies = {c: p for c, p in policies.items() if p != "ACCEPT"}
    return {"policies": policies, "chains": sorted(user), "rules": rules}


def rule_snapshot() -> RuleSnapshot:
    return {family: {table: table_state(family, table) for table in TABLES} for family in FAMILIES}


def by_chain(rules: list[str]) -> dict[str, list[str]]:
    """`-A CHAIN ...` lines per chain, in their order (a rule's place in its chain matters)."""
    chains: dict[str, list[str]] = {}
    for rule in rules:
        chains.setdefault(rule.split(maxsplit=2)[1], []).append(rule)
    return chains


def added_and_removed(before: list[str], now: list[str]) -> tuple[list[int], list[str]]:
    """Which of `now` (their indexes) were added to `before`, and which of `before` are gone,
    matching in order: a rule that was there before and is added again is the later one."""
    added, j = [], 0
    for i, rule in enumerate(now):
        if j < len(before) and rule == before[j]:
            j += 1
        else:
            added.append(i)
    skipped = set(added)
    matched = [r for k, r in enumerate(now) if k not in skipped]
    removed = list(before)
    for rule in matched:
        removed.remove(rule)
    return added, removed


def _empty() -> dict[str, Any]:
    return {"policies": {}, "chains": [], "rules": []}


def rule_differences(baseline: RuleSnapshot, ours: Ours) -> list[str]:
    """What differs from `baseline` among what `ours` claims, one line each: a chain added or
    removed, a built-in chain's policy, a rule added, removed or moved."""
    found: list[str] = []
    now = rule_snapshot()
    for family in FAMILIES:
        for table in TABLES:
            was = baseline.get(family, {}).get(table, _empty())
            is_ = now[family][table]
            where = f"{family}/{table}"
            for chain in sorted(set(is_["chains"]) ^ set(was["chains"])):
                if ours(chain, ""):
                    what = "added" if chain in is_["chains"] else "removed"
                    found.append(f"iptables {where}: chain {chain} {what}")
            for chain in sorted(set(was["policies"]) | set(is_["policies"])):
                before = was["policies"].get(chain, "ACCEPT")
                after = is_["policies"].get(chain, "ACCEPT")
                if before != after:
                    found.append(f"iptables {where}: {chain} policy {after} (was {before})")
            old, new = by_chain(was["rules"]), by_chain(is_["rules"])
            for chain in sorted(set(old) | set(new)):
                added, removed = added_and_removed(old.get(chain, []), new.get(chain, []))
                rules = new.get(chain, [])
                found += [
                    f"iptables {where}: rule added: {rules[i]}"
                    for i in added
                    if ours(chain, rules[i])
                ]
                found += [f"iptables {where}: rule removed: {r}" for r in removed if ours(chain, r)]
    return found


def undo_since(baseline: RuleSnapshot, ours: Ours) -> list[str]:
    """Delete every rule `ours` claims that was added since `baseline` (by its position, the
    last first, so a rule that was there before stays where it was), then the user chains it
    claims that are new, and put the built-in chains' policies back. Returns what could not
    be undone; a rule of someone else's is never touched."""
    failed: list[str] = []
    now = rule_snapshot()
    for family, (saver, _restorer) in FAMILIES.items():
        binary = saver.removesuffix("-save")
        for table in TABLES:
            was = baseline.get(family, {}).get(table, _empty())
            is_ = now[family][table]
            old, new = by_chain(was["rules"]), by_chain(is_["rules"])
            for chain, rules in new.items():
                added, _removed = added_and_removed(old.get(chain, []), rules)
                for index in reversed(added):
                    if ours(chain, rules[index]):
                        failed += _iptables(binary, table, ["-D", chain, str(index + 1)])
            for chain in sorted(set(is_["chains"]) - set(was["chains"])):
                if ours(chain, ""):
                    failed += _iptables(binary, table, ["-F", chain])
            for chain in sorted(set(is_["chains"]) - set(was["chains"])):
                if ours(chain, ""):
                    failed += _iptables(binary, table, ["-X", chain])
            for chain in sorted(set(was["policies"]) | set(is_["policies"])):
                before = was["policies"].get(chain, "ACCEPT")
                if is_["policies"].get(chain, "ACCEPT") != before:
                    failed += _iptables(binary, table, ["-P", chain, before])
    return failed


def _iptables(binary: str, table: str, args: list[str]) -> list[str]:
    done = subprocess.run(
        [binary, "-w", "-t", table, *args], capture_output=True, text=True, check=False
    )
    if done.returncode == 0:
        return []
    return [f"{binary} -t {table} {' '.join(args)}: {done.stderr.strip()}"]
