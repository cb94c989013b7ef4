"""Run the sample app as a real process on loopback (gunicorn or uvicorn), for tests and
benchmarks.

Part of the harness, not of the image: ``app/`` is what ships.

``AppProcess`` is what a pod is to the hook: an address that answers the gate
contract, started with ``python -m upgrade_gate_sample serve`` exactly as the image starts it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from e2e.cluster.base import free_port

TOKEN = "test-token"


_LOG_DIR: Path | None = None


def _log_dir() -> Path:
    """One directory for this process's app logs, removed when the process ends: a unit run
    starts hundreds of apps, and their logs used to stay in /tmp for good. A failed test's
    report carries its apps' logs (tests/unit/conftest.py)."""
    global _LOG_DIR
    if _LOG_DIR is None:
        _LOG_DIR = Path(tempfile.mkdtemp(prefix="upgrade-gate-apps-"))
        atexit.register(shutil.rmtree, _LOG_DIR, ignore_errors=True)
    return _LOG_DIR


class AppProcess:
    """One ``python -m upgrade_gate_sample serve`` process; its log goes to a file for failures."""

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        threads: int = 32,
        module: str = "upgrade_gate_sample",
        management: bool = False,
        server: str = "gunicorn",
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.endpoint = f"127.0.0.1:{self.port}"
        # With ``management``, the control endpoints on a port of their own, as the chart runs it.
        self.management_port = None
        while management and self.management_port in (None, self.port):
            self.management_port = free_port()
        self.management_url = f"http://127.0.0.1:{self.management_port}" if management else None
        self._log_file = tempfile.NamedTemporaryFile(  # noqa: SIM115 (lives as long as the process)
            prefix=f"app-{self.port}-", suffix=".log", dir=_log_dir(), delete=False
        )
        self.log_path = Path(self._log_file.name)
        self.env = {**os.environ, "UPGRADE_GATE_TOKEN": TOKEN, **(env or {})}
        self.threads = threads
        self.module = module  # another entry point taking `serve`'s arguments (test servers)
        # `serve --server`: gunicorn (the Flask app, the default) or uvicorn (the ASGI app).
        self.server = server
        self.proc: subprocess.Popen[bytes] | None = None
        self.session = requests.Session()

    def start(self, timeout: float = 20.0) -> AppProcess:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                self.module,
                "serve",
                *(["--server", self.server] if self.server != "gunicorn" else []),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--threads",
                str(self.threads),
                *(
                    ["--management-port", str(self.management_port)]
                    if self.management_port is not None
                    else []
                ),
            ],
            env=self.env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).ok:
                    return self
            except requests.RequestException:  # not listening yet, or a busy machine
                time.sleep(0.05)  # nothing to wait on but the socket itself
        raise TimeoutError(f"app on port {self.port} not healthy in {timeout}s:\n{self.log()}")

    # -- the contract ---------------------------------------------------------

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.url + path, timeout=kwargs.pop("timeout", 70), **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.post(self.url + path, timeout=kwargs.pop("timeout", 10), **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.delete(self.url + path, timeout=kwargs.pop("timeout", 10), **kwargs)

    def start_operation(self, seconds: float) -> str:
        response = self.post("/operations", json={"seconds": seconds})
        response.raise_for_status()
        op_id: str = response.json()["id"]
        return op_id

    def operation(self, op_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self.get(f"/operations/{op_id}").json()
        return body

    def long_polls(self, timeout: float = 10.0) -> int:
        """Long-polls and watches waiting in the app now (``upgrade_gate_long_polls``)."""
        for line in self.get("/metrics", timeout=timeout).text.splitlines():
            if line.startswith("upgrade_gate_long_polls "):
                return int(float(line.split()[1]))
        raise AssertionError("upgrade_gate_long_polls not exported")

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = self.get("/upgradeable").json()
        return body

    def drain(self, ttl: float, token: str = TOKEN) -> requests.Response:
        return self.post("/drain", json={"ttl": ttl}, headers={"Authorization": f"Bearer {token}"})

    # -- lifecycle ------------------------------------------------------------

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill_worker(self) -> None:
        """SIGKILL the worker only: gunicorn's master starts a new one on the same
        address, as a container restart keeps the pod's name and IP. uvicorn has no master:
        its process is killed and started again on the same address."""
        assert self.proc is not None
        if self.server != "gunicorn":
            self.kill()
            self.start()
            return
        for pid in _children(self.proc.pid):
            os.kill(pid, signal.SIGKILL)

    def kill(self) -> None:
        """SIGKILL master and worker: the pod vanishes without a word."""
        if self.proc is None or self.proc.poll() is not None:
            return
        workers = _children(self.proc.pid)
        self.proc.kill()  # the master first, so that it cannot respawn the worker
        self.proc.wait(10)
        for pid in workers:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # gunicorn's quick stop, no drain
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.session.close()
        self._log_file.close()

    def log(self) -> str:
        if not self._log_file.closed:
            self._log_file.flush()
        return self.log_path.read_text(errors="replace")

    def __enter__(self) -> AppProcess:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


@contextmanager
def running_apps(count: int, env: Mapping[str, str] | None = None) -> Iterator[list[AppProcess]]:
    apps = [AppProcess(env) for _ in range(count)]
    try:
        for app in apps:
            app.start()
        yield apps
    finally:
        for app in apps:
            app.stop()
