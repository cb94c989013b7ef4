"""The control endpoints on a port of their own, with threads of their own.

``serve --management-port`` serves the probes, ``/upgradeable``, ``/drain``,
``/metrics`` and ``/version`` on a second listener whose requests run in a
small pool the app's traffic cannot take; the app's port keeps the whole
contract, for hooks of earlier releases. The same under uvicorn (a second uvicorn server on
the same event loop); the tests that take every thread or connection of the app port are
about gunicorn's worker (upgrade_gate_sample/worker.py), and run under gunicorn only.
"""

from __future__ import annotations

import contextlib
import resource
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests

from e2e.cluster.wait import eventually
from e2e.loopback import TOKEN, AppProcess, _children
from tests.unit.conftest import BOTH_SERVERS, Hook, JsonHandler, serving, write_kubeconfig
from upgrade_gate.hook import Exit

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def app(request: pytest.FixtureRequest, app_server: str) -> Iterator[AppProcess]:
    """Under gunicorn, the sample app with a route that holds a request thread (the tests
    that take every thread of the app port are gunicorn's: its worker gives the management
    port threads of its own); under uvicorn, the sample app itself."""
    module = "e2e.holding_app" if app_server == "gunicorn" else "upgrade_gate_sample"
    with AppProcess(module=module, threads=4, management=True, server=app_server) as app:
        request.node.app_processes = [app]
        yield app


def management(app: AppProcess) -> str:
    assert app.management_url is not None
    return app.management_url


@BOTH_SERVERS
def test_the_management_port_serves_the_control_endpoints_only(app: AppProcess) -> None:
    url = management(app)
    for path in ("/healthz", "/readyz", "/version", "/metrics", "/upgradeable"):
        assert requests.get(url + path, timeout=30).status_code == 200, path
    assert requests.post(url + "/drain", json={"ttl": 30}, headers=AUTH, timeout=30).ok
    assert requests.get(app.url + "/upgradeable", timeout=30).json()["draining"] is True
    assert requests.delete(url + "/drain", headers=AUTH, timeout=30).ok

    for method, path in (("POST", "/operations"), ("POST", "/start"), ("GET", "/operations")):
        answer = requests.request(method, url + path, json={"seconds": 1}, timeout=30)
        assert answer.status_code == 404, (method, path)
        assert answer.json()["error"]
    assert app.get("/operations").json()["operations"] == [], "no work began on it"


def test_the_control_endpoints_answer_while_the_apps_threads_are_all_taken(
    app: AppProcess,
) -> None:
    with threads_held(app):
        url = management(app)
        assert requests.get(url + "/healthz", timeout=30).status_code == 200
        assert requests.get(url + "/readyz", timeout=30).status_code == 200
        fence = requests.post(url + "/drain", json={"ttl": 30}, headers=AUTH, timeout=30)
        assert (fence.status_code, fence.json()["draining"]) == (200, True)
        status = requests.get(url + "/upgradeable?wait=1", headers=AUTH, timeout=30)
        assert status.status_code == 200
        assert requests.delete(url + "/drain", headers=AUTH, timeout=30).ok


def _hold(app: AppProcess) -> None:
    with contextlib.suppress(requests.RequestException):  # ended by the app's stop
        requests.post(f"{app.url}/hold?seconds=60", timeout=90)


def _open_files(app: AppProcess) -> int:
    assert app.proc is not None
    (worker,) = _children(app.proc.pid)
    return sum(1 for _ in Path(f"/proc/{worker}/fd").iterdir())


def _all_held(app: AppProcess) -> bool:
    """No app-port thread answers: a probe on the app port gets no answer in a second."""
    try:
        requests.get(f"{app.url}/healthz", timeout=1)
    except requests.Timeout:
        return True
    return False


@contextlib.contextmanager
def threads_held(app: AppProcess) -> Iterator[None]:
    """Every app-port thread held by a long request while the block runs; then a quick stop
    of the app, which ends the held requests."""
    holds = [threading.Thread(target=_hold, args=(app,)) for _ in range(app.threads)]
    for thread in holds:
        thread.start()
    try:
        eventually(lambda: _all_held(app), timeout=30, what="every app-port thread held")
        yield
    finally:
        app.stop()
        for thread in holds:
            thread.join(timeout=30)


@BOTH_SERVERS
def test_the_hook_gates_through_the_management_port(app: AppProcess) -> None:
    op_id = app.start_operation(1)
    hook = Hook("--endpoints", f"127.0.0.1:{app.management_port}", "--timeout", "60")
    assert hook.wait() == Exit.OK, hook.output
    assert app.operation(op_id)["state"] == "succeeded"
    assert app.status()["lease"]["holder"].startswith("hook/")


