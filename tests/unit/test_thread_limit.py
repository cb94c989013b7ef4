"""Under a thread limit (a container's pids limit), nothing accepted is lost.

The app runs with ``THREAD_LIMIT`` (see :mod:`e2e.thread_limited_app`): a
thread cannot start while that many are alive. Operations are started until
one is refused; then the pod is fenced, probed by clients at once, and
stopped. Before, the worker's request pool started its threads on demand and
died when one was refused, with every accepted operation; and the fence's
timer thread turned ``POST /drain`` into a 500 while the fence held.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from e2e.cluster.wait import eventually
from e2e.loopback import AppProcess

THREADS = 4
# The worker's main thread, its request threads, the SIGTERM waiter, and room
# for a few operations.
LIMIT = 1 + THREADS + 1 + 4


@pytest.fixture
def app(request: pytest.FixtureRequest) -> Iterator[AppProcess]:
    with AppProcess(
        {"THREAD_LIMIT": str(LIMIT)}, module="e2e.thread_limited_app", threads=THREADS
    ) as app:
        request.node.app_processes = [app]
        yield app


def start_until_refused(app: AppProcess) -> list[str]:
    accepted: list[str] = []
    for _ in range(50):
        response = app.post("/operations", json={"seconds": 3})
        if response.status_code == 503:
            assert response.json()["error"] == "cannot_start"
            return accepted
        assert response.status_code == 202, response.text
        accepted.append(response.json()["id"])
    raise AssertionError(f"50 operations started under a limit of {LIMIT} threads")


def test_every_accepted_operation_finishes_and_the_worker_lives(app: AppProcess) -> None:
    instance = app.status()["instance"]
    accepted = start_until_refused(app)
    assert accepted

    # The fence needs no new thread: 200, and it holds.
    assert app.drain(ttl=30).status_code == 200
    assert app.post("/operations", json={"seconds": 1}).json()["error"] == "draining"

    # Clients at once, more than the request threads: none needs a new one.
    with ThreadPoolExecutor(3 * THREADS) as clients:
        codes = list(
            clients.map(
                lambda _: requests.get(f"{app.url}/healthz", timeout=30).status_code,
                range(3 * THREADS),
            )
        )
    assert codes == [200] * (3 * THREADS)

    def all_ended() -> bool:
        return all(app.operation(op)["state"] != "running" for op in accepted)

    eventually(all_ended, timeout=60, what="the accepted operations end")
    assert [app.operation(op)["state"] for op in accepted] == ["succeeded"] * len(accepted)
    assert app.status()["instance"] == instance, "the worker was replaced"

    app.signal(signal.SIGTERM)
    assert app.wait(timeout=30) == 0
    assert "all operations finished" in app.log()
