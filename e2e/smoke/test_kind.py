"""The kind provider's own checks: the API server on the host's loopback, pods on different
nodes reaching each other without kindnetd (also once the daemon or the node containers
stopped and `up` brought them back), image archives loaded into every node, a cluster this
cache has no record of refused, and `down` leaving the host as it was.

    pytest e2e/smoke --cluster kind [--kind-nodes 3]

Where the provider runs its own Docker daemon (root, none answering), the checks look at the
host itself (the ledger's record against `ip link`, iptables, /proc/sys, mounts, cgroups)
rather than at the provider's bookkeeping alone. The last test takes the cluster down.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.cluster.base import ClusterError
from e2e.cluster.builds.images import normalize
from e2e.cluster.host import mounts
from e2e.cluster.host.dockerd import DOCKERD, SOCKET
from e2e.cluster.host.hostledger import HostLedger
from e2e.cluster.host.processes import proc_start_time
from e2e.cluster.providers.kind import KindProvider, nodes
from e2e.cluster.providers.kind.settings import CGROUP_PARENT
from e2e.cluster.wait import eventually

pytestmark = pytest.mark.smoke

# Where no base of ours is built (a Docker daemon of someone else's answers), one to pull.
PULLED_BASE = "python:3.12-slim"


def kubectl(kind: KindProvider, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [str(kind.kubectl_path), f"--kubeconfig={kind.kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


def api_port(kind: KindProvider) -> int:
    config = yaml.safe_load(kind.kubeconfig.read_text())
    server: str = config["clusters"][0]["cluster"]["server"]
    assert server.startswith("https://127.0.0.1:"), server
    return int(server.rsplit(":", 1)[1])


def listeners(port: int) -> str:
    argv = ["ss", "-H", "-ltn", f"sport = :{port}"]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def test_the_api_server_is_published_on_the_hosts_loopback(kind: KindProvider) -> None:
    port = api_port(kind)
    assert f"127.0.0.1:{port}" in listeners(port)
    assert kubectl(kind, "get", "--raw", "/readyz").strip() == "ok"


@pytest.mark.own_daemon
def test_our_daemon_runs_on_the_default_socket_after_the_host_was_recorded(
    kind: KindProvider,
) -> None:
    assert kind.own_docker
    assert kind.daemon.ours()
    assert HostLedger.load(kind.settings.ledger) is not None, "recorded before the daemon ran"
    assert SOCKET.is_socket()
    assert kind.docker_env() == {"DOCKER_HOST": f"unix://{SOCKET}"}


@pytest.fixture(scope="session")
def base_loaded(kind: KindProvider) -> str:
    base = kind.base_image
    if base is None:
        docker = kind._ensure_docker()
        subprocess.run(docker.command("pull", PULLED_BASE), env=docker.full_env(), check=True)
        base = PULLED_BASE
    kind.load_images([base])
    return base


def node_names(kind: KindProvider) -> list[str]:
    items = json.loads(kubectl(kind, "get", "nodes", "-o", "json"))["items"]
    return sorted(n["metadata"]["name"] for n in items)


@pytest.fixture
def scratch_ns(kind: KindProvider) -> Iterator[str]:
    name = f"kind-check-{secrets.token_hex(3)}"
    kubectl(kind, "create", "namespace", name)
    yield name
    kubectl(kind, "delete", "namespace", name, "--wait=false", "--ignore-not-found")


def server_pod(name: str, node: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "nodeName": node,
            "containers": [
                {
                    "name": "http",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["python3", "-m", "http.server", "8000"],
                }
            ],
        },
    }


def test_pods_on_different_nodes_reach_each_other(
    kind: KindProvider, base_loaded: str, scratch_ns: str
) -> None:
    assert_pods_reach_each_other(kind, base_loaded, scratch_ns)


@pytest.mark.own_daemon
def test_the_host_reaches_pods_over_kinds_bridge_not_its_default_gateway(
    kind: KindProvider, base_loaded: str, scratch_ns: str
) -> None:
    # A hook run on the host (tests/e2e's hook discovery) sent its requests to pod IPs via
    # the default gateway, which answered 404; on a cluster of host processes it reached them.
    names = node_names(kind)
    pods = [server_pod(f"h{i}", node, base_loaded) for i, node in enumerate(names)]
    manifest = {"apiVersion": "v1", "kind": "List", "items": pods}
    kubectl(kind, "-n", scratch_ns, "apply", "-f", "-", stdin=json.dumps(manifest))
    kubectl(
        kind, "-n", scratch_ns, "wait", "--for=condition=Ready", "pod", "--all", "--timeout=120s"
    )
    listed = json.loads(kubectl(kind, "-n", scratch_ns, "get", "pods", "-o", "json"))["items"]
    for pod in listed:
        ip = pod["status"]["podIP"]
        route = subprocess.run(
            ["ip", "-o", "route", "get", ip], capture_output=True, text=True, check=True
        ).stdout
        assert " dev br-" in route, f"{ip} ({pod['spec']['nodeName']}): {route}"
        fetch = (
            f"import urllib.request as u; print(u.urlopen('http://{ip}:8000/', timeout=5).status)"
        )
        answer = subprocess.run(
            ["python3", "-c", fetch], capture_output=True, text=True, timeout=30, check=False
        )
        assert answer.stdout.strip() == "200", answer.stderr[-500:]


@pytest.mark.parametrize(
    "stopped", [pytest.param("the daemon", marks=pytest.mark.own_daemon), "the node containers"]
)
def test_a_reused_cluster_whose_nodes_stopped_comes_back_routed(
    kind: KindProvider, base_loaded: str, scratch_ns: str, stopped: str
) -> None:
    # The daemon: what a session that ends leaves to the next, its dockerd gone and the nodes
    # with it. The next `up` starts the daemon and the nodes come back by themselves (kind's
    # restart policy), in new network namespaces, often with each other's addresses: their
    # pods must be routed again. The control plane answers before its authorizer has synced
    # ("Forbidden" for a second): CI once deleted the cluster on that first look.
    # The node containers: stopped and left exited (a host shut down); `up` starts them.
    before = started_at(kind)
    if stopped == "the daemon":
        kind.daemon.table.stop(DOCKERD, grace=30)
    else:
        docker = kind._ensure_docker()
        subprocess.run(
            docker.command("stop", *before), env=docker.full_env(), check=True, timeout=120
        )
    kind.up()
    after = started_at(kind)
    assert {n: c for n, (c, _) in after.items()} == {n: c for n, (c, _) in before.items()}, (
        "the same node containers: the cluster was reused, not made anew"
    )
    assert all(after[n][1] != before[n][1] for n in before), f"every node restarted: {after}"
    assert_pods_reach_each_other(kind, base_loaded, scratch_ns)


def started_at(kind: KindProvider) -> dict[str, tuple[str, str]]:
    """Each node's container and when it last started, as the daemon has it."""
    held = nodes.containers(kind._ensure_docker(), kind.cluster_name)
    assert sorted(held) == node_names(kind)
    return {name: (c.id, c.started_at) for name, c in held.items()}


