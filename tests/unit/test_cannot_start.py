"""An operation whose thread cannot start: a clear 503, and the record ends.

Before, the record was registered and then ``Thread.start()`` raised: the
client got a 500 and the record stayed ``running`` for good, so the pod was
never upgradeable again and SIGTERM sat out the whole shutdown bound.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from e2e.cluster.wait import eventually
from e2e.loopback import AppProcess
from tests.unit.conftest import assert_refused_at_start


@pytest.fixture
def app(request: pytest.FixtureRequest) -> Iterator[AppProcess]:
    with AppProcess(module="e2e.thread_limited_app", threads=4) as app:
        request.node.app_processes = [app]
        yield app


def test_a_thread_that_cannot_start_is_a_503_and_the_pod_stays_upgradeable(
    app: AppProcess,
) -> None:
    response = app.post("/operations", json={"seconds": 30})
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    body = response.json()
    assert body["error"] == "cannot_start"
    assert "can't start new thread" in body["message"]
    assert (body["upgradeable"], body["active"]) == (True, 0)

    (record,) = app.get("/operations").json()["operations"]
    assert record["state"] == "failed"
    assert "can't start new thread" in record["error"]
    status = app.get("/upgradeable")
    assert (status.status_code, status.json()["active"]) == (200, 0)

    app.signal(signal.SIGTERM)
    assert app.wait(timeout=15) == 0
    assert "all operations finished" in app.log()


def test_operations_past_the_limit_are_a_503_and_none_is_lost(
    request: pytest.FixtureRequest,
) -> None:
    with AppProcess({"OPERATION_LIMIT": "2"}, threads=4) as app:
        request.node.app_processes = [app]
        running = [app.start_operation(2), app.start_operation(2)]
        refused = app.post("/operations", json={"seconds": 1})
        assert refused.status_code == 503
        assert refused.json()["error"] == "cannot_start"
        assert "the most it runs at once" in refused.json()["message"]
        eventually(
            lambda: all(app.operation(op)["state"] == "succeeded" for op in running),
            timeout=60,
            what="the accepted operations end",
        )
        assert app.post("/operations", json={"seconds": 0.1}).status_code == 202
        assert len(app.get("/operations").json()["operations"]) == 3


def test_a_limit_that_is_not_a_whole_number_stops_the_app() -> None:
    assert_refused_at_start({"OPERATION_LIMIT": "0"}, "OPERATION_LIMIT must be a whole number")
