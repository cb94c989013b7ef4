"""gunicorn's own answers and connection handling, over raw sockets.

Requests that never reach Flask (a malformed request line, a URI or header
too large) are answered by gunicorn itself: JSON like every other error. And
connections that say nothing, or more of them than the worker keeps, must not
keep the probes out.
"""

from __future__ import annotations

import json
import resource
import socket
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
import requests

from e2e.loopback import AppProcess

PROBE_TIMEOUT = 2.0  # the chart's readinessProbe.timeoutSeconds


def probe(app: AppProcess) -> int:
    """A liveness probe as the kubelet sends it: a new connection each time."""
    return requests.get(f"{app.url}/healthz", timeout=PROBE_TIMEOUT).status_code


def exchange(app: AppProcess, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw`` as is and read one answer (its head, then Content-Length bytes)."""
    with socket.create_connection(("127.0.0.1", app.port), timeout=10) as sock:
        sock.sendall(raw)
        data = b""
        while b"\r\n\r\n" not in data and (chunk := sock.recv(65536)):
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        while len(body) < int(headers["content-length"]) and (chunk := sock.recv(65536)):
            body += chunk
    return int(status_line.split()[1]), headers, body


@pytest.fixture(scope="module")
def server() -> Iterator[AppProcess]:
    with AppProcess(threads=4) as app:
        yield app


@pytest.fixture
def app(server: AppProcess, request: pytest.FixtureRequest) -> AppProcess:
    request.node.app_processes = [server]
    return server


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /healthz HTTP/9.9\r\n\r\n", 400),
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
        (b"GET /healthz HTTP/1.1\r\n" + b"X-Many: 1\r\n" * 120 + b"\r\n", 431),
        (b"GET /healthz HTTP/1.1\r\nBad Header: x\r\n\r\n", 400),
        (b"POST /start HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        (b"POST /start HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: foo\r\n\r\n", 501),
    ],
    ids=[
        "request-line",
        "http-version",
        "uri-too-long",
        "header-too-large",
        "too-many-headers",
        "header-name",
        "no-length",
        "transfer-coding",
    ],
)
def test_gunicorns_own_error_answers_are_json(app: AppProcess, raw: bytes, status: int) -> None:
    code, headers, body = exchange(app, raw)
    assert code == status
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    answer = json.loads(body)
    assert answer["error"]
    assert answer["message"]


def test_a_body_the_server_cannot_read_is_a_json_400(app: AppProcess) -> None:
    """A malformed chunked body fails inside the app's body read, not in gunicorn."""
    raw = b"POST /start HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    code, headers, body = exchange(app, raw)
    assert (code, headers["content-type"]) == (400, "application/json")
    assert "body could not be read" in json.loads(body)["error"]
    assert app.get("/operations").json()["operations"] == []


def test_silent_connections_do_not_hold_the_request_threads(app: AppProcess) -> None:
    """Connections that send nothing (a port scan, a pre-connecting pool) wait
    in the worker's poller, not in one of its 4 threads."""
    with ExitStack() as stack:
        for _ in range(3 * app.threads):
            stack.enter_context(socket.create_connection(("127.0.0.1", app.port), timeout=5))
        for _ in range(3):
            assert probe(app) == 200


def test_more_connections_than_the_worker_keeps_do_not_lock_the_probes_out(
    app: AppProcess,
) -> None:
    """gunicorn stops accepting at ``worker_connections`` (1000); idle ones are
    closed, oldest first, so that a new connection is always accepted."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1300:
        if hard != resource.RLIM_INFINITY and hard < 1300:
            pytest.skip(f"needs 1300 file descriptors, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (1300, hard))
    try:
        with ExitStack() as stack:
            for _ in range(1100):
                stack.enter_context(socket.create_connection(("127.0.0.1", app.port), timeout=5))
            for _ in range(3):
                assert probe(app) == 200
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
