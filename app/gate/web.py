"""The gate's HTTP contract, as a Flask extension.

The contract is read across versions: the hook of release N+1 talks to the app
of release N. Fields are only ever added; ``contract`` names the version.
Clients should read ``upgradeable`` (``isUpgradeable`` is kept for the original
demo's clients) and may rely on the status code: 200 upgradeable, 503 busy.
"""

from __future__ import annotations

import hmac
import json
import math
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from app.gate.core import Gate, Status, WorkRefusedError

CONTRACT = "upgrade-gate/v1"
MAX_WAIT_SECONDS = 60.0
MAX_LEASE_SECONDS = 3600.0
DEFAULT_LEASE_SECONDS = 30.0
RETRY_AFTER_SECONDS = 2
EXTENSION_KEY = "upgrade_gate"


MISSING: Any = object()  # a field absent from the body (``null`` is not absent)


class InputError(ValueError):
    """Client input that cannot be used; becomes a 400 with ``message``."""


def json_error(status: int, error: str, **extra: Any) -> Response:
    """A JSON error body: ``error`` says what is wrong, ``extra`` adds fields."""
    response = jsonify({"error": error, **extra})
    response.status_code = status
    return response


def json_object_body() -> dict[str, Any]:
    """The request body as a JSON object; an empty body is an empty object."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InputError(f"body must be a JSON object, got {type(body).__name__}")
    return body


def number_in_range(
    value: object, name: str, *, maximum: float, default: float | None = None
) -> float:
    """A finite number with 0 < value <= maximum, or :class:`InputError`.

    ``value`` is :data:`MISSING` when the client left the field out.
    """
    if value is MISSING and default is not None:
        return default
    # bool is an int in Python, but `true` is not a duration.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{name} must be a number, got {json.dumps(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise InputError(f"{name} must be a finite number")
    if number <= 0:
        raise InputError(f"{name} must be positive, got {value}")
    if number > maximum:
        raise InputError(f"{name} must be at most {maximum:g}, got {value}")
    return number


def status_body(status: Status) -> dict[str, Any]:
    body: dict[str, Any] = {
        "contract": CONTRACT,
        "upgradeable": status.upgradeable,
        "isUpgradeable": status.upgradeable,
        "active": status.active,
        "running": list(status.running),
        "draining": status.draining,
        "shutting_down": status.shutting_down,
    }
    if status.draining:
        body["lease"] = {"holder": status.lease_holder, "expires_in": status.lease_expires_in}
    return body


def refused_response(exc: WorkRefusedError) -> Response:
    response = json_error(
        503,
        exc.reason if exc.reason == "draining" else "shutting_down",
        message=(
            "an upgrade is waiting for this pod: new work is refused until it proceeds"
            if exc.reason == "draining"
            else "this pod is shutting down: send new work to another pod"
        ),
        **{k: v for k, v in status_body(exc.status).items() if k != "contract"},
    )
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class UpgradeGate:
    """Exposes a :class:`Gate` over HTTP: ``/upgradeable`` and ``/drain``.

    ``token`` protects ``/drain``; without one, fencing is disabled (403) so
    that nobody can block deployments anonymously.
    """

    def __init__(self, gate: Gate, *, token: str | None, app: Flask | None = None) -> None:
        self.gate = gate
        self.token = token or None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        app.extensions[EXTENSION_KEY] = self
        app.register_blueprint(self._blueprint())
        app.register_error_handler(WorkRefusedError, refused_response)
        app.register_error_handler(InputError, lambda exc: json_error(400, str(exc)))

    def _blueprint(self) -> Blueprint:
        bp = Blueprint("upgrade_gate", __name__)
        bp.add_url_rule("/upgradeable", view_func=self._upgradeable, methods=["GET"])
        bp.add_url_rule("/drain", view_func=self._drain, methods=["POST"])
        bp.add_url_rule("/drain", view_func=self._undrain, methods=["DELETE"])
        return bp

    def _upgradeable(self) -> Response:
        wait_arg = request.args.get("wait")
        if wait_arg is None:
            status = self.gate.status()
        else:
            try:
                wait = float(wait_arg)
            except ValueError:
                raise InputError(f"wait must be a number of seconds, got {wait_arg!r}") from None
            status = self.gate.wait_upgradeable(
                number_in_range(wait, "wait", maximum=MAX_WAIT_SECONDS)
            )
        response = jsonify(status_body(status))
        if not status.upgradeable:
            response.status_code = 503
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        response.headers["Cache-Control"] = "no-store"
        return response

    def _drain(self) -> Response:
        if (denied := self._authorize()) is not None:
            return denied
        body = json_object_body()
        ttl = number_in_range(
            body.get("ttl", MISSING),
            "ttl",
            maximum=MAX_LEASE_SECONDS,
            default=DEFAULT_LEASE_SECONDS,
        )
        holder = body.get("holder", "anonymous")
        if not isinstance(holder, str) or not 0 < len(holder) <= 253:
            raise InputError("holder must be a string of 1 to 253 characters")
        return jsonify(status_body(self.gate.drain(ttl, holder)))

    def _undrain(self) -> Response:
        if (denied := self._authorize()) is not None:
            return denied
        holder = request.args.get("holder", "anonymous")[:253]
        return jsonify(status_body(self.gate.undrain(holder)))

    def _authorize(self) -> Response | None:
        if self.token is None:
            return json_error(
                403,
                "drain is disabled: no token is configured (set UPGRADE_GATE_TOKEN)",
            )
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), self.token.encode()
        ):
            response = json_error(401, "a valid 'Authorization: Bearer <token>' is required")
            response.headers["WWW-Authenticate"] = 'Bearer realm="upgrade-gate"'
            return response
        return None


def current_gate() -> Gate:
    """The gate of the Flask app handling this request."""
    ext: UpgradeGate = current_app.extensions[EXTENSION_KEY]
    return ext.gate
