"""No input, however odd, makes the app answer 5xx (hypothesis, real server)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from e2e.loopback import TOKEN, AppProcess

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(
        st.sampled_from(["seconds", "ttl", "holder", "x"]), json_values, max_size=3
    ).map(lambda v: json.dumps(v).encode()),
)
texts = st.text(max_size=30)
common = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def server() -> Iterator[AppProcess]:
    # Tiny operations, so that accepted examples finish at once and
    # long-polls never hold.
    with AppProcess({"OPERATION_MAX_SECONDS": "0.01", "OPERATION_DEFAULT_SECONDS": "0.01"}) as app:
        yield app


def _no_5xx(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.headers.get("Content-Type") != "application/json":
        # Only gunicorn itself answers otherwise: a malformed HTTP message
        # (a control character in a header) never reaches the app.
        assert response.status_code == 400
        assert response.headers["Content-Type"] == "text/html"
        assert "Bad Request" in response.text
        return
    assert isinstance(response.json(), dict)


@common
@given(body=bodies, path=st.sampled_from(["/start", "/operations"]))
def test_operation_bodies(server: AppProcess, body: bytes, path: str) -> None:
    _no_5xx(server.post(path, data=body, headers={"Content-Type": "application/json"}))


@common
@given(body=bodies, authorized=st.booleans())
def test_drain_bodies(server: AppProcess, body: bytes, authorized: bool) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"} if authorized else {}
    _no_5xx(server.post("/drain", data=body, headers=headers))
    server.delete("/drain", headers={"Authorization": f"Bearer {TOKEN}"})


@common
@given(authorization=texts)
def test_authorization_headers(server: AppProcess, authorization: str) -> None:
    try:
        header = authorization.encode("latin-1")
    except UnicodeEncodeError:
        header = authorization.encode("utf-8")
    try:
        response = server.delete("/drain", headers={"Authorization": header})
    except requests.exceptions.InvalidHeader:
        assume(False)  # not a header a client can send
    _no_5xx(response)


@common
@given(wait=texts, extra=st.dictionaries(texts, texts, max_size=3))
def test_upgradeable_query_strings(server: AppProcess, wait: str, extra: dict[str, str]) -> None:
    _no_5xx(server.get("/upgradeable", params={**extra, "wait": wait}, timeout=70))


@common
@given(op_id=st.text(min_size=1, max_size=40).filter(lambda s: "/" not in s and s not in ".."))
def test_operation_ids(server: AppProcess, op_id: str) -> None:
    _no_5xx(server.get(f"/operations/{op_id}"))
