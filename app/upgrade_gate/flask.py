"""The gate's HTTP contract (``upgrade-gate/v1``) as a Flask extension.

``UpgradeGate(gate, token=..., app=app)`` serves ``GET /upgradeable`` and
``POST``/``DELETE /drain`` beside the app's own views, and answers a refused
unit of work (:class:`WorkRefusedError`) with the contract's 503. What each
answer says is :mod:`upgrade_gate.contract`'s, shared by every integration.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

try:
    from flask import Blueprint, Flask, Response, current_app, jsonify, request
    from werkzeug.exceptions import HTTPException
except ModuleNotFoundError as exc:
    raise ModuleNotFoundError(
        f"upgrade_gate.flask needs Flask ({exc}): pip install 'helm-upgrade-gate[flask]'"
    ) from exc

from upgrade_gate.contract import (
    MISSING,
    Ask,
    Contract,
    HeldWatch,
    InputError,
    LongPollLimits,
    Reply,
    json_object,
    number_in_range,
    refused_reply,
    status_reply,
    too_many_long_polls,
    watch_headers,
    would_wait,
)
from upgrade_gate.core import Gate, WorkRefusedError

__all__ = [
    "EXTENSION_KEY",
    "MISSING",
    "InputError",
    "LongPollLimits",
    "UpgradeGate",
    "current_gate",
    "json_error",
    "json_object_body",
    "number_in_range",
]

EXTENSION_KEY = "upgrade_gate"


def as_response(reply: Reply) -> Response:
    """A :class:`Reply` as Flask sends it."""
    response = jsonify(reply.body)
    response.status_code = reply.status
    response.headers.update(reply.headers)
    return response


def json_error(status: int, error: str, **extra: Any) -> Response:
    """A JSON error body: ``error`` says what is wrong, ``extra`` adds fields."""
    return as_response(Reply(status, {"error": error, **extra}))


def json_object_body() -> dict[str, Any]:
    """The request body as a JSON object; an empty body is an empty object."""
    return json_object(_raw_body())


class UpgradeGate:
    """Exposes a :class:`Gate` over HTTP: ``/upgradeable`` and ``/drain``.

    ``token`` protects ``/drain`` (space around it is not part of it); without
    one, fencing is disabled (403) so that nobody can block deployments
    anonymously. ``long_polls`` caps the long-polls waiting at once (see
    :class:`LongPollLimits`); set it below your server's request threads.
    """

    def __init__(
        self,
        gate: Gate,
        *,
        token: str | None,
        app: Flask | None = None,
        long_polls: LongPollLimits | None = None,
    ) -> None:
        self.contract = Contract(gate, token, long_polls)
        self.gate = gate
        self.token = self.contract.token
        self.long_polls = self.contract.long_polls
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        app.extensions[EXTENSION_KEY] = self
        app.register_blueprint(self._blueprint())
        app.register_error_handler(WorkRefusedError, lambda exc: as_response(refused_reply(exc)))
        app.register_error_handler(InputError, lambda exc: json_error(400, str(exc)))

    def _blueprint(self) -> Blueprint:
        bp = Blueprint("upgrade_gate", __name__)
        bp.add_url_rule("/upgradeable", view_func=self._upgradeable, methods=["GET"])
        bp.add_url_rule("/drain", view_func=self._drain, methods=["POST"])
        bp.add_url_rule("/drain", view_func=self._undrain, methods=["DELETE"])
        return bp

    def _upgradeable(self) -> Response:
        ask = Ask.from_query(request.args)
        if ask.seconds is None:
            return as_response(status_reply(self.gate.status()))
        if ask.watched:
            return self._watch(ask.seconds)
        authorization = request.headers.get("Authorization")
        with self.contract.long_poll_slot(authorization) as admitted:
            if admitted:
                status = self.gate.wait_upgradeable(ask.seconds)
            else:
                # No slot: an answer that needs no waiting is still given.
                status = self.gate.status()
                if would_wait(status, watched=False):
                    return as_response(too_many_long_polls(status))
        return as_response(status_reply(status))

    def _watch(self, seconds: float) -> Response:
        """``?watch``: held while the pod is fenced and idle, streamed.

        When the pod is fenced and idle as the request is read, the head goes
        out at once (``Upgrade-Gate-Watch: holding`` and the process's
        ``Upgrade-Gate-Instance``), then a space; the status body follows when
        that stops holding or ``seconds`` pass. The head is the hook's proof
        that this very process holds the watch: a request still queued for a
        process that is starting proves nothing. Otherwise the status is
        answered at once, without that head.
        """
        slot = ExitStack()
        admitted = slot.enter_context(
            self.contract.long_poll_slot(request.headers.get("Authorization"))
        )
        status = self.gate.status()
        if not would_wait(status, watched=True):
            slot.close()
            return as_response(status_reply(status, watched=True))
        if not admitted:
            slot.close()
            return as_response(too_many_long_polls(status))
        response = Response(
            HeldWatch(self.gate, seconds, slot), status=200, mimetype="application/json"
        )
        response.headers.update(watch_headers(status))
        return response

    def _drain(self) -> Response:
        authorization = request.headers.get("Authorization")
        if (denied := self.contract.denied(authorization)) is not None:
            return as_response(denied)
        return as_response(self.contract.drain(authorization, _raw_body()))

    def _undrain(self) -> Response:
        return as_response(
            self.contract.undrain(request.headers.get("Authorization"), request.args)
        )


def _raw_body() -> bytes:
    try:
        return request.get_data(cache=True)
    except HTTPException:  # too large (413): already a clear answer
        raise
    except Exception as exc:  # the server could not read it (malformed chunks, say)
        raise InputError(f"body could not be read: {exc}") from None


def current_gate() -> Gate:
    """The gate of the Flask app handling this request."""
    ext: UpgradeGate = current_app.extensions[EXTENSION_KEY]
    return ext.gate
