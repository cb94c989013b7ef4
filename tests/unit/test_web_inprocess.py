"""The HTTP contract (``upgrade-gate/v1``) in process, through Flask's test client.

No gunicorn, no sockets: the gate's operations do not run on threads of their
own but when a test runs them (:class:`HeldThreads`), so busy and idle are the
test's to decide. The real-server side of the same contract is test_http_contract.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from e2e.cluster.wait import eventually
from upgrade_gate import CONTRACT, Gate
from upgrade_gate.flask import LongPollLimits, UpgradeGate
from upgrade_gate_sample import create_app
from upgrade_gate_sample.settings import Settings

TOKEN = "in-process-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
STATUS_FIELDS = {"upgradeable", "isUpgradeable", "active", "running", "draining"}
STATUS_FIELDS |= {"shutting_down", "instance"}


class HeldThreads:
    """A ``thread_factory`` whose threads run only when :meth:`finish_all` runs them, here."""

    def __init__(self) -> None:
        self.targets: list[Callable[[], object]] = []

    def __call__(self, target: Callable[[], object], **_: object) -> HeldThreads:
        self.targets.append(target)
        return self  # the "thread": its start() does nothing

    def start(self) -> None:
        pass

    def finish_all(self) -> None:
        while self.targets:
            self.targets.pop(0)()


def settings(token: str | None = TOKEN, long_polls: LongPollLimits | None = None) -> Settings:
    return Settings(
        version="v-test",
        token=token,
        default_seconds=0.002,
        max_seconds=5.0,
        shutdown_timeout=5.0,
        long_polls=long_polls or LongPollLimits(),
    )


@pytest.fixture
def threads() -> HeldThreads:
    return HeldThreads()


@pytest.fixture
def gate(threads: HeldThreads) -> Iterator[Gate]:
    gate = Gate(thread_factory=threads)
    yield gate
    gate.undrain()  # cancels a lease's timer thread
    threads.finish_all()


def client_of(app: Flask) -> FlaskClient:
    app.testing = True
    return app.test_client()


@pytest.fixture
def client(gate: Gate) -> FlaskClient:
    return client_of(create_app(settings(), gate))


def start(client: FlaskClient, path: str = "/operations") -> str:
    response = client.post(path, json={"seconds": 0.001})
    assert response.status_code == 202, response.get_json()
    op_id: str = response.get_json()["id"]
    return op_id


def refusal(response: TestResponse, status: int, error: str) -> dict[str, Any]:
    """A 503/429 carries ``Retry-After``, a message and the status fields, but no ``contract``."""
    body: dict[str, Any] = response.get_json()
    assert (response.status_code, body["error"]) == (status, error), body
    assert int(response.headers["Retry-After"]) > 0
    assert body["message"]
    assert set(body) >= STATUS_FIELDS
    assert "contract" not in body
    return body


def in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()
    return thread, result


# -- probes and status ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/healthz", {"status": "ok"}),
        ("/readyz", {"status": "ready"}),
        ("/version", {"version": "v-test"}),
    ],
)
def test_probes_and_version_answer_200_json(client: FlaskClient, path: str, body: object) -> None:
    response = client.get(path)
    assert (response.status_code, response.get_json()) == (200, body)


def test_an_idle_pod_is_upgradeable_with_the_whole_status_body(
    client: FlaskClient, gate: Gate
) -> None:
    response = client.get("/upgradeable")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert "Retry-After" not in response.headers
    assert response.get_json() == {
        "contract": CONTRACT,
        "upgradeable": True,
        "isUpgradeable": True,
        "active": 0,
        "running": [],
        "draining": False,
        "shutting_down": False,
        "instance": gate.instance,
    }


def test_a_busy_pod_answers_503_with_retry_after_naming_its_operation(
    client: FlaskClient,
) -> None:
    op_id = start(client)
    response = client.get("/upgradeable")
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    body = response.get_json()
    assert (body["upgradeable"], body["isUpgradeable"], body["active"]) == (False, False, 1)
    assert body["running"] == [op_id]


# -- operations -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/start", "/operations"])
def test_starting_an_operation_answers_202_and_its_record_follows_it_to_the_end(
    client: FlaskClient, threads: HeldThreads, path: str
) -> None:
    response = client.post(path, json={"seconds": 0.001})
    assert response.status_code == 202
    body = response.get_json()
    assert set(body) == {"id", "seconds", "started_at"}
    assert response.headers["Location"] == f"/operations/{body['id']}"
    assert client.get(f"/operations/{body['id']}").get_json()["state"] == "running"
    threads.finish_all()
    record = client.get(f"/operations/{body['id']}").get_json()
    assert (record["state"], record["error"]) == ("succeeded", None)
    assert record["finished_at"] >= record["started_at"]
    assert client.get("/upgradeable").status_code == 200
    assert [op["id"] for op in client.get("/operations").get_json()["operations"]] == [body["id"]]


@pytest.mark.parametrize("body", [None, {}, {"seconds": 0.001, "colour": "red"}])
def test_a_missing_body_defaults_and_unknown_fields_are_ignored(
    client: FlaskClient, body: dict[str, object] | None
) -> None:
    response = client.post("/operations", json=body)
    assert response.status_code == 202
    assert response.get_json()["seconds"] == (0.002 if not body else 0.001)


# -- fencing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "DELETE"])
@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {TOKEN}", "Bearer"])
def test_drain_without_the_token_is_refused_with_a_json_401(
    client: FlaskClient, gate: Gate, method: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = client.open("/drain", method=method, json={"ttl": 60}, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization" in response.get_json()["error"]
    assert gate.status().draining is False


def test_drain_is_a_json_403_when_no_token_is_configured(gate: Gate) -> None:
    client = client_of(create_app(settings(token=None), gate))
    response = client.post("/drain", json={"ttl": 60}, headers=AUTH)
    assert response.status_code == 403
    assert "UPGRADE_GATE_TOKEN" in response.get_json()["error"]
    assert gate.status().draining is False


def test_drain_with_the_token_fences_new_work_with_a_503_draining(
    client: FlaskClient, gate: Gate
) -> None:
    drained = client.post("/drain", json={"ttl": 60, "holder": "hook-1"}, headers=AUTH)
    assert drained.status_code == 200
    body = drained.get_json()
    assert (body["contract"], body["draining"]) == (CONTRACT, True)
    assert body["lease"]["holder"] == "hook-1"
    assert 0 < body["lease"]["expires_in"] <= 60
    assert client.get("/readyz").status_code == 200  # a fenced pod stays ready
    body = refusal(client.post("/operations", json={"seconds": 0.001}), 503, "draining")
    assert (body["draining"], body["instance"]) == (True, gate.instance)
    assert client.get("/operations").get_json()["operations"] == []
    assert client.get("/upgradeable").status_code == 200  # fenced and idle is upgradeable

    lifted = client.delete("/drain", headers=AUTH)
    assert (lifted.status_code, lifted.get_json()["draining"]) == (200, False)
    assert "lease" not in lifted.get_json()
    start(client)


def test_the_fence_lifts_by_itself_when_the_lease_lapses(client: FlaskClient) -> None:
    assert client.post("/drain", json={"ttl": 0.05}, headers=AUTH).status_code == 200
    eventually(lambda: not client.get("/upgradeable").get_json()["draining"], what="lease lapse")
    start(client)


def test_a_fence_does_not_stop_running_work(client: FlaskClient, threads: HeldThreads) -> None:
    op_id = start(client)
    body = client.post("/drain", json={}, headers=AUTH).get_json()
    assert (body["draining"], body["upgradeable"], body["running"]) == (True, False, [op_id])
    assert body["lease"]["expires_in"] == pytest.approx(30, abs=1)  # the default lease
    threads.finish_all()
    assert client.get("/upgradeable").status_code == 200


def test_a_shutting_down_pod_is_unready_and_refuses_new_work_with_503_shutting_down(
    client: FlaskClient, gate: Gate
) -> None:
    start(client)
    gate.begin_shutdown()
    refusal(client.post("/start", json={"seconds": 0.001}), 503, "shutting_down")
    ready = client.get("/readyz")
    assert (ready.status_code, ready.get_json()) == (503, {"error": "shutting_down"})
    waited = client.get("/upgradeable?wait=5")  # busy but shutting down: at once
    assert (waited.status_code, waited.get_json()["shutting_down"]) == (503, True)


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "headers", "body", "complaint"),
    [
        ("/operations", {}, b'{"seconds": "ten"}', "seconds must be a number"),
        ("/operations", {}, b'{"seconds": 0}', "must be positive"),
        ("/operations", {}, b'{"seconds": 6}', "at most 5"),
        ("/operations", {}, b'{"seconds": NaN}', "finite"),
        ("/operations", {}, b"[1]", "JSON object"),
        ("/start", {}, b"{not json", "not valid JSON"),
        ("/start", {}, b"\xff\xfe\x00", "not valid JSON"),
        ("/drain", AUTH, b'{"ttl": "60"}', "ttl must be a number"),
        ("/drain", AUTH, b'{"ttl": 3601}', "at most 3600"),
        ("/drain", AUTH, b'{"holder": ""}', "holder must be a string"),
        ("/drain", AUTH, b'"ttl"', "JSON object"),
    ],
)
def test_bad_input_is_a_json_400_that_changes_nothing(
    client: FlaskClient, gate: Gate, path: str, headers: dict[str, str], body: bytes, complaint: str
) -> None:
    response = client.post(path, data=body, headers=headers, content_type="application/json")
    assert response.status_code == 400
    assert complaint in response.get_json()["error"]
    status = gate.status()
    assert (status.active, status.draining, gate.operations()) == (0, False, [])


BAD_WAITS = ["wait=0", "wait=-1", "wait=60.5", "wait=abc", "wait=", "wait=nan", "wait=inf"]


@pytest.mark.parametrize("query", [*BAD_WAITS, "watch=0", "watch=61", "wait=1&watch=1"])
def test_a_bad_wait_or_watch_is_a_json_400(client: FlaskClient, query: str) -> None:
    response = client.get(f"/upgradeable?{query}")
    assert response.status_code == 400
    assert response.get_json()["error"]


def test_a_body_over_a_mebibyte_is_a_json_413(client: FlaskClient, gate: Gate) -> None:
    response = client.post("/operations", data=b" " * (1024 * 1024 + 1))
    assert (response.status_code, gate.operations()) == (413, [])
    assert response.get_json()["error"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/nowhere", 404), ("GET", "/operations/nope", 404), ("PUT", "/drain", 405)],
)
def test_unknown_paths_operations_and_methods_are_json_errors(
    client: FlaskClient, method: str, path: str, status: int
) -> None:
    response = client.open(path, method=method)
    assert (response.status_code, response.mimetype) == (status, "application/json")
    assert response.get_json()["error"]


# -- long-polls: ?wait and ?watch -------------------------------------------------------------


def test_a_long_poll_answers_an_idle_pod_at_once_and_a_busy_one_with_503_after_wait(
    client: FlaskClient, gate: Gate
) -> None:
    assert client.get("/upgradeable?wait=60").status_code == 200  # would hang if it waited
    start(client)
    response = client.get("/upgradeable?wait=0.05")
    assert (response.status_code, response.get_json()["active"]) == (503, 1)
    assert gate.long_polls == 0


def test_a_long_poll_answers_when_the_last_operation_ends(
    client: FlaskClient, gate: Gate, threads: HeldThreads
) -> None:
    start(client)
    poll, answers = in_thread(lambda: client.get("/upgradeable?wait=30"))
    eventually(lambda: gate.long_polls == 1, what="the long-poll waits")
    threads.finish_all()
    poll.join(timeout=10)
    assert not poll.is_alive()
    (answer,) = answers
    assert (answer.status_code, answer.get_json()["active"]) == (200, 0)


@pytest.mark.parametrize(
    ("fenced", "busy", "status"), [(False, False, 200), (False, True, 503), (True, True, 503)]
)
def test_a_watch_that_would_not_hold_answers_at_once_with_watched(
    client: FlaskClient, fenced: bool, busy: bool, status: int
) -> None:
    if busy:
        start(client)
    if fenced:
        client.post("/drain", json={"ttl": 60}, headers=AUTH)
    response = client.get("/upgradeable?watch=60")
    assert (response.status_code, response.get_json()["watched"]) == (status, True)
    assert "Upgrade-Gate-Watch" not in response.headers


def test_a_watch_on_a_fenced_idle_pod_holds_until_the_fence_is_lifted(
    client: FlaskClient, gate: Gate
) -> None:
    client.post("/drain", json={"ttl": 60}, headers=AUTH)
    held = client.get("/upgradeable?watch=30")  # the head comes at once, the body later
    assert (held.status_code, held.headers["Upgrade-Gate-Watch"]) == (200, "holding")
    assert held.headers["Upgrade-Gate-Instance"] == gate.instance
    reader, bodies = in_thread(held.get_data)
    eventually(lambda: gate.long_polls == 1, what="the watch held")
    assert client.delete("/drain", headers=AUTH).status_code == 200
    reader.join(timeout=10)
    assert not reader.is_alive()
    answer = held.get_json()
    assert bodies[0].startswith(b" ")
    assert (answer["watched"], answer["draining"]) == (True, False)
    assert answer["instance"] == gate.instance


@pytest.mark.parametrize(("ttl", "watch", "draining"), [(0.5, 30, False), (60, 0.05, True)])
def test_a_watch_ends_when_the_lease_lapses_or_its_own_time_is_up(
    client: FlaskClient, ttl: float, watch: float, draining: bool
) -> None:
    client.post("/drain", json={"ttl": ttl}, headers=AUTH)
    held = client.get(f"/upgradeable?watch={watch}")
    assert held.headers["Upgrade-Gate-Watch"] == "holding"
    answer = held.get_json()  # reads the body: returns when the watch ends
    assert (held.status_code, answer["watched"], answer["draining"]) == (200, True, draining)


def test_over_the_long_poll_cap_a_busy_pod_answers_a_json_429_but_the_hook_has_room(
    gate: Gate,
) -> None:
    client = client_of(create_app(settings(long_polls=LongPollLimits(0, 1)), gate))
    assert client.get("/upgradeable?wait=60").status_code == 200  # idle: no need to wait
    start(client)
    refused = client.get("/upgradeable?wait=60")
    assert refusal(refused, 429, "too_many_long_polls")["active"] == 1
    assert (refused.headers["Retry-After"], refused.headers["Cache-Control"]) == ("1", "no-store")
    assert client.get("/upgradeable?wait=0.05", headers=AUTH).status_code == 503


def test_a_held_watch_that_is_never_read_gives_its_slot_back(gate: Gate) -> None:
    client = client_of(create_app(settings(long_polls=LongPollLimits(1, 1)), gate))
    client.post("/drain", json={"ttl": 60}, headers=AUTH)
    first = client.get("/upgradeable?watch=30")
    assert first.headers["Upgrade-Gate-Watch"] == "holding"
    assert client.get("/upgradeable?watch=30").status_code == 429  # the only slot is held
    first.close()  # the client went away before the body
    again = client.get("/upgradeable?watch=30")
    assert again.headers["Upgrade-Gate-Watch"] == "holding"
    again.close()


@pytest.mark.parametrize("given", [f"{TOKEN}\n", f"  {TOKEN}\r\n"])
def test_space_around_a_token_given_to_upgradegate_is_not_part_of_it(given: str) -> None:
    """A Secret made with ``--from-file`` keeps the file's last newline; an app that hands
    such a token to UpgradeGate as it read it must still let the hook fence it."""
    gate = Gate()
    flask_app = Flask(__name__)
    UpgradeGate(gate, token=given, app=flask_app)
    answer = flask_app.test_client().post("/drain", headers=AUTH)
    assert answer.status_code == 200, answer.get_json()
    assert gate.status().draining


def test_a_token_of_only_space_given_to_upgradegate_is_no_token() -> None:
    gate = Gate()
    flask_app = Flask(__name__)
    UpgradeGate(gate, token=" \n", app=flask_app)
    answer = flask_app.test_client().post("/drain", headers={"Authorization": "Bearer"})
    assert answer.status_code == 403, answer.get_json()
    assert not gate.status().draining
