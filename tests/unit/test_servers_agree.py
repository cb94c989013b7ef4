"""The Flask app under gunicorn and the Starlette app under uvicorn give the same answers.

The same requests to both, in the same order; what each answers (status, the contract's
headers, the body's very bytes) must match once what differs by nature (the process's
instance, operation ids, clocks) is masked. And what only an ASGI server can do: give a
long-poll back the moment its client goes away.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from e2e.cluster.wait import eventually
from e2e.loopback import TOKEN, AppProcess
from tests.unit.conftest import SERVERS

AUTH = {"Authorization": f"Bearer {TOKEN}"}
# The headers the contract sets; the rest (Date, Server, framing) are each server's own.
CONTRACT_HEADERS = (
    "Content-Type",
    "Retry-After",
    "Cache-Control",
    "WWW-Authenticate",
    "Location",
    "Upgrade-Gate-Watch",
    "Upgrade-Gate-Instance",
)
MASKS = [
    (re.compile(rb"[0-9a-f]{32}"), b"<instance>"),
    (re.compile(rb"[0-9a-f]{12}"), b"<id>"),
    (re.compile(rb'"expires_in": ?[0-9.]+'), b'"expires_in": <s>'),
    (re.compile(rb"\d{4}-\d\d-\d\dT[0-9:.]+Z"), b"<time>"),
]

# (method, path, JSON body or None, with the token); in order: each may depend on the last.
SCRIPT: list[tuple[str, str, Any, bool]] = [
    ("GET", "/upgradeable", None, False),
    ("GET", "/upgradeable?wait=abc", None, False),
    ("GET", "/upgradeable?watch=1&wait=1", None, False),
    ("GET", "/upgradeable?watch=0", None, False),
    ("GET", "/upgradeable?wait=5", None, False),
    ("GET", "/upgradeable?watch=5", None, False),
    ("POST", "/drain", {"ttl": 60}, False),
    ("DELETE", "/drain", None, False),
    ("POST", "/drain", {"ttl": "x"}, True),
    ("POST", "/drain", {"ttl": 60, "holder": "h"}, True),
    ("POST", "/start", {"seconds": 1}, False),
    ("GET", "/upgradeable?watch=0.5", None, True),
    ("DELETE", "/drain?holder=h", None, True),
    ("POST", "/operations", {"seconds": "ten"}, False),
    ("POST", "/operations", {"seconds": 3}, False),
    ("GET", "/upgradeable", None, False),
    ("GET", "/upgradeable?wait=0.2", None, False),
    ("GET", "/operations/nope", None, False),
    ("GET", "/readyz", None, False),
    ("GET", "/healthz", None, False),
    ("GET", "/version", None, False),
]


def _mask(body: bytes) -> bytes:
    for pattern, mask in MASKS:
        body = pattern.sub(mask, body)
    return body


Answer = tuple[str, int, dict[str, str], bytes]


def answers_to(url: str, script: list[tuple[str, str, Any, bool]] = SCRIPT) -> list[Answer]:
    """What the app at ``url`` answers to ``script``, masked."""
    answers = []
    for method, path, body, token in script:
        response = requests.request(
            method, url + path, json=body, headers=AUTH if token else {}, timeout=30
        )
        headers = {
            name: _mask(response.headers[name].encode()).decode()
            for name in CONTRACT_HEADERS
            if name in response.headers
        }
        answers.append((f"{method} {path}", response.status_code, headers, _mask(response.content)))
    return answers


def test_both_servers_answer_the_contract_alike(request: pytest.FixtureRequest) -> None:
    answers = {}
    for server in SERVERS:
        with AppProcess({"APP_VERSION": "v1"}, server=server) as app:
            request.node.app_processes = [app]
            answers[server] = answers_to(app.url)
    for gunicorn, uvicorn in zip(answers["gunicorn"], answers["uvicorn"], strict=True):
        assert uvicorn == gunicorn
    statuses = [status for _, status, _, _ in answers["uvicorn"]]
    assert statuses == [
        200, 400, 400, 400, 200, 200, 401, 401, 400, 200, 503, 200, 200, 400, 202, 503, 503,
        404, 200, 200, 200,
    ]  # fmt: skip


# -- uvicorn only: a long-poll given back when its client goes away ------------------------


@pytest.fixture
def uvicorn_app(request: pytest.FixtureRequest) -> Iterator[AppProcess]:
    """One long-poll allowed: a second is admitted only once the first is given back."""
    with AppProcess({"LONG_POLL_LIMIT": "1"}, server="uvicorn") as app:
        request.node.app_processes = [app]
        yield app


def _long_poll(app: AppProcess, query: str) -> socket.socket:
    """A long-poll sent on a connection of its own, left waiting."""
    sock = socket.create_connection(("127.0.0.1", app.port), timeout=30)
    sock.sendall(f"GET /upgradeable?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    eventually(lambda: app.long_polls() == 1, what="the long-poll waiting")
    return sock


@pytest.mark.parametrize("query", ["wait=60", "watch=60"])
def test_a_long_poll_whose_client_goes_away_is_given_back_at_once(
    uvicorn_app: AppProcess, query: str
) -> None:
    """gunicorn's request thread learns it only when the wait ends (up to a minute): only
    an ASGI server hears the client leave while the long-poll waits."""
    app = uvicorn_app
    if query.startswith("wait"):
        app.start_operation(120)
    else:
        assert app.drain(ttl=120).status_code == 200
    first = _long_poll(app, query)
    if query.startswith("watch"):
        assert b"upgrade-gate-watch: holding" in first.recv(4096).lower()
    assert app.get(f"/upgradeable?{query}", timeout=10).status_code == 429  # the one slot
    first.close()
    eventually(lambda: app.long_polls() == 0, what="the long-poll given back")
    with _long_poll(app, query):  # the slot is free again
        pass