def assert_pods_reach_each_other(kind: KindProvider, image: str, scratch_ns: str) -> None:
    names = node_names(kind)
    assert len(names) == kind.nodes
    # One server per node (on a single node, two on it), each asked from the first one.
    placed = names if len(names) > 1 else names * 2
    pods = [server_pod(f"p{i}", node, image) for i, node in enumerate(placed)]
    manifest = {"apiVersion": "v1", "kind": "List", "items": pods}
    kubectl(kind, "-n", scratch_ns, "apply", "-f", "-", stdin=json.dumps(manifest))
    kubectl(kind, "-n", scratch_ns, "expose", "pod", "p1", "--port=80", "--target-port=8000")
    kubectl(
        kind, "-n", scratch_ns, "wait", "--for=condition=Ready", "pod", "--all", "--timeout=120s"
    )
    ips = {
        p["metadata"]["name"]: (p["status"]["podIP"], p["spec"]["nodeName"])
        for p in json.loads(kubectl(kind, "-n", scratch_ns, "get", "pods", "-o", "json"))["items"]
    }
    assert len({node for _ip, node in ips.values()}) == min(len(names), len(placed))
    fetch = (
        "import sys, urllib.request\n"
        "for url in sys.argv[1:]:\n"
        "    print(url, urllib.request.urlopen(url, timeout=5).status)\n"
    )

    def from_p0(*urls: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                *(str(kind.kubectl_path), f"--kubeconfig={kind.kubeconfig}", "-n", scratch_ns),
                *("exec", "p0", "--", "python3", "-c", fetch, *urls),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    # Pod to pod (across nodes where there are several): routed at once.
    urls = [f"http://{ip}:8000/" for name, (ip, _node) in ips.items() if name != "p0"]
    direct = from_p0(*urls)
    assert direct.stdout.split() == [w for url in urls for w in (url, "200")], direct.stderr
    # Through the Service's name: once CoreDNS and kube-proxy have the new Service.
    service = f"http://p1.{scratch_ns}.svc.cluster.local/"
    eventually(
        lambda: from_p0(service).stdout.split() == [service, "200"],
        timeout=30,
        interval=1,
        what=f"{service} answering p0",
        describe=lambda: from_p0(service).stderr[-300:],
    )


def test_a_cluster_this_cache_has_no_record_of_is_refused_not_reused(
    kind: KindProvider, tmp_path: Path
) -> None:
    # What a killed rehearsal left a new runner: a cluster on the daemon, nothing in its cache.
    # Taking it for its own failed every scenario on a missing kubeconfig.
    record = json.loads((kind.state_dir / "cluster.json").read_text())
    stranger = KindProvider(
        kind.cluster_name,
        kind_path=kind.kind_path,
        kubectl_path=kind.kubectl_path,
        image=record["image"],
        nodes=kind.nodes,
        settings=dataclasses.replace(kind.settings, cache=tmp_path),
    )
    with pytest.raises(ClusterError, match="no record or kubeconfig of it") as refused:
        stranger.up()
    assert "python -m e2e.cluster down" in str(refused.value)
    assert kind.exists(), "the cluster it found is left as it was"
    assert kubectl(kind, "get", "--raw", "/readyz").strip() == "ok"


def test_an_image_archive_loads_into_every_node(kind: KindProvider, base_loaded: str) -> None:
    docker = kind._ensure_docker()
    ref = f"upgrade-gate.local/archive-check:{secrets.token_hex(3)}"
    subprocess.run(docker.command("tag", base_loaded, ref), env=docker.full_env(), check=True)
    try:
        kind.load_archive(docker, ref)
    finally:
        subprocess.run(docker.command("rmi", ref), env=docker.full_env(), check=False)
    for node in node_names(kind):
        listed = subprocess.run(
            docker.command("exec", node, "ctr", "-n", "k8s.io", "images", "ls", "-q"),
            env=docker.full_env(),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert normalize(ref) in listed, f"{ref} on {node}"


@pytest.mark.takes_cluster_down
def test_down_leaves_the_host_as_it_was(kind: KindProvider) -> None:
    port = api_port(kind)
    own = kind.own_docker
    ledger = HostLedger.load(kind.settings.ledger) if own else None
    daemon = kind.daemon.table.get(DOCKERD) if own else None
    assert not own or (ledger is not None and daemon is not None)

    kind.down()

    assert not kind.exists()
    assert listeners(port) == "", "nothing listens on the API port any more"
    if ledger is None or daemon is None:
        return
    assert proc_start_time(daemon.pid) != daemon.start_time, "our dockerd still runs"
    assert not SOCKET.exists()
    assert ledger.leftovers() == []
    assert kind.daemon.leftovers() == []
    mountinfo = Path("/proc/self/mountinfo").read_text()
    for root in (kind.settings.run_dir, kind.settings.docker_data_root):
        assert str(root) not in mountinfo
    assert mounts.cgroup_leftovers(CGROUP_PARENT) == []
    assert not kind.settings.ledger.exists(), "a complete undo removes the ledger"
