"""upgrade_gate.wsgi: the contract for any WSGI app, without Flask, under a real gunicorn.

A plain WSGI app (``e2e/wsgi_app.py``) behind the gate's middleware, served by gunicorn on
loopback: the gate's answers are the Flask app's, byte for byte; a refused operation is the
contract's 503; long-polls, watches and their cap hold as they do under Flask.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from e2e.cluster.base import free_port
from e2e.cluster.wait import eventually
from e2e.loopback import TOKEN, AppProcess
from tests.unit.test_servers_agree import AUTH, SCRIPT, answers_to


class WsgiApp:
    """``gunicorn e2e.wsgi_app:app``: one process, 8 threads."""

    def __init__(self, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the process)
        command = ["gunicorn", "--bind", f"127.0.0.1:{self.port}", "--threads", "8"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *command, "--worker-class", "gthread", "e2e.wsgi_app:app"],
            env={"UPGRADE_GATE_TOKEN": TOKEN, "PATH": "/usr/bin:/bin", **env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

        def healthy() -> bool:
            assert self.proc.poll() is None, self.output()
            try:
                return requests.get(f"{self.url}/healthz", timeout=2).ok
            except requests.RequestException:
                return False

        eventually(healthy, timeout=30, what="the WSGI app answers")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def long_polls(self) -> int:
        count: int = requests.get(f"{self.url}/healthz", timeout=10).json()["long_polls"]
        return count

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


@pytest.fixture
def wsgi_app() -> Iterator[WsgiApp]:
    app = WsgiApp()
    yield app
    app.stop()


def _start(app: WsgiApp, seconds: float) -> requests.Response:
    return requests.post(f"{app.url}/operations", json={"seconds": seconds}, timeout=10)


GATE_SCRIPT = [
    step
    for step in SCRIPT
    if step[1].startswith(("/upgradeable", "/drain")) or step[:2] == ("POST", "/operations")
]
GATE_SCRIPT = [step for step in GATE_SCRIPT if step[2] != {"seconds": "ten"}]


def test_the_gate_answers_as_the_flask_app_does(
    wsgi_app: WsgiApp, request: pytest.FixtureRequest
) -> None:
    with AppProcess() as flask_app:
        request.node.app_processes = [flask_app]
        flask = answers_to(flask_app.url, GATE_SCRIPT)
    wsgi = answers_to(wsgi_app.url, GATE_SCRIPT)
    compared = 0
    for ours, theirs in zip(wsgi, flask, strict=True):
        if ours[0].startswith(("GET /upgradeable", "POST /drain", "DELETE /drain")):
            assert ours == theirs
            compared += 1
    assert compared == len(GATE_SCRIPT) - 1


def test_work_refused_in_the_app_is_the_contracts_503(wsgi_app: WsgiApp) -> None:
    fence = requests.post(f"{wsgi_app.url}/drain", json={"ttl": 60}, headers=AUTH, timeout=10)
    assert fence.status_code == 200
    refused = _start(wsgi_app, 1)
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "2"
    assert (refused.json()["error"], refused.json()["draining"]) == ("draining", True)


def test_a_long_poll_answers_when_the_operation_ends(wsgi_app: WsgiApp) -> None:
    op_id = _start(wsgi_app, 1).json()["id"]
    busy = requests.get(f"{wsgi_app.url}/upgradeable", timeout=10)
    assert (busy.status_code, busy.json()["running"]) == (503, [op_id])
    done = requests.get(f"{wsgi_app.url}/upgradeable?wait=30", timeout=40)
    assert (done.status_code, done.json()["active"]) == (200, 0)


def test_a_watch_holds_until_the_fence_is_lifted(wsgi_app: WsgiApp) -> None:
    requests.post(f"{wsgi_app.url}/drain", json={"ttl": 60}, headers=AUTH, timeout=10)
    held = requests.get(f"{wsgi_app.url}/upgradeable?watch=30", timeout=40, stream=True)
    assert held.headers["Upgrade-Gate-Watch"] == "holding"
    with ThreadPoolExecutor(1) as pool:
        body = pool.submit(lambda: held.content)
        assert not body.done()
        requests.delete(f"{wsgi_app.url}/drain", headers=AUTH, timeout=10)
        answer = json.loads(body.result(timeout=10))
    assert (answer["watched"], answer["draining"]) == (True, False)


def test_long_polls_over_the_cap_are_a_429_and_the_hooks_token_has_its_own() -> None:
    app = WsgiApp(LONG_POLL_LIMIT="1")
    try:
        _start(app, 5)
        url = f"{app.url}/upgradeable?wait=30"
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(requests.get, url, timeout=40)
            eventually(lambda: app.long_polls() == 1, what="the one anonymous slot taken")
            refused = requests.get(url, timeout=40)
            assert refused.status_code == 429
            assert refused.json()["error"] == "too_many_long_polls"
            assert refused.headers["Retry-After"] == "1"
            hooks = pool.submit(requests.get, url, headers=AUTH, timeout=40)
            assert first.result().status_code == 200
            assert hooks.result().status_code == 200
    finally:
        app.stop()


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("PUT", "/drain", 405), ("POST", "/upgradeable", 405), ("GET", "/nowhere", 404)],
)
def test_other_methods_and_paths_are_json(
    wsgi_app: WsgiApp, method: str, path: str, status: int
) -> None:
    response = requests.request(method, wsgi_app.url + path, timeout=10)
    assert response.status_code == status
    assert response.json()["error"]


def test_a_drain_body_over_the_limit_is_a_413(wsgi_app: WsgiApp) -> None:
    response = requests.post(
        f"{wsgi_app.url}/drain", data=b"{" + b" " * 2_000_000 + b"}", headers=AUTH, timeout=10
    )
    assert response.status_code == 413
    assert response.json()["error"]


def test_a_bad_wait_is_a_400(wsgi_app: WsgiApp) -> None:
    for wait in ("", "abc", "61"):
        response = requests.get(f"{wsgi_app.url}/upgradeable?wait={wait}", timeout=10)
        assert response.status_code == 400
        assert "wait" in response.json()["error"]
