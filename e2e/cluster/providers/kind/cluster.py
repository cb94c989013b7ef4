"""The kind provider: a kind cluster through pytest-kind's KindCluster, one path everywhere.

Where a Docker daemon answers (a laptop, a GitHub runner), kind uses it and its default node
image (`kindest/node`, pulled by kind), or the image given. Where none answers and we are root
(this machine: no registry, no system Docker), the provider starts one as a GitHub runner has
one (host/dockerd.py: the default socket, the host's network), having first recorded the host
(host/hostledger.py); it builds a node image here (nodeimage.py) and routes pods itself
(network.py: the image has no kindnetd). `down` deletes the cluster, stops that daemon once it
holds no other cluster, puts the host back as the ledger recorded it, and checks.

kind and kubectl are never downloaded: the kind binary given (options.py: --kind-bin,
$UPGRADE_GATE_KIND), else (our daemon) kind built from its pinned Go module, else `kind` on
PATH, else built from the Go module; the kubectl given (--kind-kubectl-bin,
$UPGRADE_GATE_KUBECTL), else `kubectl` on PATH, else the pinned kubectl (tools.py) or our own.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from e2e.cluster.base import Action, ClusterError, Progress, run_actions
from e2e.cluster.builds.images import ensure_debian_image
from e2e.cluster.builds.kind import build_kind, kind_binary
from e2e.cluster.builds.record import Built
from e2e.cluster.host import packages
from e2e.cluster.host.commands import run, tail
from e2e.cluster.host.docker import DockerClient, environment_daemon
from e2e.cluster.host.dockerd import lacks_cap_sys_resource
from e2e.cluster.host.hostledger import HostLedger, docker_proxies
from e2e.cluster.host.locks import exclusive
from e2e.cluster.providers.kind import network, nodes
from e2e.cluster.providers.kind.nodeimage import NodeImageBuild, image_labels
from e2e.cluster.providers.kind.settings import CNI_LABEL, KindSettings, cluster_name
from e2e.cluster.wait import eventually

log = logging.getLogger("e2e.kind")

# What our daemon and the node image build need on the host (Debian bookworm).
PACKAGES = ("docker.io", "debootstrap", "iptables", "iproute2", "util-linux", "mount")
TOOLCHAINS = ("go", "gcc")


def _checked(path: Path) -> Path:
    if not path.is_file() or not os.access(path, os.X_OK):
        raise ClusterError(f"kind provider: {path} is not an executable file")
    return path.resolve()


@dataclass
class _UpState:
    """What `up`'s actions learn and hand on."""

    image: str | None = None
    routes: bool = False  # our node image: we route pods (no kindnetd)
    reused: bool = False
    restarted: bool = False  # a reused cluster's nodes had restarted


