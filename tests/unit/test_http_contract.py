"""The HTTP contract, against real processes on loopback: gunicorn (the Flask app) and uvicorn
(the Starlette app) alike."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
import requests

from e2e.cluster.wait import eventually
from e2e.loopback import TOKEN, AppProcess
from tests.unit.conftest import BOTH_SERVERS, AppFactory, assert_refused_at_start
from upgrade_gate import CONTRACT

pytestmark = BOTH_SERVERS


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_idle_pod_is_upgradeable(app: AppProcess) -> None:
    response = app.get("/upgradeable")
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "contract": CONTRACT,
        "upgradeable": True,
        "isUpgradeable": True,
        "active": 0,
        "running": [],
        "draining": False,
        "shutting_down": False,
        "instance": body.get("instance"),
    }
    assert re.fullmatch(r"[0-9a-f]{32}", body["instance"])


def test_every_status_answer_names_the_same_process_instance(app: AppProcess) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    instance = app.status()["instance"]
    assert app.get("/upgradeable", params={"wait": 1}).json()["instance"] == instance
    assert app.drain(ttl=60).json()["instance"] == instance
    refused = app.post("/start", json={"seconds": 0.1})
    assert (refused.status_code, refused.json()["instance"]) == (503, instance)
    assert app.delete("/drain", headers=auth).json()["instance"] == instance


def test_a_restarted_process_on_the_same_address_has_a_new_instance(app: AppProcess) -> None:
    """A container restart keeps the pod's name and IP: only ``instance`` tells."""
    before = app.status()["instance"]
    app.kill_worker()  # gunicorn's master starts a new worker: a new process, same address

    def new_instance() -> str | None:
        try:
            instance: str = app.status()["instance"]
        except requests.RequestException:
            return None
        return instance if instance != before else None

    after = eventually(new_instance, timeout=30, what="a new worker answers")
    assert re.fullmatch(r"[0-9a-f]{32}", after)


@pytest.mark.parametrize("path", ["/start", "/operations"])
def test_starting_an_operation_answers_at_once_and_runs_it_in_the_background(
    app: AppProcess, path: str
) -> None:
    response = app.post(path, json={"seconds": 0.5})
    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"id", "seconds", "started_at"}
    assert body["seconds"] == 0.5
    assert response.headers["Location"] == f"/operations/{body['id']}"
    assert app.operation(body["id"])["state"] == "running"
    done = eventually(
        lambda: app.operation(body["id"])["state"] == "succeeded" and app.operation(body["id"])
    )
    assert _at(done["finished_at"]) > _at(done["started_at"])


def test_empty_body_uses_the_configured_default(make_app: AppFactory) -> None:
    app = make_app(OPERATION_DEFAULT_SECONDS=0.2)
    response = app.post("/start")
    assert response.status_code == 202
    assert response.json()["seconds"] == 0.2


def test_busy_pod_answers_503_with_retry_after(app: AppProcess) -> None:
    op_id = app.start_operation(5)
    response = app.get("/upgradeable")
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    body = response.json()
    assert (body["upgradeable"], body["isUpgradeable"], body["active"]) == (False, False, 1)
    assert body["running"] == [op_id]


def test_overlapping_operations_keep_the_pod_busy_until_the_last_ends(app: AppProcess) -> None:
    short = app.start_operation(0.3)
    long = app.start_operation(2.5)
    # Long-poll past the end of the short one: the original demo's shared
    # boolean flipped to "upgradeable" at that moment.
    response = app.get("/upgradeable", params={"wait": 1.2})
    assert app.operation(short)["state"] == "succeeded"
    assert response.status_code == 503
    assert response.json()["running"] == [long]

    released = app.get("/upgradeable", params={"wait": 30})
    assert released.status_code == 200
    assert app.operation(long)["state"] == "succeeded"


def test_many_concurrent_operations_are_all_counted(app: AppProcess) -> None:
    ids = [app.start_operation(0.2 + i * 0.05) for i in range(20)]
    seen_active: list[int] = []
    while (status := app.status())["active"]:
        # Every answer is consistent with itself: busy exactly while work runs.
        assert status["upgradeable"] is False
        assert len(status["running"]) == status["active"]
        seen_active.append(status["active"])
    assert status["upgradeable"] is True
    assert seen_active == sorted(seen_active, reverse=True)  # only ever counts down
    assert all(app.operation(i)["state"] == "succeeded" for i in ids)


def test_long_poll_answers_the_moment_the_last_operation_ends(app: AppProcess) -> None:
    op_id = app.start_operation(1.0)
    response = app.get("/upgradeable", params={"wait": 30})
    answered = datetime.now().astimezone()
    assert response.status_code == 200
    record = app.operation(op_id)
    assert record["state"] == "succeeded"
    assert _at(record["finished_at"]) <= answered


def test_long_poll_gives_up_with_503_after_wait(app: AppProcess) -> None:
    app.start_operation(10)
    response = app.get("/upgradeable", params={"wait": 0.2})
    assert response.status_code == 503
    assert response.json()["active"] == 1


def test_long_poll_on_an_idle_pod_answers_at_once(app: AppProcess) -> None:
    # A long wait on an idle pod must not hold the request (timeout < wait).
    response = app.get("/upgradeable", params={"wait": 60}, timeout=5)
    assert response.status_code == 200


