"""Pod networking for a node image without kindnetd: what kindnetd does, done once.

kindnetd is not on the Go module proxy. Besides masquerading traffic that leaves the
cluster (there is nowhere to go here), it does two things, and the provider does them after
`kind create cluster`, once every node has its podCIDR:

- each node gets a CNI config of its own: ptp (a veth per pod, routed, as kindnetd's) with
  host-local IPAM over that node's podCIDR, and portmap;
- each node gets a route to every other node's podCIDR via that node's IP.

Where the provider runs its own Docker daemon (root, the host's network), the host gets the
same routes (`route_host`): a process on the host (the hook run by a test, a probe) then
reaches a pod at its IP over kind's bridge, as it did on a cluster of host processes, where
without them it would send that traffic to the host's default gateway. They go with the
bridge when `down` removes kind's network.

Both live in the node containers' network namespaces, which a container restart makes anew
(a Docker daemon stopped and started again, as when a session that ran it ends, brings the
nodes back, often with each other's addresses): every `up` checks them, reused cluster or
not, and puts back what is missing (`ensure_routed`).

Nodes that are added later are not routed; the cluster's node count is fixed at create.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from e2e.cluster.base import ClusterError
from e2e.cluster.host.commands import run
from e2e.cluster.host.docker import DockerClient
from e2e.cluster.providers.kind import nodes
from e2e.cluster.wait import eventually

log = logging.getLogger("e2e.kind.network")

CNI_NETWORK = "ugate-kind"
CNI_CONFIG = f"/etc/cni/net.d/10-{CNI_NETWORK}.conflist"


@dataclass(frozen=True)
class NodeNet:
    name: str
    ip: str
    pod_cidr: str


def conflist(pod_cidr: str) -> str:
    return json.dumps(
        {
            "cniVersion": "0.4.0",
            "name": CNI_NETWORK,
            "plugins": [
                {
                    "type": "ptp",
                    # Nothing outside the cluster to reach: no masquerade.
                    "ipMasq": False,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": "/run/cni-ipam-state",
                        "ranges": [[{"subnet": pod_cidr}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        },
        indent=2,
    )


def _exec(docker: DockerClient, node: str, *argv: str, stdin: str | None = None) -> str:
    done = run(
        docker.command("exec", *(["-i"] if stdin is not None else []), node, *argv),
        env=docker.full_env(),
        input_bytes=stdin.encode() if stdin is not None else None,
    )
    return done.stdout


def node_networks(
    docker: DockerClient, cluster: str, count: int, timeout: float = 120
) -> list[NodeNet]:
    """Every node's address and podCIDR, once all `count` nodes have one."""
    found: list[NodeNet] = []

    def all_assigned() -> bool:
        nonlocal found
        try:
            held = nodes.containers(docker, cluster)
        except ClusterError:  # the daemon slow to say: not yet
            return False
        nets = []
        for item in nodes.api_nodes(docker, cluster).items:
            name = item["metadata"]["name"]
            cidr = item.get("spec", {}).get("podCIDR")
            ip = held[name].ip if name in held else None
            if ip and cidr:
                nets.append(NodeNet(name, ip, cidr))
        found = nets
        return len(nets) >= count

    try:
        eventually(
            all_assigned,
            timeout=timeout,
            interval=0.5,
            what=f"{count} nodes with a podCIDR and an address on kind's network",
        )
    except AssertionError as exc:
        raise ClusterError(f"{exc}; nodes so far: {found}") from None
    return sorted(found, key=lambda n: n.name)


# What a routed node shows: forwarding on, its CNI config, and its routes (one per line).
_STATE = f"cat /proc/sys/net/ipv4/ip_forward; cat {CNI_CONFIG} 2>/dev/null; echo; ip -4 route show"


def unrouted(docker: DockerClient, nets: list[NodeNet]) -> dict[str, str]:
    """The nodes whose pod network is not as `route_pods` leaves it, each with what is off."""
    off: dict[str, str] = {}
    for net in nets:
        state = _exec(docker, net.name, "sh", "-c", _STATE)
        routes = {" ".join(line.split()[:3]) for line in state.splitlines() if " via " in line}
        missing = [
            other.pod_cidr
            for other in nets
            if other is not net and f"{other.pod_cidr} via {other.ip}" not in routes
        ]
        if not state.startswith("1"):
            off[net.name] = "IP forwarding off"
        elif f'"subnet": "{net.pod_cidr}"' not in state:
            off[net.name] = "no CNI config for its podCIDR"
        elif missing:
            off[net.name] = f"no route to {', '.join(missing)}"
    return off


def ensure_routed(docker: DockerClient, nets: list[NodeNet]) -> dict[str, str]:
    """Route the nodes that are not (all of them on a new cluster); what was off, by node."""
    off = unrouted(docker, nets)
    if off:
        route_pods(docker, nets)
    return off


def route_host(nets: list[NodeNet]) -> None:
    """The host's routes to every node's podCIDR via that node's IP on kind's network."""
    for net in nets:
        run(["ip", "route", "replace", net.pod_cidr, "via", net.ip])


def route_pods(docker: DockerClient, nets: list[NodeNet]) -> None:
    """Each node's CNI config over its podCIDR, and routes to every other node's podCIDR."""
    for net in nets:
        _exec(docker, net.name, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
        for other in nets:
            if other is not net:
                _exec(docker, net.name, "ip", "route", "replace", other.pod_cidr, "via", other.ip)
        _exec(
            docker,
            net.name,
            "sh",
            "-c",
            f"mkdir -p /etc/cni/net.d && cat > {CNI_CONFIG}.n && mv {CNI_CONFIG}.n {CNI_CONFIG}",
            stdin=conflist(net.pod_cidr),
        )
        log.info(
            "node %s: pods on %s, routes to %d other nodes", net.name, net.pod_cidr, len(nets) - 1
        )
