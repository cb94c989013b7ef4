"""The sample's unit of work: an operation that takes a while.

``POST /start`` is the original demo's endpoint; ``POST /operations`` is the
same with a resource name. Both answer at once and run the work in the
background, so no request is held open for the length of the operation.
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, current_app, jsonify

from upgrade_gate import Operation
from upgrade_gate.flask import MISSING, current_gate, json_error, json_object_body, number_in_range
from upgrade_gate_sample.settings import Settings

bp = Blueprint("operations", __name__)


def _work(seconds: float) -> None:
    time.sleep(seconds)  # stands in for real work that must not be cut off


@bp.post("/start")
@bp.post("/operations")
def start() -> tuple[Response, int]:
    settings: Settings = current_app.config["SETTINGS"]
    body = json_object_body()
    seconds = number_in_range(
        body.get("seconds", MISSING),
        "seconds",
        maximum=settings.max_seconds,
        default=settings.default_seconds,
    )
    op = current_gate().run_in_background("sleep", lambda _op: _work(seconds), seconds=seconds)
    response = jsonify({"id": op.id, "seconds": seconds, "started_at": op.to_dict()["started_at"]})
    response.headers["Location"] = f"/operations/{op.id}"
    return response, 202


@bp.get("/operations")
def list_operations() -> Response:
    return jsonify({"operations": [op.to_dict() for op in current_gate().operations()]})


@bp.get("/operations/<op_id>")
def get_operation(op_id: str) -> Response:
    op: Operation | None = current_gate().get(op_id)
    if op is None:
        return json_error(404, "not_found", message=f"no operation with id {op_id!r}")
    return jsonify(op.to_dict())
