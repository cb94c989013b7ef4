"""SIGTERM: refuse new work, let running work finish (up to a bound), exit 0: under gunicorn
and under uvicorn alike."""

from __future__ import annotations

import signal
import socket
import threading

import requests

from e2e.cluster.wait import eventually
from tests.unit.conftest import BOTH_SERVERS, AppFactory


@BOTH_SERVERS
def test_sigterm_waits_for_the_running_operation_then_exits_0(make_app: AppFactory) -> None:
    app = make_app()
    op_id = app.start_operation(1.5)
    app.signal(signal.SIGTERM)

    eventually(lambda: app.get("/readyz").status_code == 503, what="readiness drops")
    refused = app.post("/start", json={"seconds": 1})
    assert refused.status_code == 503
    assert refused.json()["error"] == "shutting_down"
    # Still answering status queries while the operation runs.
    assert app.operation(op_id)["state"] == "running"

    assert app.wait(timeout=30) == 0
    log = app.log()
    assert f"waiting up to 3600s for 1 operation(s): {op_id}" in log
    assert f"operation succeeded id={op_id}" in log
    assert log.index(f"operation succeeded id={op_id}") < log.index("stopping the server")


@BOTH_SERVERS
def test_sigterm_on_an_idle_pod_exits_at_once(make_app: AppFactory) -> None:
    app = make_app()
    app.signal(signal.SIGTERM)
    assert app.wait(timeout=15) == 0
    assert "all operations finished" in app.log()


@BOTH_SERVERS
def test_shutdown_bound_is_respected(make_app: AppFactory) -> None:
    app = make_app(SHUTDOWN_TIMEOUT_SECONDS=0.5)
    op_id = app.start_operation(600)
    app.signal(signal.SIGTERM)
    assert app.wait(timeout=30) == 0
    log = app.log()
    assert "shutdown bound of 0.5s reached with 1 operation(s) running" in log
    assert op_id in log


@BOTH_SERVERS
def test_long_polls_are_released_by_shutdown(make_app: AppFactory) -> None:
    app = make_app(SHUTDOWN_TIMEOUT_SECONDS=2)
    app.start_operation(600)
    app.signal(signal.SIGTERM)
    eventually(lambda: app.status()["shutting_down"], what="shutdown begins")
    response = app.get("/upgradeable", params={"wait": 60}, timeout=10)
    assert response.status_code == 503
    assert response.json()["shutting_down"] is True


@BOTH_SERVERS
def test_a_quick_stop_does_not_wait_for_long_polls(make_app: AppFactory) -> None:
    """SIGINT (the quick stop) must not sit out a pending ``?wait=60``."""
    app = make_app()
    app.start_operation(600)
    answers: list[int | str] = []

    def long_poll() -> None:
        try:
            answers.append(app.get("/upgradeable", params={"wait": 60}, timeout=70).status_code)
        except requests.RequestException as exc:
            answers.append(type(exc).__name__)

    poller = threading.Thread(target=long_poll)
    poller.start()
    eventually(lambda: "upgrade_gate_long_polls 1.0" in app.get("/metrics").text, what="poll waits")
    app.signal(signal.SIGINT)
    assert app.wait(timeout=5) == 0
    poller.join(timeout=5)
    assert answers == [503]


def test_a_slow_client_does_not_hold_the_exit(make_app: AppFactory) -> None:
    """A request that never finishes arriving, held across SIGTERM: the app exits once its
    work is done, not when the client gives up (gunicorn waited for it until its graceful
    timeout, the shutdown bound plus 10 s). gunicorn only: the 408 is its worker's
    (upgrade_gate_sample/worker.py)."""
    app = make_app(SHUTDOWN_TIMEOUT_SECONDS=120)
    op_id = app.start_operation(1)
    with socket.create_connection(("127.0.0.1", app.port), timeout=30) as slow:
        slow.sendall(b"POST /operations HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        app.signal(signal.SIGTERM)
        assert app.wait(timeout=60) == 0
        answer = b""
        while chunk := slow.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert f"operation succeeded id={op_id}" in app.log()
