"""A registry that a kind cluster's nodes pull from by a loopback name, as a cluster that
this project does not run pulls from its own registry.

The CNCF distribution registry (built from its Go module; a static binary, so any image can
carry it: the cluster's own node image does) runs in a container on kind's network, published
on the host's loopback for `docker push`. Inside each node, 127.0.0.1:PORT is led to it (nat
OUTPUT DNAT with route_localnet, as kube-proxy does for node ports on localhost), so the
nodes' containerd pulls the very name that was pushed, over plain HTTP, which containerd
allows for loopback names with no configuration. Everything is removed again on exit.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

import requests

from e2e.cluster.base import ClusterError, Progress, free_port
from e2e.cluster.host.docker import DockerClient
from e2e.cluster.providers.kind import KindProvider, nodes
from e2e.cluster.providers.registry import ensure_registry
from e2e.cluster.wait import eventually

CONFIG = {
    "version": 0.1,
    "storage": {"filesystem": {"rootdirectory": "/var/lib/registry"}},
    "http": {"addr": ":5000"},
    # Info level logs each request with its user agent: who pulled what.
    "log": {"level": "info", "formatter": "json"},
}


class KindNetworkRegistry:
    def __init__(self, kind: KindProvider) -> None:
        self.kind = kind
        self.docker: DockerClient = kind._ensure_docker()
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.name = f"upgrade-gate-registry-{secrets.token_hex(3)}"
        self._dir = Path(tempfile.mkdtemp(prefix="upgrade-gate-registry-"))
        self._ip = ""
        self._nodes: list[str] = []

    def _docker(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            self.docker.command(*args),
            env=self.docker.full_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and done.returncode != 0:
            raise ClusterError(f"docker {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def __enter__(self) -> KindNetworkRegistry:
        binary = ensure_registry(Progress("registry")).path
        config = self._dir / "config.json"
        config.write_text(json.dumps(CONFIG))  # JSON is YAML
        held = nodes.containers(self.docker, self.kind.cluster_name)
        self._nodes = sorted(held)
        image = self._docker("inspect", "-f", "{{.Config.Image}}", self._nodes[0]).strip()
        self._docker(
            *("run", "-d", "--name", self.name, "--network", "kind"),
            *("-p", f"{self.address}:5000", "-e", "OTEL_TRACES_EXPORTER=none"),
            *("-v", f"{binary}:/registry:ro", "-v", f"{config}:/etc/registry.json:ro"),
            *("--entrypoint", "/registry", image, "serve", "/etc/registry.json"),
        )
        try:
            eventually(self._serving, timeout=30, interval=0.2, what=f"registry at {self.address}")
            self._ip = self._docker(
                "inspect", "-f", '{{(index .NetworkSettings.Networks "kind").IPAddress}}', self.name
            ).strip()
            for node in self._nodes:
                self._node_rules(node, "-I")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _serving(self) -> bool:
        try:
            return requests.get(f"http://{self.address}/v2/", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    def _rules(self) -> list[list[str]]:
        dnat = ["-j", "DNAT", "--to-destination", f"{self._ip}:5000"]
        return [
            ["OUTPUT", "-p", "tcp", "-d", "127.0.0.1", "--dport", str(self.port), *dnat],
            ["POSTROUTING", "-p", "tcp", "-s", "127.0.0.1", "-d", self._ip, "-j", "MASQUERADE"],
        ]

    def _node_rules(self, node: str, action: str) -> None:
        if action == "-I":
            self._docker("exec", node, "sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1")
        for rule in self._rules():
            self._docker("exec", node, "iptables", "-t", "nat", action, *rule, check=action == "-I")

    def pulls(self, repository: str) -> list[str]:
        """User agents that resolved a tag of ``repository`` here (a HEAD of the manifest is
        a pull too: a node that holds the content resolves the tag and fetches nothing)."""
        done = subprocess.run(
            self.docker.command("logs", self.name),
            env=self.docker.full_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        agents = []
        for line in (done.stdout + done.stderr).splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if (
                entry.get("http.request.method") in ("GET", "HEAD")
                and f"/v2/{repository}/manifests/" in entry.get("http.request.uri", "")
                and entry.get("http.response.status") == 200
            ):
                agents.append(str(entry.get("http.request.useragent", "")))
        return agents

    def log(self) -> str:
        return self._docker("logs", self.name, check=False)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._ip:
            for node in self._nodes:
                self._node_rules(node, "-D")
        self._docker("rm", "-f", "-v", self.name, check=False)
        subprocess.run(["rm", "-rf", str(self._dir)], check=False)