@BOTH_SERVERS
def test_sigterm_still_waits_for_the_work(app: AppProcess) -> None:
    op_id = app.start_operation(2)
    app.signal(signal.SIGTERM)
    assert app.wait(timeout=60) == 0
    assert f"operation succeeded id={op_id}" in app.log()


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--port", "8080", "--management-port", "8080"], "a port of its own"),
        (["--management-port", "0"], "a port of its own"),
        (["--management-port", "9", "--management-threads", "1"], "at least 2"),
    ],
)
@pytest.mark.parametrize("server", ["gunicorn", "uvicorn"])
def test_a_management_port_that_cannot_work_is_a_usage_error(
    args: list[str], complaint: str, server: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "upgrade_gate_sample", "serve", "--server", server, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == Exit.USAGE
    assert complaint in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# -- the hook finds each pod's port: the management port, else the app's ------------------


class _PodList(JsonHandler):
    """An API server listing two running pods on loopback: one of this release, with a
    management port, and one of an earlier release, with only its app port."""

    pods: ClassVar[list[dict[str, Any]]] = []

    def do_GET(self) -> None:
        items = type(self).pods if "/pods" in self.path else []
        self.answer(200, {"kind": "List", "items": items})


def _pod(name: str, ports: dict[str, int]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "uid": f"uid-{name}", "labels": {"app": "x"}},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "ports": [{"name": k, "containerPort": v} for k, v in ports.items()],
                }
            ]
        },
        "status": {"phase": "Running", "podIP": "127.0.0.1"},
    }


@BOTH_SERVERS
def test_the_hook_uses_each_pods_management_port_else_its_app_port(
    app: AppProcess, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    with AppProcess() as earlier:  # a pod of an earlier release: no management port
        request.node.app_processes = [app, earlier]
        assert app.management_port is not None
        _PodList.pods = [
            _pod("new", {"http": app.port, "management": app.management_port}),
            _pod("old", {"http": earlier.port}),
        ]
        with serving(_PodList) as endpoint:
            kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://{endpoint}")
            hook = Hook(
                "--selector", "app=x", "--port", "management,http",
                "--kubeconfig", str(kubeconfig), "--timeout", "60",
            )  # fmt: skip
            assert hook.wait() == Exit.OK, hook.output
        assert f"127.0.0.1:{app.management_port}" in hook.output
        assert f"127.0.0.1:{earlier.port}" in hook.output
        assert f"127.0.0.1:{app.port}" not in hook.output
        for pod in (app, earlier):
            assert pod.status()["lease"]["holder"].startswith("hook/")


# -- what the app port's traffic cannot take from the management port ----------------------


@pytest.fixture
def many_files() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1400:
        if hard != resource.RLIM_INFINITY and hard < 1400:
            pytest.fail(f"needs 1400 file descriptors, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (1400, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_app_port_requests_waiting_for_a_thread_do_not_stop_the_management_port(
    app: AppProcess, many_files: None
) -> None:
    """gunicorn stops accepting at 1000 connections, both ports counted; whole requests
    waiting for a thread cannot be closed to make room."""
    with threads_held(app), contextlib.ExitStack() as stack:
        for _ in range(1050):
            sock = stack.enter_context(
                socket.create_connection(("127.0.0.1", app.port), timeout=30)
            )
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        eventually(
            lambda: _open_files(app) >= 1000,
            timeout=60,
            what="the worker has taken 1000 connections (gunicorn's worker_connections)",
        )
        url = management(app)
        assert requests.get(url + "/healthz", timeout=30).status_code == 200
        fence = requests.post(url + "/drain", json={"ttl": 30}, headers=AUTH, timeout=30)
        assert fence.status_code == 200


def test_app_port_connections_at_the_limit_do_not_close_a_management_connection(
    app: AppProcess, many_files: None
) -> None:
    """At worker_connections the longest-idle connection is closed to make room. A probe's
    connection, accepted before its request came, was the longest idle when app-port
    connections kept arriving, and was closed under it (a reset, seen when .ci/run ran the
    limit test beside a node image build)."""
    with threads_held(app), contextlib.ExitStack() as stack:

        def whole_request() -> None:
            sock = stack.enter_context(
                socket.create_connection(("127.0.0.1", app.port), timeout=30)
            )
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")

        base = _open_files(app)
        for _ in range(980):  # queued for a thread: they cannot be closed
            whole_request()
        eventually(lambda: _open_files(app) == base + 980, timeout=60, what="980 taken")
        probe = stack.enter_context(
            socket.create_connection(("127.0.0.1", app.management_port), timeout=30)
        )
        eventually(lambda: _open_files(app) == base + 981, timeout=30, what="probe accepted")
        for _ in range(60):  # past the limit: the worker makes room as they come
            whole_request()
        eventually(lambda: _open_files(app) >= 1000, timeout=60, what="the worker full")
        probe.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = probe.recv(4096)
        assert answer.startswith(b"HTTP/1.1 200"), answer


def test_whole_requests_waiting_for_a_thread_count_against_the_memory_bound(
    app: AppProcess,
) -> None:
    """Unfinished requests are bounded to 64 MiB in all; whole ones queued for a thread were
    not counted, and 240 of 1 MiB took the worker past the chart's 256Mi limit."""
    body = b'{"seconds": 1, "pad": "' + b"x" * (1024 * 1024 - 40) + b'"}'
    head = b"POST /operations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    statuses = []
    with threads_held(app), contextlib.ExitStack() as stack:
        socks = []
        for _ in range(100):
            sock = stack.enter_context(
                socket.create_connection(("127.0.0.1", app.port), timeout=30)
            )
            with contextlib.suppress(OSError):  # refused (and closed) while sending
                sock.sendall(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            socks.append(sock)
        for sock in socks:
            sock.setblocking(False)

        def answered() -> bool:
            # A queued request gets no answer while the threads are held; a refused one
            # does, once the worker has read that far.
            for sock in socks:
                with contextlib.suppress(OSError):
                    statuses.append(sock.recv(12)[9:12])
            return b"503" in statuses

        eventually(answered, timeout=30, what="a request refused at the bound")
    assert b"202" not in statuses, "no operation began while the threads were held"
