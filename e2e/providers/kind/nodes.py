"""A kind cluster's nodes as two parties hold them: their containers as the Docker daemon has
them (state, address on kind's network, when each last started), and their Node objects as the
API server inside the control-plane node has them (asked there, with the node's own kubectl,
so no relay or kubeconfig on the host is needed).

`up` decides from both whether a cluster it finds can be reused: a node container that
stopped (a host reboot, a daemon stopped and started without them) is started again, and a
control plane that restarted is given time to answer, before anything is deleted.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from typing import Any

from e2e.builds.docker import DockerClient
from e2e.host.commands import run

CLUSTER_LABEL = "io.x-k8s.kind.cluster"
ADMIN_KUBECONFIG = "/etc/kubernetes/admin.conf"


@dataclass(frozen=True)
class NodeContainer:
    name: str
    state: str  # Docker's: running, exited, created, paused, restarting, dead
    ip: str | None  # on kind's network, as Docker has it now
    started_at: str


def _network_name() -> str:
    # kind's network, unless kind was told to use another (as kind reads it).
    return os.environ.get("KIND_EXPERIMENTAL_DOCKER_NETWORK") or "kind"


def containers(docker: DockerClient, cluster: str) -> dict[str, NodeContainer]:
    """The cluster's node containers by name, with one `docker inspect` for all of them."""
    env = docker.full_env()
    listed = subprocess.run(
        docker.command("ps", "-aq", "--filter", f"label={CLUSTER_LABEL}={cluster}"),
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    ids = listed.stdout.split() if listed.returncode == 0 else []
    if not ids:
        return {}
    inspected = subprocess.run(
        docker.command("inspect", *ids), env=env, capture_output=True, text=True, check=False
    )
    if inspected.returncode != 0:
        # A container removed between the two calls: ask again next time.
        return {}
    found: dict[str, NodeContainer] = {}
    for item in json.loads(inspected.stdout):
        name = str(item["Name"]).lstrip("/")
        networks: dict[str, Any] = item.get("NetworkSettings", {}).get("Networks") or {}
        ip = (networks.get(_network_name()) or {}).get("IPAddress") or None
        state = item.get("State", {})
        found[name] = NodeContainer(name, str(state.get("Status")), ip, str(state.get("StartedAt")))
    return found


def start(docker: DockerClient, names: list[str]) -> None:
    """`docker start` the node containers named (those a stop left exited)."""
    run(docker.command("start", *names), env=docker.full_env())


def api_nodes(docker: DockerClient, control_plane: str) -> list[dict[str, Any]]:
    """The Node objects, as the API server answers the control-plane node's own kubectl; none
    while it does not answer (not up yet, or restarting)."""
    done = subprocess.run(
        docker.command(
            "exec",
            control_plane,
            "kubectl",
            f"--kubeconfig={ADMIN_KUBECONFIG}",
            "--request-timeout=10s",
            "get",
            "nodes",
            "-o",
            "json",
        ),
        env=docker.full_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if done.returncode != 0:
        return []
    items: list[dict[str, Any]] = json.loads(done.stdout).get("items", [])
    return items


def ready(items: list[dict[str, Any]]) -> list[str]:
    """The names of the Nodes whose Ready condition is True."""
    return [
        n["metadata"]["name"]
        for n in items
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in n.get("status", {}).get("conditions", [])
        )
    ]
