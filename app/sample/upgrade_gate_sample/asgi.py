"""The sample app on Starlette: the Flask app's endpoints, served by uvicorn.

The same operations (``POST /start``, ``/operations``), probes and control
endpoints as :mod:`upgrade_gate_sample.factory`, with the same answers, on
:mod:`upgrade_gate.asgi`. ``python -m upgrade_gate_sample serve --server
uvicorn`` runs it (:mod:`upgrade_gate_sample.asgi_server`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from upgrade_gate import Gate
from upgrade_gate.asgi import (
    MISSING,
    LongPollLimits,
    UpgradeGate,
    as_response,
    current_gate,
    json_error,
    json_object_body,
    number_in_range,
)
from upgrade_gate.contract import Reply
from upgrade_gate.metrics import registry_for
from upgrade_gate_sample.settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, gate: Gate | None = None) -> Starlette:
    """The app: its operations, and the gate's control endpoints."""
    settings = settings or Settings.from_env()
    app = _control_app(settings, gate or Gate(), settings.long_polls)
    app.router.routes.extend(
        [
            Route("/start", _start, methods=["POST"]),
            Route("/operations", _operations, methods=["GET", "POST"]),
            Route("/operations/{op_id}", _operation, methods=["GET"]),
        ]
    )
    return app


def create_management_app(settings: Settings, gate: Gate, threads: int) -> Starlette:
    """The control endpoints alone, for a listener of their own; long-polls there wait in
    ``threads`` threads of their own. Every other path is a 404."""
    return _control_app(settings, gate, LongPollLimits.for_threads(threads))


def _json(body: dict[str, Any], status: int = 200) -> Response:
    return as_response(Reply(status, body))


def _control_app(settings: Settings, gate: Gate, long_polls: LongPollLimits) -> Starlette:
    metrics = registry_for(gate)

    async def healthz(request: Request) -> Response:
        return _json({"status": "ok"})

    async def readyz(request: Request) -> Response:
        # A pod that is shutting down stops receiving Service traffic; one
        # that is draining stays ready so that status queries still reach it.
        if current_gate(request).status().shutting_down:
            return json_error(503, "shutting_down")
        return _json({"status": "ready"})

    async def version(request: Request) -> Response:
        return _json({"version": settings.version})

    async def prometheus(request: Request) -> Response:
        return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        response = json_error(exc.status_code, exc.detail)
        if exc.status_code == 405 and exc.headers and "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("unhandled error", exc_info=exc)
        return json_error(500, "internal_error", message="see the application log")

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/version", version, methods=["GET"]),
            Route("/metrics", prometheus, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error, Exception: unexpected},
    )
    app.state.settings = settings
    UpgradeGate(gate, token=settings.token, app=app, long_polls=long_polls)
    return app


def _work(seconds: float) -> None:
    time.sleep(seconds)  # stands in for real work that must not be cut off


async def _start(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    body = await json_object_body(request)
    seconds = number_in_range(
        body.get("seconds", MISSING),
        "seconds",
        maximum=settings.max_seconds,
        default=settings.default_seconds,
    )
    gate = current_gate(request)
    op = gate.run_in_background("sleep", lambda _op: _work(seconds), seconds=seconds)
    response = _json(
        {"id": op.id, "seconds": seconds, "started_at": op.to_dict()["started_at"]}, 202
    )
    response.headers["Location"] = f"/operations/{op.id}"
    return response


async def _operations(request: Request) -> Response:
    if request.method == "POST":
        return await _start(request)
    return _json({"operations": [op.to_dict() for op in current_gate(request).operations()]})


async def _operation(request: Request) -> Response:
    op_id = request.path_params["op_id"]
    op = current_gate(request).get(op_id)
    if op is None:
        return json_error(404, "not_found", message=f"no operation with id {op_id!r}")
    return _json(op.to_dict())
