"""Application factory: one gate per app, every error answered as JSON."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.exceptions import HTTPException

from upgrade_gate import Gate
from upgrade_gate.flask import LongPollLimits, UpgradeGate, current_gate, json_error
from upgrade_gate.metrics import registry_for
from upgrade_gate_sample.operations import bp as operations_bp
from upgrade_gate_sample.settings import Settings

log = logging.getLogger(__name__)


MAX_BODY_BYTES = 1024 * 1024  # bodies here are a few dozen bytes of JSON; 1 MiB is ample


def create_app(settings: Settings | None = None, gate: Gate | None = None) -> Flask:
    """The app: its operations, and the gate's control endpoints."""
    settings = settings or Settings.from_env()
    app = _control_app(settings, gate or Gate(), settings.long_polls)
    app.register_blueprint(operations_bp)
    return app


def create_management_app(settings: Settings, gate: Gate, threads: int) -> Flask:
    """The control endpoints alone, for a listener of their own with ``threads`` threads:
    the probes, ``/upgradeable``, ``/drain``, ``/metrics`` and ``/version``; every other
    path is a 404."""
    return _control_app(settings, gate, LongPollLimits.for_threads(threads))


def _control_app(settings: Settings, gate: Gate, long_polls: LongPollLimits) -> Flask:
    app = Flask(__name__)
    app.config["SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]
    UpgradeGate(gate, token=settings.token, app=app, long_polls=long_polls)
    metrics = registry_for(gate)

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response:
        # A pod that is shutting down stops receiving Service traffic; one
        # that is draining stays ready so that status queries still reach it.
        if current_gate().status().shutting_down:
            return json_error(503, "shutting_down")
        return jsonify({"status": "ready"})

    @app.get("/version")
    def version() -> Response:
        return jsonify({"version": settings.version})

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(generate_latest(metrics), mimetype=CONTENT_TYPE_LATEST)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        response = json_error(code, exc.description or exc.name)
        if code == 405 and (allow := exc.get_headers()):
            response.headers.update({k: v for k, v in allow if k == "Allow"})
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return json_error(500, "internal_error", message="see the application log")

    return app
