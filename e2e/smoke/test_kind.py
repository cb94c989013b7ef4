"""The kind provider on a machine with no Docker daemon of its own: the cluster runs in our
dockerd's network namespace, the API server is reached from the host through the relay, pods
on different nodes reach each other without kindnetd (also once the daemon or the node
containers stopped and `up` brought them back), image archives load into every node, and
`down` leaves the host as the ledger recorded it.

    pytest e2e/smoke -m kind --cluster kind [--kind-nodes 3]

Each check looks at the host itself (`ss`, `ip link`, iptables, /proc/self/mountinfo, the
cgroup hierarchies, /proc/sys) rather than at the provider's bookkeeping alone. The last test
takes the cluster down.
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

from e2e.builds.images import normalize
from e2e.host import iptables, mounts, sysctls
from e2e.host.processes import proc_start_time
from e2e.providers.base import ClusterProvider, ProviderError
from e2e.providers.kind import KindProvider, dockerd, nodes
from e2e.providers.kind.ledger import (
    DOCKER_CHAIN_PREFIX,
    KindLedger,
    docker_interfaces,
    leftovers,
)
from e2e.providers.kind.settings import CGROUP_PARENT
from e2e.wait import eventually

pytestmark = pytest.mark.kind


@pytest.fixture(scope="session")
def kind(cluster: ClusterProvider) -> KindProvider:
    if not isinstance(cluster, KindProvider) or not cluster.own_docker:
        pytest.skip("checks the kind provider that runs its own dockerd (--cluster kind here)")
    return cluster


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


def in_netns(kind: KindProvider, *argv: str) -> str:
    return subprocess.run(
        dockerd.in_netns(kind.settings, *argv), capture_output=True, text=True, check=True
    ).stdout


def api_port(kind: KindProvider) -> int:
    config = yaml.safe_load(kind.kubeconfig.read_text())
    server: str = config["clusters"][0]["cluster"]["server"]
    assert server.startswith("https://127.0.0.1:"), server
    return int(server.rsplit(":", 1)[1])


def listeners(port: int, netns: list[str] | None = None) -> str:
    argv = [*(netns or []), "ss", "-H", "-ltnp", f"sport = :{port}"]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def test_the_api_server_is_reached_through_the_relay(kind: KindProvider) -> None:
    port = api_port(kind)
    relay = kind.table.get(f"relay-{kind.cluster_name}")
    assert relay is not None, "the relay runs while the cluster is up"
    on_host = listeners(port)
    assert f"pid={relay.pid}," in on_host, f"127.0.0.1:{port} on the host is the relay's"
    inside = listeners(port, ["nsenter", f"--net={kind.settings.netns}"])
    assert "docker-proxy" in inside, "kind published the API server inside the namespace"
    assert kubectl(kind, "get", "--raw", "/readyz").strip() == "ok"


def test_the_host_network_is_untouched(kind: KindProvider) -> None:
    ledger = KindLedger.load(kind.settings.ledger)
    assert ledger is not None, "up records the host's state before it changes it"
    assert docker_interfaces() == []
    assert not [
        c
        for c in iptables.new_chains(ledger.chains)
        if c.rsplit("/", 1)[1].startswith(DOCKER_CHAIN_PREFIX)
    ]
    # ... and they are where they belong: in the namespace, with the nodes.
    links = json.loads(in_netns(kind, "ip", "-j", "link"))
    assert any(link["ifname"].startswith("br-") for link in links), "kind's network bridge"
    nat = in_netns(kind, "iptables-save", "-t", "nat")
    assert ":DOCKER " in nat


@pytest.fixture(scope="session")
def base_loaded(kind: KindProvider) -> str:
    assert kind.base_image is not None
    kind.load_images([kind.base_image])
    return kind.base_image


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


@pytest.mark.parametrize("stopped", ["the daemon", "the node containers"])
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
        kind.table.stop(dockerd.DOCKERD, grace=30)
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
    """Each node's container and when it last started, as our dockerd has it."""
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
    with pytest.raises(ProviderError, match="no record or kubeconfig of it") as refused:
        stranger.up()
    assert "python -m e2e.cluster down --provider kind" in str(refused.value)
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


def test_down_leaves_the_host_as_it_was(kind: KindProvider, pytestconfig: pytest.Config) -> None:
    if pytestconfig.getoption("keep_cluster"):
        pytest.skip("--keep-cluster: the cluster stays up")
    s = kind.settings
    ledger = KindLedger.load(s.ledger)
    assert ledger is not None
    daemons = kind.table.alive()
    assert {d.name for d in daemons} >= {dockerd.DOCKERD, f"relay-{kind.cluster_name}"}
    assert dockerd.netns_exists(s)
    port = api_port(kind)

    kind.down()

    for daemon in daemons:
        assert proc_start_time(daemon.pid) != daemon.start_time, f"{daemon.name} still runs"
    assert listeners(port) == "", "nothing listens on the API port any more"
    assert not dockerd.netns_exists(s)
    mountinfo = Path("/proc/self/mountinfo").read_text()
    for root in (s.run_dir, s.docker_data_root):
        assert str(root) not in mountinfo
    assert mounts.cgroup_leftovers(CGROUP_PARENT) == []
    for path in ledger.absent_paths:
        assert not Path(path).exists(), f"{path} was not there before up"
    assert sysctls.changed_sysctls(ledger.sysctls) == []
    assert docker_interfaces() == []
    assert not kind.kubeconfig.exists()
    assert leftovers(s, ledger) == []
    eventually(lambda: not s.run_dir.exists(), timeout=5, what=f"{s.run_dir} removed")
