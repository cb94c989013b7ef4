"""Long-polls cannot starve the pod: a cap below the thread count, 429 over it.

``GET /upgradeable?wait=S`` needs no token and holds a request thread while it
waits. Before the cap, as many long-polls as threads made ``/healthz``,
``/readyz`` and ``POST /drain`` time out for as long as work ran, and the
liveness probe would have restarted the container mid-operation.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from e2e.cluster.wait import eventually
from e2e.loopback import TOKEN, AppProcess
from tests.unit.conftest import BOTH_SERVERS, AppFactory, assert_refused_at_start

pytestmark = BOTH_SERVERS

PROBE_TIMEOUT = 2.0  # the chart's readinessProbe.timeoutSeconds


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage  # names in any case: uvicorn sends them in lower case
    body: dict[str, Any] = field(default_factory=dict)


class Flood:
    """Long-poll clients on their own connections; counts requests fully sent."""

    def __init__(self, app: AppProcess) -> None:
        self.app = app
        self.pool = ThreadPoolExecutor(max_workers=64)
        self.sent = 0
        self._lock = threading.Lock()

    def long_poll(self, token: str | None = None, wait: float = 60) -> Future[Answer]:
        return self.pool.submit(self._long_poll, token, wait)

    def _long_poll(self, token: str | None, wait: float) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.app.port, timeout=wait + 10)
        try:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            conn.request("GET", f"/upgradeable?wait={wait:g}", headers=headers)
            with self._lock:
                self.sent += 1
            response = conn.getresponse()
            return Answer(response.status, response.headers, json.loads(response.read()))
        finally:
            conn.close()

    def close(self) -> None:
        self.pool.shutdown(wait=True)


@pytest.fixture
def flood(app: AppProcess) -> Iterator[Flood]:
    flood = Flood(app)
    yield flood
    flood.close()


def test_a_flood_of_long_polls_leaves_probes_and_drain_answering(
    app: AppProcess, flood: Flood
) -> None:
    op_id = app.start_operation(8)  # outlasts the checks on a busy machine
    polls = [flood.long_poll() for _ in range(48)]  # more than the 32 threads
    eventually(lambda: flood.sent == len(polls), what="every long-poll sent")

    auth = {"Authorization": f"Bearer {TOKEN}"}
    for _ in range(5):  # what the kubelet and the hook ask meanwhile
        # The kubelet opens a new connection for every probe.
        assert requests.get(f"{app.url}/healthz", timeout=PROBE_TIMEOUT).status_code == 200
        assert requests.get(f"{app.url}/readyz", timeout=PROBE_TIMEOUT).status_code == 200
        drained = app.post("/drain", json={"ttl": 30}, headers=auth, timeout=PROBE_TIMEOUT)
        assert drained.status_code == 200
    assert app.long_polls(PROBE_TIMEOUT) == 16  # half of the 32 threads
    assert app.operation(op_id)["state"] == "running"

    answers = [poll.result(timeout=30) for poll in polls]
    assert sorted(a.status for a in answers) == [200] * 16 + [429] * 32
    assert app.operation(op_id)["state"] == "succeeded"
    assert app.delete("/drain", headers=auth).status_code == 200


def test_the_refusal_is_a_json_429_with_retry_after_and_the_status(
    make_app: AppFactory,
) -> None:
    app = make_app(LONG_POLL_LIMIT=1)
    flood = Flood(app)
    try:
        app.start_operation(6)
        held = flood.long_poll()
        eventually(lambda: app.long_polls(PROBE_TIMEOUT) == 1, what="the first long-poll waits")
        refused = flood.long_poll().result(timeout=10)
        assert refused.status == 429
        assert int(refused.headers["Retry-After"]) > 0
        assert refused.headers["Content-Type"] == "application/json"
        assert refused.body["error"] == "too_many_long_polls"
        assert refused.body["message"]
        assert (refused.body["upgradeable"], refused.body["active"]) == (False, 1)
        assert refused.body["instance"] == app.status()["instance"]
        assert held.result(timeout=30).status == 200
    finally:
        flood.close()


def test_the_hooks_token_has_its_own_allowance(make_app: AppFactory) -> None:
    app = make_app(LONG_POLL_LIMIT=2)  # 32 threads: 4 more for requests with the token
    flood = Flood(app)
    try:
        app.start_operation(8)
        anonymous = [flood.long_poll() for _ in range(2)]
        eventually(lambda: app.long_polls(PROBE_TIMEOUT) == 2, what="the anonymous long-polls wait")
        assert flood.long_poll().result(timeout=10).status == 429
        assert flood.long_poll(token="wrong").result(timeout=10).status == 429
        hook = [flood.long_poll(token=TOKEN) for _ in range(4)]
        eventually(lambda: app.long_polls(PROBE_TIMEOUT) == 6, what="the hook's long-polls wait")
        assert flood.long_poll(token=TOKEN).result(timeout=10).status == 429
        assert [p.result(timeout=30).status for p in anonymous + hook] == [200] * 6
    finally:
        flood.close()


@pytest.mark.parametrize(
    ("limit", "complaint"),
    [
        ("abc", "must be a whole number"),
        ("-1", "must be a whole number"),
        ("21", "must be at most 20"),
    ],
)
def test_a_limit_that_leaves_no_thread_free_stops_the_server(
    limit: str, complaint: str, app_server: str
) -> None:
    assert_refused_at_start({"LONG_POLL_LIMIT": limit}, f"LONG_POLL_LIMIT {complaint}", app_server)
