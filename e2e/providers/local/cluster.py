"""The local provider: a single-node cluster of real components, run as host processes.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler run as plain processes;
kubelet runs pods through containerd and runc, with the CNI bridge plugin for their network
and kube-proxy (iptables mode) for Services; CoreDNS runs as a pod. Nothing is pulled: every
image is built on this machine (see images.py) and imported into containerd.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import requests
import urllib3

from e2e.builds.docker import DockerClient, environment_daemon
from e2e.builds.record import Built
from e2e.host import mounts, sysctls
from e2e.host.commands import run, tail
from e2e.host.locks import exclusive
from e2e.host.processes import Daemon, ProcessTable, stop_all
from e2e.providers.base import Progress, ProviderError
from e2e.providers.local import addons, binaries, components, hostprep, images, network
from e2e.providers.local.docker import DOCKERD, own_client, start_own_daemon
from e2e.providers.local.images import import_from_docker, import_tarball
from e2e.providers.local.ledger import (
    Ledger,
    container_log_links,
    leftovers,
    mount_roots,
    our_processes,
)
from e2e.providers.local.pki import ClusterPki, load_pki, make_pki, write_kubeconfig
from e2e.providers.local.registry import LocalRegistry
from e2e.providers.local.settings import CGROUP_ROOT, NODE_NAME, Settings, node_ip

log = logging.getLogger("e2e.local")

# Started in this order, stopped in the reverse (kubelet before containerd's sweep, see down).
CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
NODE = ("containerd", "kubelet", "kube-proxy")
DAEMONS = (*CONTROL_PLANE, *NODE)


class LocalProvider:
    """`ClusterProvider` for a cluster made of host processes on this machine."""

    name = "local"

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.kubeconfig: Path = self.settings.kubeconfig
        self.base_image: str | None = self.settings.base_image
        self.table = ProcessTable(self.settings.pids_dir)
        self._docker: DockerClient | None = None

    # --- small helpers ---------------------------------------------------------------------
    def _log(self, name: str) -> Path:
        return self.settings.logs_dir / f"{name}.log"

    def _start(self, name: str, argv: list[str]) -> None:
        self.table.start(Daemon(name, argv, self._log(name)))

    def _wait(self, name: str, ready: Callable[[], bool], timeout: float, what: str) -> None:
        self.table.wait_until(name, ready, timeout, self._log(name), what)

    def kubectl(self, *args: str, input_text: str | None = None, check: bool = True) -> str:
        done = run(
            [self.settings.kubectl, f"--kubeconfig={self.kubeconfig}", *args],
            input_bytes=input_text.encode() if input_text is not None else None,
            check=check,
        )
        return done.stdout

    def _https_ok(self, url: str, pki: ClusterPki, client: str = "admin") -> bool:
        pair = pki.pairs[client]
        try:
            response = requests.get(
                url, cert=(str(pair.cert), str(pair.key)), verify=str(pki.ca.cert), timeout=2
            )
        except requests.RequestException:
            return False
        return response.status_code == 200

    @staticmethod
    def _http_ok(url: str, verify: bool = True) -> bool:
        try:
            return requests.get(url, timeout=2, verify=verify).status_code == 200
        except requests.RequestException:
            return False

    def _node(self) -> dict[str, Any] | None:
        done = run(
            [
                self.settings.kubectl,
                f"--kubeconfig={self.kubeconfig}",
                "get",
                "node",
                NODE_NAME,
                "-o",
                "json",
            ],
            check=False,
        )
        if done.returncode != 0:
            return None
        node: dict[str, Any] = json.loads(done.stdout)
        return node

    def node_ready(self) -> bool:
        node = self._node()
        if node is None:
            return False
        conditions = node.get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    # --- docker --------------------------------------------------------------------------
    def _ensure_docker(self) -> DockerClient:
        if self._docker is not None and self._docker.answers():
            return self._docker
        if self.table.get(DOCKERD) is not None:
            self._docker = own_client(self.settings)
        elif (found := environment_daemon()) is not None:
            self._docker = found
        else:
            self._docker = start_own_daemon(self.settings, self.table)
        return self._docker

    def docker_env(self) -> dict[str, str]:
        """DOCKER_HOST of the daemon images are built with (ours, or the one that answered)."""
        docker = self._ensure_docker()
        return dict(docker.env)

    def registry(self) -> LocalRegistry:
        """An OCI registry on loopback that this node pulls from (built on first use; unstarted)."""
        built = binaries.ensure_registry(self.settings, Progress("registry"))
        return LocalRegistry(built.path)

    # --- up ----------------------------------------------------------------------------------
    def healthy(self) -> bool:
        if any(self.table.get(name) is None for name in DAEMONS):
            return False
        pki = load_pki(self.settings.pki_dir)
        if "admin" not in pki.pairs:
            return False
        api = f"https://127.0.0.1:{self.settings.ports.apiserver}/readyz"
        return self._https_ok(api, pki) and self.node_ready()

    def _exclusive(self) -> contextlib.AbstractContextManager[None]:
        """One `up` or `down` at a time on this machine: both start and stop the same daemons."""
        lock_path = self.settings.run_dir.parent / f"{self.settings.run_dir.name}.lock"
        return exclusive(lock_path, "another up/down on this machine")

    def up(self) -> None:
        with self._exclusive():
            self._up_locked()

    def _up_locked(self) -> None:
        progress = Progress("up")
        if self.healthy():
            self._ensure_docker()
            progress.line(f"cluster already up (node {NODE_NAME} Ready): reusing it")
            progress.line(f"kubeconfig: {self.kubeconfig}")
            return
        if self.table.alive() or self.settings.data_dir.exists():
            progress.line("found a partial or stopped cluster: taking it down first")
            self._down_locked()
        self.settings.logs_dir.mkdir(parents=True, exist_ok=True)
        for old in self.settings.logs_dir.glob("*.log"):
            old.unlink()
        try:
            self._up(progress)
        except BaseException:
            progress.line(f"up failed; daemon logs are in {self.settings.logs_dir}")
            raise
        progress.line(f"ready in {progress.elapsed():.1f}s; kubeconfig: {self.kubeconfig}")

    def _up(self, progress: Progress) -> None:
        s = self.settings
        host_log = self._log("host-prerequisites")
        with progress.phase("host-prerequisites"):
            hostprep.ensure_toolchains()
            hostprep.ensure_packages(progress, host_log)
            hostprep.ensure_kernel_modules(host_log)
            if Ledger.load(s.ledger) is None:
                Ledger.record().save(s.ledger)
            hostprep.apply_required_sysctls()
            ip = node_ip()

        coredns: Built | None = None
        with progress.phase("binaries", f"Kubernetes {s.kubernetes_version}"):
            binaries.ensure_kubernetes(s, progress)
            try:
                coredns = binaries.ensure_coredns(s, progress)
            except ProviderError as exc:
                progress.line(f"CoreDNS {s.coredns_version} did not build; no cluster DNS: {exc}")

        with progress.phase("docker"):
            docker = self._ensure_docker()
        with progress.phase("images"):
            images_log = self._log("images")
            base = images.ensure_base(s, docker, images_log)
            pause = images.ensure_pause(s, docker, images_log)
            dns = images.ensure_coredns(s, docker, coredns) if coredns is not None else None
            progress.line(
                f"images: base {base.how}, pause {pause.how}, "
                f"coredns {dns.how if dns is not None else 'skipped'}"
            )

        with progress.phase("pki"):
            pki = make_pki(s.pki_dir, NODE_NAME, ip, s.service_ip, s.cluster_domain)
            server_local = f"https://127.0.0.1:{s.ports.apiserver}"
            users = {
                "kube-controller-manager": "kube-controller-manager",
                "kube-scheduler": "kube-scheduler",
                "kube-proxy": "kube-proxy",
                "kubelet": "kubelet-client",
                "admin": "admin",
            }
            for user, pair in users.items():
                write_kubeconfig(
                    components.kubeconfig_path(s, user),
                    server_local,
                    pki.ca.cert,
                    pki.pairs[pair],
                    user,
                )
            write_kubeconfig(
                self.kubeconfig,
                server_local,
                pki.ca.cert,
                pki.pairs["admin"],
                "admin",
                embed=True,
            )

        with progress.phase("etcd"):
            self._start("etcd", components.etcd(s))
            self._wait(
                "etcd",
                lambda: self._http_ok(f"http://127.0.0.1:{s.ports.etcd_client}/health"),
                60,
                "healthy",
            )

        with progress.phase("kube-apiserver"):
            self._start("kube-apiserver", components.kube_apiserver(s, pki, ip))
            self._wait(
                "kube-apiserver",
                lambda: self._https_ok(f"https://127.0.0.1:{s.ports.apiserver}/readyz", pki),
                120,
                "ready",
            )

        with progress.phase("controller-manager+scheduler"):
            self._start("kube-controller-manager", components.kube_controller_manager(s, pki))
            self._start("kube-scheduler", components.kube_scheduler(s))
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            # Their serving certs are self-signed in memory: only liveness is checked here.
            for name, port in (
                ("kube-controller-manager", s.ports.controller_manager),
                ("kube-scheduler", s.ports.scheduler),
            ):
                self._wait(
                    name,
                    lambda p=port: self._http_ok(  # type: ignore[misc]
                        f"https://127.0.0.1:{p}/healthz", verify=False
                    ),
                    60,
                    "healthy",
                )

        with progress.phase("containerd"):
            network.write_cni_config(s)
            network.install_pod_rules()
            mounts.create_cgroup_root(CGROUP_ROOT)
            s.run_dir.mkdir(parents=True, exist_ok=True)
            self._start("containerd", components.containerd(s))
            self._wait("containerd", self._containerd_answers, 60, "serving")
            import_tarball(s, pause.path)
            if dns is not None:
                import_tarball(s, dns.path)

        with progress.phase("kubelet"):
            self._start("kubelet", components.kubelet(s, pki, ip))
            self._wait("kubelet", lambda: self._node() is not None, 90, "registered")

        with progress.phase("kube-proxy"):
            self._start("kube-proxy", components.kube_proxy(s))
            self._wait(
                "kube-proxy",
                lambda: self._http_ok(f"http://127.0.0.1:{s.ports.kube_proxy_healthz}/healthz"),
                60,
                "healthy",
            )

        with progress.phase("node-ready"):
            self._wait("kubelet", self.node_ready, 90, "Ready")

        if dns is not None:
            with progress.phase("coredns"):
                self.kubectl(
                    "apply", "--server-side", "-f", "-", input_text=addons.coredns_manifest(s)
                )
                self.kubectl(
                    "-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=120s"
                )

    def _containerd_answers(self) -> bool:
        if not self.settings.containerd_socket.exists():
            return False
        done = subprocess.run(
            ["ctr", "--address", str(self.settings.containerd_socket), "version"],
            capture_output=True,
            check=False,
        )
        return done.returncode == 0

    # --- images ------------------------------------------------------------------------
    def load_images(self, refs: Sequence[str]) -> None:
        if self.table.get("containerd") is None:
            raise ProviderError("the local cluster is not up: containerd is not running")
        started = time.monotonic()
        import_from_docker(self.settings, self._ensure_docker(), refs)
        log.info("loaded %s into containerd in %.1fs", list(refs), time.monotonic() - started)

    # --- status ------------------------------------------------------------------------
    def status(self) -> dict[str, str]:
        report: dict[str, str] = {}
        for name in (*DAEMONS, DOCKERD):
            running = self.table.get(name)
            report[name] = f"running, PID {running.pid}" if running else "not running"
        pki = load_pki(self.settings.pki_dir)
        api = f"https://127.0.0.1:{self.settings.ports.apiserver}/readyz"
        report["apiserver"] = (
            "ready" if "admin" in pki.pairs and self._https_ok(api, pki) else "not answering"
        )
        report["node"] = (
            "Ready" if report["apiserver"] == "ready" and self.node_ready() else "not Ready"
        )
        report["kubeconfig"] = str(self.kubeconfig) if self.kubeconfig.exists() else "(none)"
        return report

    # --- down ----------------------------------------------------------------------------
    def down(self) -> None:
        with self._exclusive():
            self._down_locked()

    def _down_locked(self) -> None:
        s = self.settings
        progress = Progress("down")
        ledger = Ledger.load(s.ledger)
        if ledger is None and not s.data_dir.exists() and not self.table.alive():
            left = leftovers(s, None)
            if not left:
                progress.line("nothing to take down")
                return

        with progress.phase("pods"):
            # kubelet first, or it would restart what the sweep removes.
            self.table.stop("kube-proxy")
            self.table.stop("kubelet")
            if self.table.get("containerd") is not None and s.binary("cri-sweep").is_file():
                done = run(
                    [s.binary("cri-sweep"), "-endpoint", str(s.containerd_socket)],
                    check=False,
                    log_file=self._log("cri-sweep"),
                    timeout=120,
                )
                if done.returncode != 0:
                    log.warning("cri-sweep failed; see %s", self._log("cri-sweep"))

        with progress.phase("daemons"):
            for name in reversed(DAEMONS):
                # The API server drains in-flight requests first; with a dead kubelet some
                # never end, and its state goes with `down` anyway.
                self.table.stop(name, grace=10 if name == "kube-apiserver" else 20)
            if self.table.get(DOCKERD) is not None:
                self.table.stop(DOCKERD, grace=30)
            for name in self.table.recorded():
                self.table.stop(name)
            # containerd's shims outlive it; they carry our socket in their command line.
            stop_all({pid for pid, _argv in our_processes(s)}, "leftover shims", grace=5)
            # A container whose shim died with containerd is orphaned, not stopped; its
            # processes are still in our cgroups, and nothing else of the host is.
            stop_all(mounts.cgroup_tasks(CGROUP_ROOT), "orphaned container processes", grace=2)

        with progress.phase("mounts"):
            mounts.unmount_under(mount_roots(s))

        with progress.phase("network"):
            network.remove_interfaces()
            network.remove_chains(ledger.chains if ledger else {})
            network.remove_cni_cache(ledger.cni_cache if ledger else [])

        with progress.phase("cgroups"):
            mounts.remove_cgroups(CGROUP_ROOT)

        with progress.phase("host-state"):
            if ledger is not None:
                failed = sysctls.restore_sysctls(ledger.sysctls)
                if failed:
                    log.warning("sysctls not restored: %s", failed)
            for link in container_log_links(s):
                link.unlink(missing_ok=True)
            for path in (s.data_dir, s.run_dir):
                shutil.rmtree(path, ignore_errors=True)
            self.kubeconfig.unlink(missing_ok=True)
            if ledger is not None:
                for directory in sorted(ledger.absent_dirs, key=lambda d: -len(d)):
                    p = Path(directory)
                    if p.is_dir() and not any(p.iterdir()):
                        p.rmdir()

        left = leftovers(s, ledger)
        if left:
            raise ProviderError(
                "down left these behind:\n  " + "\n  ".join(left) + f"\n(daemon logs: {s.logs_dir})"
            )
        s.ledger.unlink(missing_ok=True)
        progress.line(
            f"down in {progress.elapsed():.1f}s: nothing of ours left (logs kept in {s.logs_dir})"
        )

    def log_tail(self, name: str) -> str:
        return tail(self._log(name))
