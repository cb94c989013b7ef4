"""The rehearsal's iptables undo, on real iptables in a network namespace of the test's own
(`unshare --net`: the host's rules are never touched). Needs root."""

from __future__ import annotations

import os
import sys
import textwrap

import pytest

from e2e.cluster.base import Progress
from e2e.cluster.host.packages import ensure_packages
from tests.unit.conftest import in_own_netns

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="a network namespace of its own needs root (.ci/run is root)"
)

# Runs inside the namespace: what was there, what dockerd and someone else add, the undo.
SCRIPT = textwrap.dedent(
    """
    import json, subprocess
    from e2e.cluster.host import iptables
    from e2e.rehearsal.ledger import docker_made

    def ipt(*args):
        subprocess.run(["iptables", "-w", *args], check=True)

    def forward():
        return [r for r in iptables.save("ipv4", "filter") if r.startswith("-A FORWARD")]

    # There before: a rule with a comment that holds a quote, and a rule that names docker0.
    ipt("-A", "FORWARD", "-m", "comment", "--comment", "it's ours", "-j", "ACCEPT")
    ipt("-A", "FORWARD", "-o", "docker0", "-j", "ACCEPT")
    before = forward()
    baseline = iptables.rule_snapshot()

    # What dockerd does: chains, jumps, the same docker0 rule again, a policy, NAT.
    ipt("-N", "DOCKER")
    ipt("-N", "DOCKER-USER")
    ipt("-A", "DOCKER-USER", "-j", "RETURN")
    ipt("-I", "FORWARD", "1", "-j", "DOCKER-USER")
    ipt("-A", "FORWARD", "-o", "docker0", "-j", "ACCEPT")
    ipt("-A", "FORWARD", "-o", "docker0", "-j", "DOCKER")
    ipt("-P", "FORWARD", "DROP")
    ipt("-t", "nat", "-A", "POSTROUTING", "-s", "172.17.0.0/16", "!", "-o", "docker0",
        "-j", "MASQUERADE")
    # Someone else's rule, added meanwhile: not ours to undo.
    ipt("-A", "INPUT", "-p", "tcp", "--dport", "2222", "-j", "ACCEPT")

    print(json.dumps({
        "differences_before_undo": iptables.rule_differences(baseline, docker_made),
        "failed": iptables.undo_since(baseline, docker_made),
        "differences": iptables.rule_differences(baseline, docker_made),
        "forward_before": before,
        "forward_after": forward(),
        "input_after": [r for r in iptables.save("ipv4", "filter") if r.startswith("-A INPUT")],
        "policy": iptables.table_state("ipv4", "filter")["policies"],
        "chains": iptables.table_state("ipv4", "filter")["chains"],
        "nat": iptables.table_state("ipv4", "nat")["rules"],
    }))
    """
)


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    # iptables comes with the packages the kind provider installs where it starts a Docker
    # daemon of its own (PACKAGES); on a fresh machine this test runs before any of that.
    log_file = tmp_path_factory.mktemp("apt") / "apt.log"
    ensure_packages(["iptables"], Progress("iptables-undo", sys.stderr), log_file)
    return in_own_netns(SCRIPT, timeout=120)


def test_the_check_sees_what_docker_added(outcome: dict[str, object]) -> None:
    found = "\n".join(outcome["differences_before_undo"])  # type: ignore[arg-type]
    for what in ("chain DOCKER added", "FORWARD policy DROP", "MASQUERADE", "-j DOCKER-USER"):
        assert what in found
    assert "2222" not in found, "someone else's rule is not the rehearsal's to report"


def test_the_undo_leaves_the_rules_as_they_were_in_their_order(
    outcome: dict[str, object],
) -> None:
    assert outcome["failed"] == []
    assert outcome["differences"] == []
    assert outcome["forward_after"] == outcome["forward_before"]
    assert outcome["policy"] == {}
    assert outcome["chains"] == []
    assert outcome["nat"] == []


def test_the_undo_never_touches_a_rule_of_someone_elses(outcome: dict[str, object]) -> None:
    assert outcome["input_after"] == ["-A INPUT -p tcp -m tcp --dport 2222 -j ACCEPT"]
