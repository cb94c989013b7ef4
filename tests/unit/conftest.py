from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from e2e.loopback import TOKEN, AppProcess

AppFactory = Callable[..., AppProcess]

# What `serve --server` runs: the Flask app under gunicorn, the Starlette app under uvicorn.
SERVERS = ("gunicorn", "uvicorn")
# A test (or a module, as `pytestmark`) run against both: what `make_app` and `app` start.
BOTH_SERVERS = pytest.mark.parametrize("app_server", SERVERS, indirect=True)


@pytest.fixture
def app_server(request: pytest.FixtureRequest) -> str:
    """The server ``make_app`` starts: gunicorn, unless the test is run with ``BOTH_SERVERS``
    (a test about gunicorn's worker itself stays on gunicorn)."""
    server: str = getattr(request, "param", "gunicorn")
    return server


@pytest.fixture
def make_app(request: pytest.FixtureRequest, app_server: str) -> Iterator[AppFactory]:
    """Start real ``python -m upgrade_gate_sample serve`` processes; their logs join a failure
    report."""
    apps: list[AppProcess] = []
    request.node.app_processes = apps

    def start(**env: Any) -> AppProcess:
        app = AppProcess({k: str(v) for k, v in env.items()}, server=app_server)
        apps.append(app)
        return app.start()

    yield start
    for app in apps:
        app.stop()


@pytest.fixture
def app(make_app: AppFactory) -> AppProcess:
    return make_app()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        for app in getattr(item, "app_processes", []):
            report.sections.append((f"app on port {app.port}", app.log()))
    return report


# -- the hook as a process: python -m upgrade_gate.hook wait ----------------------------------


class Hook:
    def __init__(self, *args: str, token: str | None = TOKEN) -> None:
        env = {**os.environ, "UPGRADE_GATE_TOKEN": token or ""}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "upgrade_gate.hook", "wait", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output = ""
        self.ended_at: datetime | None = None

    def wait(self, timeout: float = 60) -> int:
        self.output, _ = self.proc.communicate(timeout=timeout)
        self.ended_at = datetime.now(UTC)
        return self.proc.returncode

    @property
    def last_line(self) -> str:
        return self.output.strip().splitlines()[-1]


@pytest.fixture
def hooks() -> Iterator[list[Hook]]:
    started: list[Hook] = []
    yield started
    for hook in started:
        if hook.proc.poll() is None:
            hook.proc.kill()
            hook.proc.wait()


def run_hook(hooks: list[Hook], *args: str, token: str | None = TOKEN) -> Hook:
    hook = Hook(*args, token=token)
    hooks.append(hook)
    return hook


# -- what tests stand up besides apps --------------------------------------------------------


class JsonHandler(BaseHTTPRequestHandler):
    """A stub server's handler that answers JSON, and logs nothing."""

    def answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def answer_text(self, status: int, text: bytes) -> None:
        """A plain-text answer: what a router's own 404 or a proxy's page looks like."""
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A threaded HTTP server of ``handler`` on loopback, as ``127.0.0.1:PORT``, while the
    block runs; a pod or an API server that misbehaves as no real app can be made to."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def in_own_netns(script: str, timeout: float) -> dict[str, object]:
    """What ``script`` prints as JSON, run by this Python from the repository's root in a
    network namespace of its own (``unshare --net``: the host's rules and links untouched).
    Needs root."""
    done = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", script],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def write_kubeconfig(path: Path, server: str, namespace: str = "n") -> Path:
    """A kubeconfig at ``path`` for the API server at ``server`` (a stub on loopback),
    with a bearer token and ``namespace`` as its default."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [
            {"name": "x", "context": {"cluster": "c", "user": "u", "namespace": namespace}}
        ],
        "current-context": "x",
    }
    path.write_text(json.dumps(config))
    return path


def assert_refused_at_start(env: dict[str, str], complaint: str, server: str = "gunicorn") -> None:
    """An app started with ``env`` stops at start-up, and its output matches ``complaint``."""
    app = AppProcess(env, server=server)
    try:
        with pytest.raises(RuntimeError, match=complaint):
            app.start()
    finally:
        app.stop()