def test_a_watch_holds_until_the_fence_is_lifted(app: AppProcess) -> None:
    assert app.drain(60).status_code == 200
    instance = app.status()["instance"]
    # The head comes at once: the process itself says it holds the watch.
    held = app.get("/upgradeable", params={"watch": 30}, timeout=40, stream=True)
    assert held.headers["Upgrade-Gate-Watch"] == "holding"
    assert held.headers["Upgrade-Gate-Instance"] == instance
    eventually(lambda: app.long_polls() == 1, what="the watch held")
    with ThreadPoolExecutor(1) as pool:
        body = pool.submit(lambda: held.content)
        assert not body.done()
        app.delete("/drain", headers={"Authorization": f"Bearer {TOKEN}"})
        answer = json.loads(body.result(timeout=10))
    assert answer["watched"] is True  # a hook tells this app from one that ignores ?watch
    assert answer["draining"] is False
    assert answer["instance"] == instance
    assert app.long_polls() == 0


def test_a_watch_on_a_pod_that_is_not_fenced_answers_at_once(app: AppProcess) -> None:
    response = app.get("/upgradeable", params={"watch": 60}, timeout=5)
    assert response.status_code == 200
    assert response.json()["watched"] is True
    assert "Upgrade-Gate-Watch" not in response.headers


@pytest.mark.parametrize(
    "params",
    [{"watch": "soon"}, {"watch": -1}, {"watch": 61}, {"watch": 1, "wait": 1}],
)
def test_a_bad_watch_is_a_400(app: AppProcess, params: dict[str, object]) -> None:
    response = app.get("/upgradeable", params=params)
    assert response.status_code == 400
    assert response.json()["error"]


def test_maximum_comes_from_configuration(make_app: AppFactory) -> None:
    app = make_app(OPERATION_MAX_SECONDS=5, OPERATION_DEFAULT_SECONDS=1)
    assert app.post("/start", json={"seconds": 5}).status_code == 202
    response = app.post("/start", json={"seconds": 5.5})
    assert response.status_code == 400
    assert "at most 5" in response.json()["error"]


def test_operations_are_listed(app: AppProcess) -> None:
    ids = {app.start_operation(0.1), app.start_operation(0.1)}
    listed = app.get("/operations").json()["operations"]
    assert {op["id"] for op in listed} == ids
    assert all({"state", "started_at", "finished_at"} <= set(op) for op in listed)


# -- fencing ---------------------------------------------------------------------


def test_drain_fences_new_work_until_the_lease_expires(app: AppProcess) -> None:
    assert app.drain(ttl=1).status_code == 200
    refused = app.post("/start", json={"seconds": 0.1})
    assert refused.status_code == 503
    assert refused.json()["error"] == "draining"
    assert refused.headers["Retry-After"]
    eventually(lambda: not app.status()["draining"], timeout=5, what="lease expiry")
    assert app.post("/start", json={"seconds": 0.1}).status_code == 202


def test_drain_renewal_extends_the_lease(app: AppProcess) -> None:
    first = app.drain(ttl=2).json()["lease"]["expires_in"]
    eventually(lambda: app.status()["lease"]["expires_in"] < first - 0.3)
    renewed = app.drain(ttl=2).json()["lease"]["expires_in"]
    assert renewed > app.status()["lease"]["expires_in"] - 0.01
    assert renewed > first - 0.3


def test_undrain_accepts_work_at_once(app: AppProcess) -> None:
    app.drain(ttl=600)
    response = app.delete("/drain", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.json()["draining"] is False
    assert app.post("/start", json={"seconds": 0.1}).status_code == 202


def test_drain_does_not_stop_running_work(app: AppProcess) -> None:
    op_id = app.start_operation(0.5)
    status = app.drain(ttl=60).json()
    assert (status["draining"], status["active"], status["upgradeable"]) == (True, 1, False)
    assert app.get("/upgradeable", params={"wait": 10}).status_code == 200
    assert app.operation(op_id)["state"] == "succeeded"


def test_drain_is_disabled_without_a_configured_token(make_app: AppFactory) -> None:
    app = make_app(UPGRADE_GATE_TOKEN="")
    response = app.drain(ttl=60, token="")
    assert response.status_code == 403
    assert "UPGRADE_GATE_TOKEN" in response.json()["error"]
    assert app.post("/start", json={"seconds": 0.1}).status_code == 202


def test_the_lease_is_optional(app: AppProcess) -> None:
    response = app.post("/drain", json={}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.json()["lease"]["expires_in"] == pytest.approx(30, abs=1)


# -- the rest of the surface -------------------------------------------------------


def test_health_readiness_and_version(make_app: AppFactory) -> None:
    app = make_app(APP_VERSION="v7")
    assert app.get("/healthz").json() == {"status": "ok"}
    assert app.get("/readyz").status_code == 200
    assert app.get("/version").json() == {"version": "v7"}


def test_metrics_follow_the_gate(app: AppProcess) -> None:
    def metric(name: str) -> float:
        for line in app.get("/metrics").text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"{name} not exported")

    app.start_operation(0.3)
    assert metric("upgrade_gate_active_operations") == 1
    app.drain(ttl=60)
    assert metric("upgrade_gate_draining") == 1
    app.post("/start")
    assert metric('upgrade_gate_operations_total{outcome="refused"}') == 1
    app.get("/upgradeable", params={"wait": 10})
    assert metric('upgrade_gate_operations_total{outcome="succeeded"}') == 1
    assert metric("upgrade_gate_active_operations") == 0


def test_bad_configuration_stops_the_server_with_a_clear_message(app_server: str) -> None:
    assert_refused_at_start(
        {"OPERATION_MAX_SECONDS": "soon"}, "OPERATION_MAX_SECONDS must be a number", app_server
    )


def test_the_session_survives_connection_reuse(app: AppProcess) -> None:
    # Keep-alive connections are what the hook uses; a long-poll must not
    # poison the connection for the next request.
    app.start_operation(0.2)
    for _ in range(3):
        assert app.get("/upgradeable", params={"wait": 5}).status_code == 200
    assert isinstance(app.session, requests.Session)
