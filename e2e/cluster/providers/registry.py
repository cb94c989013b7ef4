"""A real OCI registry on loopback (CNCF distribution), for the paths that push images.

Clusters this project does not run get their images through a registry: ``--cluster
existing --registry HOST:PORT`` (pytest, ``python -m e2e.images``) and the rehearsal's
stand-in for ghcr.io. containerd pulls from a registry on a loopback address over plain HTTP
with no configuration, and Docker pushes to one the same way. The registry is built from its
Go module, never downloaded (`ensure_registry`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

import requests

from e2e.cluster.base import ClusterError, Progress, cache_root, free_port
from e2e.cluster.builds.golang import go_install
from e2e.cluster.builds.record import Built
from e2e.cluster.wait import eventually

log = logging.getLogger("e2e.registry")

# The CNCF distribution registry, for the paths that push images.
REGISTRY_MODULE = "github.com/distribution/distribution/v3"
REGISTRY_VERSION = "v3.0.0"


def ensure_registry(progress: Progress, cache: Path | None = None) -> Built:
    """The registry binary, built from its Go module once (static: it runs in any image)."""
    return go_install(
        "registry",
        REGISTRY_MODULE,
        REGISTRY_VERSION,
        f"{REGISTRY_MODULE}/cmd/registry",
        cache or cache_root(),
        progress,
    )


class LocalRegistry:
    """``registry serve`` on 127.0.0.1, its storage in a temporary directory of its own."""

    def __init__(self, binary: Path, root: Path | None = None) -> None:
        self.binary = binary
        self.address = f"127.0.0.1:{free_port()}"
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)
        self._dir = Path(tempfile.mkdtemp(prefix="upgrade-gate-registry-", dir=root))
        self.log_path = self._dir / "registry.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> LocalRegistry:
        config = {
            "version": 0.1,
            "storage": {"filesystem": {"rootdirectory": str(self._dir / "data")}},
            "http": {"addr": self.address},
            # Info level logs each request with its user agent: who pulled what.
            "log": {"level": "info", "formatter": "json"},
        }
        config_path = self._dir / "config.yml"
        config_path.write_text(json.dumps(config))  # JSON is YAML
        with self.log_path.open("wb") as sink:
            self._proc = subprocess.Popen(
                [str(self.binary), "serve", str(config_path)],
                # v3 exports traces to localhost:4318 by default; nothing listens there.
                env={**os.environ, "OTEL_TRACES_EXPORTER": "none"},
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        proc = self._proc

        def serving() -> bool:
            if proc.poll() is not None:
                raise ClusterError(f"registry exited with {proc.returncode}:\n{self.log()}")
            try:
                return requests.get(f"http://{self.address}/v2/", timeout=2).status_code == 200
            except requests.ConnectionError:  # not listening yet
                return False

        try:
            eventually(serving, timeout=timeout, interval=0.1, what=f"registry at {self.address}")
        except AssertionError as timed_out:
            raise ClusterError(str(timed_out)) from None
        log.info("registry serving at %s (pid %d)", self.address, proc.pid)
        return self

    def pulls(self, repository: str) -> list[str]:
        """User agents that resolved a tag of ``repository`` here (who pulled it).

        A HEAD of the manifest is a pull too: a node that already holds the
        content by digest resolves the tag and fetches nothing more.
        """
        agents = []
        for line in self.log().splitlines():
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
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
            log.info("registry at %s stopped", self.address)
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
