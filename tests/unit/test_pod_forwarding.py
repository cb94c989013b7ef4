"""The local cluster's pod rules on a host where Docker runs (filter/FORWARD policy DROP), on
real iptables and a real bridge in a network namespace of the test's own (`unshare --net`:
the host's rules and links are never touched). Needs root.

Two "pods" are network namespaces of their own, each a `sleep` made by `unshare --net`, with a
veth on the provider's bridge: what the CNI bridge plugin makes of a pod, nothing more."""

from __future__ import annotations

import os
import textwrap

import pytest

from tests.unit.conftest import in_own_netns

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="a network namespace of its own needs root (.ci/run is root)"
)

SCRIPT = textwrap.dedent(
    """
    import json, socket, subprocess, sys
    from e2e.host import iptables
    from e2e.providers.local import network
    from e2e.providers.local.settings import BRIDGE

    def sh(*args, pid=None):
        prefix = ["nsenter", f"--net=/proc/{pid}/ns/net"] if pid else []
        subprocess.run([*prefix, *args], check=True)

    def pod(name, address):
        proc = subprocess.Popen(["unshare", "--net", "sleep", "300"])
        for _ in range(200):  # until unshare has made the namespace and exec'd sleep
            if open(f"/proc/{proc.pid}/comm").read().strip() == "sleep":
                break
            subprocess.run(["sleep", "0.05"])
        sh("ip", "link", "add", name, "type", "veth", "peer", "name", "eth0",
           "netns", str(proc.pid))
        sh("ip", "link", "set", name, "master", BRIDGE, "up")
        sh("ip", "link", "set", "lo", "up", pid=proc.pid)
        sh("ip", "addr", "add", f"{address}/24", "dev", "eth0", pid=proc.pid)
        sh("ip", "link", "set", "eth0", "up", pid=proc.pid)
        return proc

    # The host as Docker leaves it, and bridged traffic through iptables as kubelet needs.
    sh("ip", "link", "set", "lo", "up")
    sh("ip", "link", "add", BRIDGE, "type", "bridge")
    sh("ip", "link", "set", BRIDGE, "up")
    with open("/proc/sys/net/bridge/bridge-nf-call-iptables", "w") as f:
        f.write("1")
    sh("iptables", "-w", "-P", "FORWARD", "DROP")
    baseline = iptables.chain_snapshot()
    forward_before = [r for r in iptables.save("ipv4", "filter") if r.startswith("-A FORWARD")]

    pods = [pod("vpod1", "10.244.0.11"), pod("vpod2", "10.244.0.12")]
    try:
        network.install_pod_rules()
        network.install_pod_rules()  # a second start adds nothing
        rules = iptables.save("ipv4", "filter") + iptables.save("ipv4", "mangle")
        # A server in one pod, a client in the other: pod to pod across the bridge.
        server = subprocess.Popen(
            ["nsenter", f"--net=/proc/{pods[1].pid}/ns/net", sys.executable, "-c",
             "import socket; s = socket.create_server(('10.244.0.12', 8080)); "
             "print('listening', flush=True); c, _ = s.accept(); c.sendall(b'pong')"],
            stdout=subprocess.PIPE, text=True)
        assert server.stdout.readline().strip() == "listening"
        # The timeout only bounds a test that fails: a dropped SYN is retried, never refused.
        client = subprocess.run(
            ["nsenter", f"--net=/proc/{pods[0].pid}/ns/net", sys.executable, "-c",
             "import socket; c = socket.create_connection(('10.244.0.12', 8080), timeout=20); "
             "print(c.recv(4).decode())"],
            capture_output=True, text=True)
        server.kill()
        network.remove_chains(baseline)
        print(json.dumps({
            "client": client.stdout.strip() or client.stderr.strip().splitlines()[-1],
            "rules": [r for r in rules if "UGATE" in r],
            "left": network.iptables_leftovers(baseline),
            "forward_after": [r for r in iptables.save("ipv4", "filter")
                              if r.startswith("-A FORWARD")],
            "forward_before": forward_before,
            "policy": iptables.table_state("ipv4", "filter")["policies"]["FORWARD"],
        }))
    finally:
        for proc in pods:
            proc.kill()
    """
)


@pytest.fixture(scope="module")
def outcome() -> dict[str, object]:
    return in_own_netns(SCRIPT, timeout=180)


def test_pods_reach_each_other_where_the_forward_policy_is_drop(outcome: dict[str, object]) -> None:
    assert outcome["client"] == "pong"


def test_the_rules_are_ours_and_made_once(outcome: dict[str, object]) -> None:
    rules = outcome["rules"]
    assert isinstance(rules, list)
    assert sum(r.startswith("-A FORWARD") for r in rules) == 2, rules  # one jump per table
    assert any(r.startswith("-A UGATE-FORWARD") and "ACCEPT" in r for r in rules), rules
    assert any(r.startswith("-A UGATE-EGRESS") and "DROP" in r for r in rules), rules


def test_down_leaves_forward_as_it_was(outcome: dict[str, object]) -> None:
    assert outcome["left"] == []
    assert outcome["forward_after"] == outcome["forward_before"]
    assert outcome["policy"] == "DROP"
