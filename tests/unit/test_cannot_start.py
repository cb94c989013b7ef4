"""An operation whose thread cannot start: a clear 503, and the record ends.

Before, the record was registered and then ``Thread.start()`` raised: the
client got a 500 and the record stayed ``running`` for good, so the pod was
never upgradeable again and SIGTERM sat out the whole shutdown bound.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from e2e.loopback import AppProcess


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
