"""Bad input: a 4xx JSON answer that says what is wrong, and nothing changes.

One server for the whole module: every test here must leave it exactly as it
found it (idle, unfenced, no operation ever started), which the autouse
fixture checks after each one. Under gunicorn and under uvicorn alike.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from e2e.loopback import TOKEN, AppProcess
from tests.unit.conftest import SERVERS


@pytest.fixture(scope="module", params=SERVERS)
def server(request: pytest.FixtureRequest) -> Iterator[AppProcess]:
    with AppProcess(server=request.param) as app:
        yield app


@pytest.fixture
def app(server: AppProcess, request: pytest.FixtureRequest) -> Iterator[AppProcess]:
    request.node.app_processes = [server]  # its log joins a failure report
    yield server
    status = server.status()
    assert (status["active"], status["draining"]) == (0, False), "a refusal changed the gate"
    assert server.get("/operations").json()["operations"] == [], "a refusal started work"


@pytest.mark.parametrize("wait", ["0", "-1", "60.5", "abc", "", "nan", "inf", "1e999"])
def test_bad_wait_is_a_400(app: AppProcess, wait: str) -> None:
    response = app.get("/upgradeable", params={"wait": wait})
    assert response.status_code == 400
    assert "wait" in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (b'{"seconds": "ten"}', "must be a number"),
        (b'{"seconds": true}', "must be a number"),
        (b'{"seconds": null}', "must be a number"),
        (b'{"seconds": 0}', "must be positive"),
        (b'{"seconds": -3}', "must be positive"),
        (b'{"seconds": 1e9}', "at most 3600"),
        (b'{"seconds": NaN}', "finite"),
        (b"[1, 2]", "JSON object"),
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_bad_operation_input_is_a_400_with_a_message(
    app: AppProcess, body: bytes, complaint: str
) -> None:
    response = app.post("/operations", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert complaint in response.json()["error"]


def test_unknown_operation_is_a_json_404(app: AppProcess) -> None:
    response = app.get("/operations/nope")
    assert response.status_code == 404
    assert "nope" in response.json()["message"]


def test_unknown_route_and_method_are_json(app: AppProcess) -> None:
    assert app.get("/nowhere").json()["error"]
    response = app.session.put(app.url + "/drain", timeout=5)
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    assert response.json()["error"]


@pytest.mark.parametrize("method", ["POST", "DELETE"])
@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong", f"Basic {TOKEN}", "Bearer", f"Bearer {TOKEN}x"]
)
def test_drain_needs_the_token(app: AppProcess, method: str, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = app.session.request(
        method, app.url + "/drain", json={"ttl": 60}, headers=headers, timeout=5
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("ttl", ['"x"', "0", "-1", "3601", "true", "Infinity", "NaN"])
def test_bad_lease_is_a_400(app: AppProcess, ttl: str) -> None:
    response = app.post(
        "/drain",
        data=f'{{"ttl": {ttl}}}',
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert "ttl" in response.json()["error"]


HUGE = "1" + "0" * 400  # an integer no float can hold


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (f'{{"seconds": {HUGE}}}', "at most 3600"),
        (f'{{"seconds": -{HUGE}}}', "must be positive"),
        ("[" * 100_000, "nested too deeply"),
        ('{"seconds": ' + "[" * 100_000, "nested too deeply"),
    ],
)
def test_numbers_too_big_for_a_float_and_deep_nesting_are_a_400(
    app: AppProcess, body: str, complaint: str
) -> None:
    response = app.post("/operations", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert complaint in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "complaint"),
    [(f'{{"ttl": {HUGE}}}', "at most 3600"), ('{"ttl": ' + "[" * 100_000, "nested too deeply")],
)
def test_a_lease_too_big_for_a_float_or_too_deep_is_a_400(
    app: AppProcess, body: str, complaint: str
) -> None:
    response = app.post(
        "/drain",
        data=body,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert complaint in response.json()["error"]


def test_a_body_over_the_size_limit_is_a_json_413(app: AppProcess) -> None:
    # Its own connection: the server stops reading the body and drops the
    # connection after the answer, which a reused one would only see later.
    response = requests.post(
        f"{app.url}/operations",
        data=b'{"seconds": 1, "pad": "' + b"x" * 2_000_000 + b'"}',
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 413
    assert response.json()["error"]