class KindProvider:
    """`ClusterProvider` for a kind cluster."""

    name = "kind"

    def __init__(
        self,
        cluster: str | None = None,
        *,
        kind_path: Path | None = None,
        kubectl_path: Path | None = None,
        image: str | None = None,
        kubeconfig: Path | None = None,
        nodes: int = 3,
        settings: KindSettings | None = None,
    ) -> None:
        if nodes < 1:
            raise ClusterError(f"--kind-nodes must be at least 1, not {nodes}")
        self.settings = settings or KindSettings()
        self.cluster_name = cluster_name(cluster)
        self.state_dir = self.settings.state_dir(self.cluster_name)
        self.kubeconfig: Path = kubeconfig or self.state_dir / "kubeconfig"
        self.nodes = nodes
        self.image = image
        self.daemon = self.settings.daemon
        # Our own dockerd: when it already runs, or when no other daemon answers.
        self.own_docker = self.daemon.ours()
        self._docker: DockerClient | None = None
        if not self.own_docker:
            self._docker = environment_daemon()
            self.own_docker = self._docker is None
        self.kind_path = self._resolve_kind(kind_path)
        self._kubectl_given = kubectl_path
        # The app's base image: ours where no registry is reached, else app/Dockerfile's.
        self.base_image: str | None = self.settings.base_image if self.own_docker else None

    # --- tools ---------------------------------------------------------------------------------
    def _pinned_kind(self) -> Path:
        return kind_binary(self.settings.cache, self.settings.kind_version)

    def _resolve_kind(self, explicit: Path | None) -> Path:
        if explicit is not None:
            return _checked(explicit)
        found = shutil.which("kind")
        if found is not None and not self.own_docker:
            return _checked(Path(found))
        if shutil.which("go") is not None:
            return self._pinned_kind()  # built by up/build when missing
        if found is not None:
            return _checked(Path(found))
        raise ClusterError(
            "kind provider: no kind binary; pass --kind-bin (or $UPGRADE_GATE_KIND), or put "
            "Go on PATH to build kind from its module (never a download)"
        )

    def _ensure_kind(self, progress: Progress) -> Path:
        if self.kind_path == self._pinned_kind():
            build_kind(self.settings.cache, progress, self.settings.kind_version)
        return self.kind_path

    @property
    def kubectl_path(self) -> Path:
        if self._kubectl_given is not None:
            return _checked(self._kubectl_given)
        if (found := shutil.which("kubectl")) is not None:
            return Path(found)
        from e2e.cluster import tools

        pinned = tools.installed_path(tools.KUBECTL)
        if pinned.is_file():
            return pinned
        own = self.settings.cache / "kubernetes" / self.settings.kubernetes_version / "bin"
        if (own / "kubectl").is_file():
            return own / "kubectl"
        return Path(tools.kubectl())

    # --- docker ----------------------------------------------------------------------------
    def _ensure_docker(self, progress: Progress | None = None) -> DockerClient:
        if self._docker is not None and self._docker.answers():
            return self._docker
        if not self.own_docker:
            raise ClusterError("the Docker daemon kind uses stopped answering")
        if self.daemon.ours() and self.daemon.client.answers():
            self._docker = self.daemon.client
            return self._docker
        if os.geteuid() != 0:
            raise ClusterError(
                "kind provider: no Docker daemon answers, and running our own needs root"
            )
        progress = progress or Progress("docker")
        with progress.phase("host-prerequisites"):
            missing = [t for t in TOOLCHAINS if shutil.which(t) is None]
            if missing:
                raise ClusterError(
                    f"{', '.join(missing)} not on PATH: the node image build needs them"
                )
            packages.ensure_packages(PACKAGES, progress, self.settings.logs_dir / "apt.log")
            if HostLedger.load(self.settings.ledger) is None:
                HostLedger.record().save(self.settings.ledger)
        with progress.phase("dockerd", "on the default socket, as a runner has one"):
            # Its data root outlives it: the nodes of a cluster made before come back with
            # it, and `up` reuses them only with this cache's record of that cluster.
            self.daemon.start()
            self._docker = self.daemon.client
        return self._docker

    def docker_env(self) -> dict[str, str]:
        """DOCKER_HOST of the daemon kind runs on (images are built there too)."""
        return dict(self._ensure_docker().env)

    @contextlib.contextmanager
    def _kind_env(self) -> Iterator[None]:
        """Where KindCluster runs kind: our daemon's DOCKER_HOST, in the cluster's state dir
        (KindCluster makes ./.pytest-kind/<name> in the working directory)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        saved = {k: os.environ.get(k) for k in ("DOCKER_HOST",)}
        os.environ.update(self._docker.env if self._docker is not None else {})
        try:
            with contextlib.chdir(self.state_dir):
                yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def _kind_cluster(self, image: str | None) -> Any:
        from pytest_kind import KindCluster

        with self._kind_env():
            return KindCluster(
                self.cluster_name,
                kubeconfig=self.kubeconfig,
                image=image,
                kind_path=self.kind_path,
                kubectl_path=self.kubectl_path,
            )

    def _kind(self, *args: str, check: bool = True, timeout: float | None = None) -> str:
        docker = self._ensure_docker()
        self.settings.tmp_dir.mkdir(parents=True, exist_ok=True)
        done = run(
            [self.kind_path, *args],
            env={**docker.full_env(), "TMPDIR": str(self.settings.tmp_dir)},
            check=check,
            timeout=timeout,
        )
        return done.stdout

    def exists(self) -> bool:
        if self.own_docker and not self.daemon.ours():
            return False  # our daemon is down: so are its clusters (and it is not started)
        return self.cluster_name in self._kind("get", "clusters", check=False).split()

    # --- build -------------------------------------------------------------------------------
    def build(self) -> Built:
        """The node image, for `python -m e2e.cluster build`: a daemon started for it is
        stopped again (and the host checked, as by `down`) unless a cluster runs on it."""
        with self._exclusive():
            started = self.own_docker and not self.daemon.ours()
            node = self._build(Progress("build"))
            if started and not nodes.kind_clusters(self._ensure_docker()):
                self._down()
            return node

    def _build(self, progress: Progress) -> Built:
        """Our node image (and the app's base image), built or found in our daemon."""
        docker = self._ensure_docker(progress)
        self.settings.tmp_dir.mkdir(parents=True, exist_ok=True)
        node = NodeImageBuild(self.settings, docker, progress).run()
        with progress.phase("app base image") as note:
            base = ensure_debian_image(
                docker,
                "debian-python-bookworm",
                self.settings.base_image,
                ("python3", "python3-venv", "ca-certificates"),
                ['CMD ["python3"]', "ENV LANG=C.UTF-8"],
                self.settings.images_dir,
                self.settings.build_log,
            )
            note.detail = base.how
        progress.line(f"node image {node.ref} ({node.how}) in {progress.elapsed():.1f}s")
        return node

    # --- up ------------------------------------------------------------------------------------
    def _exclusive(self) -> contextlib.AbstractContextManager[None]:
        lock_path = self.settings.run_dir.parent / f"{self.settings.run_dir.name}.lock"
        return exclusive(lock_path, "another kind up/down on this machine")

    @property
    def _record_path(self) -> Path:
        return self.state_dir / "cluster.json"

    def _record(self) -> dict[str, Any]:
        try:
            record: dict[str, Any] = json.loads(self._record_path.read_text())
        except (OSError, ValueError):
            return {}
        return record

    def up(self) -> None:
        with self._exclusive():
            progress = Progress("up")
            try:
                self._up(progress)
            except BaseException:
                progress.line(
                    f"up failed; logs: {self.settings.logs_dir}, {self.settings.build_log}"
                )
                raise
            progress.line(f"ready in {progress.elapsed():.1f}s; kubeconfig: {self.kubeconfig}")

    def _up(self, progress: Progress) -> None:
        """`up` as kind's create is: a list of named actions, each timed on its own line."""
        self.settings.logs_dir.mkdir(parents=True, exist_ok=True)
        state = _UpState()
        run_actions(
            progress,
            [
                Action("docker", lambda: self._up_docker(progress)),
                Action("kind", lambda: self._up_kind(progress)),
                Action("node image", lambda: self._up_node_image(progress, state)),
                Action("cluster", lambda: self._up_cluster(progress, state)),
                Action("pod network", lambda: self._up_pod_network(state)),
                Action("nodes ready", self._up_nodes_ready),
                Action("kube-proxy", self._up_kube_proxy),
                Action("coredns", lambda: self._up_coredns(state)),
            ],
        )

    def _up_docker(self, progress: Progress) -> str:
        self._ensure_docker(progress)
        return "our own, on the default socket" if self.own_docker else "the one that answers"

    def _up_kind(self, progress: Progress) -> str:
        return str(self._ensure_kind(progress))

    def _up_node_image(self, progress: Progress, state: _UpState) -> str:
        docker = self._ensure_docker(progress)
        state.image = self.image
        if state.image is None and self.own_docker:
            state.image = self._build(progress).ref
        state.routes = (
            state.image is not None and image_labels(docker, state.image).get(CNI_LABEL) == "routes"
        )
        return state.image or "kind's default (kindest/node)"

    def _up_cluster(self, progress: Progress, state: _UpState) -> str:
        """The cluster found reused (its nodes brought back if they stopped), or made."""
        want = {"nodes": self.nodes, "image": state.image, "routes": state.routes}
        record = self._record()
        deleted = ""
        if self.exists():
            if not record or not self.kubeconfig.exists():
                # Not made with this cache (another user's, or a cache removed since): what it
                # runs with is unknown, and so is whether anyone is using it.
                raise ClusterError(
                    f"kind cluster {self.cluster_name} exists, but {self.state_dir} has no "
                    "record or kubeconfig of it (made by another user, or with another cache); "
                    "take it down first: python -m e2e.cluster down "
                    f"--cluster-name {self.cluster_name}"
                )
            running = {k: record.get(k) for k in want}
            if running != want:
                # Another session may be using it: say so rather than replace it.
                raise ClusterError(
                    f"kind cluster {self.cluster_name} runs with {running}, not {want}; "
                    "ask for the same (--kind-nodes, --kind-image) or take it down first: "
                    f"python -m e2e.cluster down --cluster-name {self.cluster_name}"
                )
            why_not = self._reusable(progress)
            if why_not is None:
                state.reused = True
                return f"{self.cluster_name} already up: reused"
            self._delete()
            deleted = f"; the one found deleted ({why_not})"
        config = self._write_config(state.routes)
        cluster = self._kind_cluster(state.image)
        with self._kind_env():
            cluster.create(config)
        self._record_path.write_text(json.dumps(want) + "\n")
        return f"{self.cluster_name} made, {self.nodes} node(s){deleted}"

    def _up_pod_network(self, state: _UpState) -> str:
        """Our node image has no kindnetd: podCIDR routes and a ptp CNI per node. A reused
        cluster's nodes may have restarted since, which loses the routes."""
        if not state.routes:
            return "kind's own (kindnetd)"
        docker = self._ensure_docker()
        nets = network.node_networks(docker, self.cluster_name, self.nodes)
        off = network.ensure_routed(docker, nets)
        host = ""
        if self.own_docker:
            network.route_host(nets)
            host = "; the host routed to the pods too"
        if not off:
            routed = "every node routed already" if state.reused else "podCIDR routes, ptp CNI"
            return routed + host
        if state.reused:
            log.warning("pod network of a reused cluster was off (nodes restarted?)")
            state.restarted = True
            return "routed again: " + "; ".join(f"{n}: {w}" for n, w in off.items()) + host
        return "podCIDR routes, ptp CNI per node" + host

    def _up_nodes_ready(self) -> None:
        self._kubectl("wait", "--for=condition=Ready", "nodes", "--all", "--timeout=180s")

    def _up_kube_proxy(self) -> None:
        self._kubectl(
            "-n", "kube-system", "rollout", "status", "daemonset/kube-proxy", "--timeout=180s"
        )

    def _up_coredns(self, state: _UpState) -> str:
        coredns = ("-n", "kube-system", "deployment/coredns")
        available = ("wait", "--for=condition=Available", "--timeout=5s")
        detail = ""
        if state.restarted:
            # The nodes restarted: CoreDNS's Available is the one from before, and its
            # pods started while no route led to the API server (the back-off below).
            self._kubectl("rollout", "restart", *coredns)
            detail = "restarted with the nodes' pod network"
        elif not self._kubectl(*available, *coredns, check=False):
            # CoreDNS started with kube-proxy, before the API server's Service address
            # led anywhere; its client backs off (30 s and more) before it asks again.
            # New pods find the API at once.
            self._kubectl("rollout", "restart", *coredns)
            detail = "restarted once kube-proxy ran"
        self._kubectl("rollout", "status", *coredns, "--timeout=180s")
        return detail

    def _write_config(self, routes: bool) -> Path:
        networking: dict[str, Any] = {}
        if routes:
            networking["disableDefaultCNI"] = True
            networking["podSubnet"] = self.settings.pod_subnet
        config: dict[str, Any] = {
            "kind": "Cluster",
            "apiVersion": "kind.x-k8s.io/v1alpha4",
            "networking": networking,
            "nodes": [{"role": "control-plane"}] + [{"role": "worker"}] * (self.nodes - 1),
        }
        if lacks_cap_sys_resource():
            # Without CAP_SYS_RESOURCE (the runc wrapper drops it), runc cannot lower a pod
            # sandbox's oom_score_adj ("can't get final child's PID from pipe: EOF"); make
            # containerd clamp it to its own, as kind does when rootless.
            config["containerdConfigPatches"] = [
                '[plugins."io.containerd.grpc.v1.cri"]\n  restrict_oom_score_adj = true'
            ]
        path = self.state_dir / "kind-config.yaml"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(config, indent=2) + "\n")  # JSON is YAML
        return path

    def _kubectl(self, *args: str, check: bool = True) -> str:
        done = run(
            [self.kubectl_path, f"--kubeconfig={self.kubeconfig}", *args],
            check=check,
            timeout=300,
        )
        return done.stdout

    def _reusable(self, progress: Progress, timeout: float = 180) -> str | None:
        """None once the cluster found can be reused, else why it cannot (it is then deleted).

        What `nodes.assess` says of it is done and looked at again: exited node containers
        are started (once), paused ones unpaused, and a control plane that restarted is given
        `timeout` until every kubelet has reported Ready since its container started; a
        cluster is never deleted for being slow to come back."""
        docker = self._ensure_docker(progress)
        control_plane = nodes.control_plane(self.cluster_name)
        last = nodes.Assessment("wait")
        started: set[str] = set()

        def look() -> bool:
            nonlocal last
            held = nodes.containers(docker, self.cluster_name)
            plane = held.get(control_plane)
            answer = (
                nodes.api_nodes(docker, self.cluster_name)
                if plane is not None and plane.state == "running"
                else nodes.ApiAnswer(error="the control-plane node is not running")
            )
            last = nodes.assess(held, answer, self.nodes)
            if last.action not in ("start", "unpause"):
                return last.action in ("reuse", "delete")
            again = started.intersection(last.names) if last.action == "start" else set()
            if again:
                last = nodes.Assessment("delete", f"node containers exited again: {sorted(again)}")
                return True
            progress.line(f"{last.action} nodes {', '.join(last.names)} ({last.why})")
            try:
                if last.action == "start":
                    nodes.start(docker, last.names)
                    started.update(last.names)
                else:
                    nodes.unpause(docker, last.names)
            except ClusterError as exc:
                last = nodes.Assessment("delete", f"could not {last.action} them: {exc}")
                return True
            return False

        if not look():
            phase = f"{self.nodes} node(s) Ready since they started"
            with progress.phase("nodes back", phase) as note:
                try:
                    eventually(look, timeout=timeout, interval=1, what="the nodes back")
                except AssertionError:
                    note.detail = f"gave up: {last.why}"
                    return f"not back in {timeout:.0f}s: {last.why}"
        return None if last.action == "reuse" else last.why

    def load_images(self, refs: Sequence[str]) -> None:
        """`kind load docker-image`; where that fails (Docker 29's containerd image store,
        kind issues 3795 and 4066), `docker save` and `kind load image-archive`."""
        docker = self._ensure_docker()
        cluster = self._kind_cluster(None)
        for ref in refs:
            started = time.monotonic()
            try:
                with self._kind_env():
                    cluster.load_docker_image(ref)
                how = "kind load docker-image"
            except subprocess.CalledProcessError as exc:
                log.warning("kind load docker-image %s failed (%s); loading an archive", ref, exc)
                self.load_archive(docker, ref)
                how = "docker save + kind load image-archive"
            log.info("loaded %s with %s in %.1fs", ref, how, time.monotonic() - started)

    def load_archive(self, docker: DockerClient, ref: str) -> None:
        self.settings.tmp_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.settings.tmp_dir, prefix=".load-") as tmp:
            archive = Path(tmp) / "image.tar"
            run(docker.command("save", "-o", str(archive), ref), env=docker.full_env())
            self._kind("load", "image-archive", "--name", self.cluster_name, str(archive))

    def stop_api_server(self) -> None:
        """The control plane's kube-apiserver stopped, as a crash or a maintenance stops it,
        and with it the controller manager and the scheduler, which would otherwise lose their
        leader lease and restart in a growing crash back-off: their static pods' manifests
        moved aside. Returns once the API server does not answer."""
        docker = self._ensure_docker()
        nodes.move_control_plane_manifests(docker, self.cluster_name, away=True)
        eventually(
            lambda: bool(nodes.api_nodes(docker, self.cluster_name).error),
            timeout=120,
            what="the API server stopped",
        )

    def start_api_server(self) -> None:
        """The manifests put back: the kubelet starts them again; returns once the API server
        answers and the controller manager and the scheduler lead again."""
        docker = self._ensure_docker()
        started = datetime.now(UTC)
        nodes.move_control_plane_manifests(docker, self.cluster_name, away=False)
        eventually(
            lambda: not nodes.api_nodes(docker, self.cluster_name).error,
            timeout=180,
            what="the API server answering again",
        )
        eventually(
            lambda: nodes.leaders_since(docker, self.cluster_name, started) == list(nodes.LEADERS),
            timeout=120,
            what="the controller manager and the scheduler leading again",
        )

    def _worker_container(self, node: str) -> nodes.NodeContainer:
        """The node container of worker ``node``; never the control plane's."""
        if node == nodes.control_plane(self.cluster_name):
            raise ClusterError(
                f"{node} is the control-plane node: it is never stopped (it holds the cluster)"
            )
        held = nodes.containers(self._ensure_docker(), self.cluster_name)
        if node not in held:
            raise ClusterError(
                f"kind cluster {self.cluster_name} has no node {node}: {', '.join(sorted(held))}"
            )
        return held[node]

    def stop_node(self, node: str) -> None:
        """A worker's container stopped, as a host that fails or is shut down: `docker stop`;
        returns once it has exited. Its Node object stays, and goes NotReady once the
        control plane stops hearing from its kubelet."""
        self._worker_container(node)
        nodes.stop(self._ensure_docker(), (node,))

    def start_node(self, node: str, timeout: float = 180) -> None:
        """The worker's container started again; its routes (the pod network without
        kindnetd: `network`) put back, as a restart loses them and may change its address;
        returns once its kubelet has reported it Ready since the start."""
        docker = self._ensure_docker()
        if self._worker_container(node).state != "running":
            nodes.start(docker, (node,))
        if self._record().get("routes"):
            nets = network.node_networks(docker, self.cluster_name, self.nodes)
            network.ensure_routed(docker, nets)
            if self.own_docker:
                network.route_host(nets)
        since = {node: self._worker_container(node).started_at}
        eventually(
            lambda: node in nodes.ready(nodes.api_nodes(docker, self.cluster_name).items, since),
            timeout=timeout,
            interval=1,
            what=f"node {node} Ready since it started",
        )

    def export_logs(self, dest: Path) -> Path:
        """`kind export logs`: every node's journal, kubelet and container logs."""
        self._kind("export", "logs", str(dest), "--name", self.cluster_name, timeout=300)
        return dest

    # --- status --------------------------------------------------------------------------------
    def status(self) -> dict[str, str]:
        report: dict[str, str] = {}
        if self.own_docker:
            running = self.daemon.table.get("dockerd")
            report["dockerd"] = f"running, PID {running.pid}" if running else "not running"
        exists = (not self.own_docker or self.daemon.ours()) and self.exists()
        report["cluster"] = self.cluster_name if exists else "(none)"
        healthy = False
        if exists and self._docker is not None:  # exists() found the daemon answering
            answer = nodes.api_nodes(self._docker, self.cluster_name)
            ready = nodes.ready(answer.items)
            healthy = len(answer.items) == self.nodes and len(ready) == self.nodes
        report["node"] = f"Ready ({self.nodes} node(s))" if healthy else "not Ready"
        report["kubeconfig"] = str(self.kubeconfig) if self.kubeconfig.exists() else "(none)"
        return report

    # --- down ----------------------------------------------------------------------------------
    def _delete(self) -> None:
        cluster = self._kind_cluster(None)
        with self._kind_env():
            cluster.delete()
        self._record_path.unlink(missing_ok=True)

    def down(self) -> None:
        with self._exclusive():
            self._down()

    def _down(self) -> None:
        progress = Progress("down")
        docker_up = self.daemon.ours() if self.own_docker else self._docker
        if docker_up and self.exists():
            with progress.phase("cluster", self.cluster_name):
                self._delete()
        self._record_path.unlink(missing_ok=True)
        if self.kubeconfig == self.state_dir / "kubeconfig":
            self.kubeconfig.unlink(missing_ok=True)
        if not self.own_docker:
            progress.line(f"down in {progress.elapsed():.1f}s")
            return
        remaining = nodes.kind_clusters(self.daemon.client) if docker_up else set()
        if remaining:
            progress.line(f"dockerd kept: it still holds kind clusters {sorted(remaining)}")
            return
        self._stop_daemon(progress)
        progress.line(f"down in {progress.elapsed():.1f}s: nothing of ours left")

    def _stop_daemon(self, progress: Progress) -> None:
        """Our daemon stopped, the host put back as the ledger says, and checked; each part is
        tried whatever the others did."""
        ledger = HostLedger.load(self.settings.ledger)  # unreadable: an error, nothing undone
        errors: list[str] = []
        with progress.phase("dockerd") as note:
            removed = self.daemon.remove_containers()
            before = set(ledger.docker_proxies) if ledger is not None else set()
            proxies = {pid for pid, _argv in docker_proxies()} - before
            try:
                self.daemon.stop(proxies)
            except ClusterError as exc:
                errors.append(f"the daemon: {exc}")
            note.detail = f"{len(removed)} container(s) removed" if removed else ""
        with progress.phase("host"):
            if ledger is not None:
                errors += ledger.undo()
            shutil.rmtree(self.settings.run_dir, ignore_errors=True)
        left = self.daemon.leftovers() + (ledger.leftovers() if ledger is not None else [])
        if errors or left:
            raise ClusterError(
                "down left these behind:\n  "
                + "\n  ".join(errors + left)
                + f"\n(the ledger {self.settings.ledger} is kept; down tries again; logs: "
                f"{self.settings.logs_dir})"
            )
        self.settings.ledger.unlink(missing_ok=True)

    def log_tail(self) -> str:
        return tail(self.daemon.log_file)
