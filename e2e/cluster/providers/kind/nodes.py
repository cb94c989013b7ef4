"""A kind cluster's nodes as two parties hold them: their containers as the Docker daemon has
them (state, address on kind's network, when each last started), and their Node objects as the
API server inside the control-plane node has them (asked there, with the node's own kubectl,
so no kubeconfig on the host is needed).

`up` decides from both whether a cluster it finds can be reused (`assess`, a pure function of
the two): a node container that stopped (a host shut down, a daemon stopped and started again
without them) is started, a paused one unpaused, and a control plane that restarted is waited
for until each node's kubelet has reported since its container started. Only a cluster that
cannot come back (a node container missing, never started, dead) is deleted.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from subprocess import CompletedProcess
from typing import Any

from e2e.cluster.base import ClusterError
from e2e.cluster.host.docker import DockerClient

CLUSTER_LABEL = "io.x-k8s.kind.cluster"
ADMIN_KUBECONFIG = "/etc/kubernetes/admin.conf"
DOCKER_TIMEOUT = 30.0
API_TIMEOUT = 20.0


@dataclass(frozen=True)
class NodeContainer:
    name: str
    id: str
    # Docker's: created, running, paused, restarting, removing, exited, dead.
    state: str
    # On kind's network, as Docker has it now; not the Node's InternalIP, which after a
    # restart is the old address until the kubelet runs (a route via it leads to another node).
    ip: str | None
    started_at: str  # RFC 3339, UTC


@dataclass(frozen=True)
class ApiAnswer:
    """The Node objects the API server returned, or why there are none (not up yet, its
    authorizer not synced: Forbidden, no such container, a timeout)."""

    items: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""


@dataclass(frozen=True)
class Assessment:
    """What `up` does with a cluster it found: reuse it, wait, act on some node containers
    (start, unpause) and look again, or delete it, and why."""

    action: str  # "reuse", "wait", "start", "unpause", "delete"
    why: str = ""
    names: tuple[str, ...] = ()


def control_plane(cluster: str) -> str:
    """The control-plane node's name (and its container's), as kind names it."""
    return f"{cluster}-control-plane"


def _network_name() -> str:
    # kind's network, unless kind was told to use another (as kind reads it).
    return os.environ.get("KIND_EXPERIMENTAL_DOCKER_NETWORK") or "kind"


def _run(docker: DockerClient, args: list[str], timeout: float) -> CompletedProcess[str] | None:
    """A docker command's outcome, or None if it gave none within `timeout`."""
    try:
        return subprocess.run(
            docker.command(*args),
            env=docker.full_env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return None


def _docker(docker: DockerClient, *args: str) -> str:
    done = _run(docker, list(args), DOCKER_TIMEOUT)
    if done is None:
        raise ClusterError(f"docker {args[0]}: no answer in {DOCKER_TIMEOUT:.0f}s")
    if done.returncode != 0:
        raise ClusterError(f"docker {' '.join(args[:2])}: {done.stderr.strip()[-300:]}")
    return done.stdout


def containers(docker: DockerClient, cluster: str) -> dict[str, NodeContainer]:
    """The cluster's node containers by name, with one `docker inspect` for all of them.

    Raises ClusterError when the daemon does not say: never an empty answer for that."""

    def listed() -> list[str]:
        return _docker(docker, "ps", "-aq", "--filter", f"label={CLUSTER_LABEL}={cluster}").split()

    ids = listed()
    if not ids:
        return {}
    try:
        inspected = json.loads(_docker(docker, "inspect", *ids))
    except ClusterError:
        # A container removed between the two calls: ask once more.
        ids = listed()
        inspected = json.loads(_docker(docker, "inspect", *ids)) if ids else []
    found: dict[str, NodeContainer] = {}
    for item in inspected:
        name = str(item["Name"]).lstrip("/")
        networks: dict[str, Any] = item.get("NetworkSettings", {}).get("Networks") or {}
        ip = (networks.get(_network_name()) or {}).get("IPAddress") or None
        state = item.get("State", {})
        found[name] = NodeContainer(
            name, str(item["Id"]), str(state.get("Status")), ip, str(state.get("StartedAt"))
        )
    return found


def start(docker: DockerClient, names: tuple[str, ...]) -> None:
    """`docker start` the node containers named (those a stop left exited)."""
    _docker(docker, "start", *names)


def stop(docker: DockerClient, names: tuple[str, ...]) -> None:
    """`docker stop` the node containers named: their systemd is told to shut down, and
    whatever still runs after Docker's grace period is killed."""
    _docker(docker, "stop", *names)


def unpause(docker: DockerClient, names: tuple[str, ...]) -> None:
    _docker(docker, "unpause", *names)


# The control plane's static pods: a manifest moved out of this folder stops its pod.
MANIFESTS = "/etc/kubernetes/manifests"
# The API server, and the two that lose their leader lease when it goes: left running, they
# exit and the kubelet restarts them in a crash back-off that doubles with each restart (past
# two minutes by a scenario's fourth restart), and Jobs wait for the controller manager.
CONTROL_PLANE_MANIFESTS = (
    "kube-apiserver.yaml",
    "kube-controller-manager.yaml",
    "kube-scheduler.yaml",
)
LEADERS = ("kube-controller-manager", "kube-scheduler")


def move_control_plane_manifests(docker: DockerClient, cluster: str, *, away: bool) -> None:
    """Move the control plane's static pod manifests out of the kubelet's folder (the
    kubelet stops the pods) or back into it (the kubelet starts them again)."""
    for manifest in CONTROL_PLANE_MANIFESTS:
        inside, aside = f"{MANIFESTS}/{manifest}", f"/etc/kubernetes/{manifest}"
        source, target = (inside, aside) if away else (aside, inside)
        _docker(docker, "exec", control_plane(cluster), "mv", source, target)


def leaders_since(docker: DockerClient, cluster: str, since: datetime) -> list[str]:
    """Which of the controller manager and the scheduler have renewed their leader lease
    after ``since``: they act again."""
    argv = ["exec", control_plane(cluster), "kubectl", f"--kubeconfig={ADMIN_KUBECONFIG}"]
    done = _run(
        docker,
        [
            *argv,
            "--request-timeout=10s",
            "-n",
            "kube-system",
            "get",
            "lease",
            *LEADERS,
            "-o",
            "json",
        ],
        API_TIMEOUT,
    )
    if done is None or done.returncode != 0:
        return []
    try:
        items = json.loads(done.stdout).get("items", [])
    except ValueError:
        return []
    leading = []
    for lease in items:
        renewed = (lease.get("spec") or {}).get("renewTime")
        if renewed and datetime.fromisoformat(renewed) >= since:
            leading.append(str(lease["metadata"]["name"]))
    return sorted(leading)


def api_nodes(docker: DockerClient, cluster: str) -> ApiAnswer:
    """The Node objects, as the API server answers the control-plane node's own kubectl."""
    argv = ["exec", control_plane(cluster), "kubectl", f"--kubeconfig={ADMIN_KUBECONFIG}"]
    done = _run(docker, [*argv, "--request-timeout=10s", "get", "nodes", "-o", "json"], API_TIMEOUT)
    if done is None:
        return ApiAnswer(error=f"no answer in {API_TIMEOUT:.0f}s")
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return ApiAnswer(error=lines[-1][:200] if lines else f"exit status {done.returncode}")
    try:
        items: list[dict[str, Any]] = json.loads(done.stdout).get("items", [])
    except ValueError:
        return ApiAnswer(error="not JSON: " + done.stdout[:100])
    return ApiAnswer(items)


def ready(items: list[dict[str, Any]], since: dict[str, str] | None = None) -> list[str]:
    """The names of the Nodes whose Ready condition is True; with `since` (node name to a
    container's start, RFC 3339 UTC), only those whose kubelet said so after that start: the
    API server serves the Ready from before a restart until the controller times it out."""
    names = []
    for node in items:
        name = node["metadata"]["name"]
        for condition in node.get("status", {}).get("conditions", []):
            if condition["type"] != "Ready" or condition["status"] != "True":
                continue
            heartbeat = str(condition.get("lastHeartbeatTime") or "")
            # Both are UTC from the same kernel's clock; seconds compare as text.
            if since is None or heartbeat[:19] >= since.get(name, "")[:19]:
                names.append(name)
    return names


def assess(held: dict[str, NodeContainer], answer: ApiAnswer, count: int) -> Assessment:
    """What to do with a cluster whose node containers are `held` and whose API server gave
    `answer`, `count` nodes asked for."""
    if len(held) > count:
        raise ClusterError(
            f"the cluster has {len(held)} node containers, not the {count} asked for: ask for "
            "the same (--kind-nodes) or take it down first"
        )
    if len(held) < count:
        return Assessment("delete", f"a partial cluster: {len(held)} of {count} node containers")
    by_state: dict[str, list[str]] = {}
    for name, node in sorted(held.items()):
        by_state.setdefault(node.state, []).append(name)
    if by_state.get("created"):
        # Never started: a `kind create` that was interrupted.
        return Assessment("delete", f"node containers never started: {by_state['created']}")
    gone = by_state.get("dead", []) + by_state.get("removing", [])
    if gone:
        return Assessment("delete", f"node containers dead or being removed: {gone}")
    if by_state.get("exited"):
        return Assessment("start", "stopped", tuple(by_state["exited"]))
    if by_state.get("paused"):
        return Assessment("unpause", "paused", tuple(by_state["paused"]))
    if by_state.get("restarting"):
        return Assessment("wait", f"restarting: {by_state['restarting']}")
    since = {name: node.started_at for name, node in held.items()}
    fresh = ready(answer.items, since)
    if len(answer.items) == count and len(fresh) == count:
        return Assessment("reuse")
    if not answer.items:
        return Assessment("wait", f"the API server: {answer.error or 'no nodes'}")
    waiting = sorted(set(held) - set(fresh))
    return Assessment("wait", f"not Ready since their start: {waiting}")


def kind_clusters(docker: DockerClient) -> set[str]:
    """Names of the kind clusters whose node containers this daemon holds."""
    done = subprocess.run(
        docker.command(
            "ps",
            "-a",
            "--filter",
            f"label={CLUSTER_LABEL}",
            "--format",
            f'{{{{.Label "{CLUSTER_LABEL}"}}}}',
        ),
        env=docker.full_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    return set(done.stdout.split()) if done.returncode == 0 else set()
