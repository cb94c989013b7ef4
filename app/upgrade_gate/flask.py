"""The gate's HTTP contract, as a Flask extension.

The contract is read across versions: the hook of release N+1 talks to the app
of release N. Fields are only ever added; ``contract`` names the version.
Clients should read ``upgradeable`` (``isUpgradeable`` is kept for the original
demo's clients) and may rely on the status code: 200 upgradeable, 503 busy,
429 when too many long-polls already wait (retry after ``Retry-After``).

``GET /upgradeable?wait=N`` answers when nothing runs (at most N seconds);
``GET /upgradeable?watch=N`` is its mirror for a hook that found the pod ready:
held while the pod is fenced and idle, its head sent at once to say so, its
body (with ``"watched": true``) when that ends (at most N seconds).
"""

from __future__ import annotations

import hmac
import json
import math
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from upgrade_gate.core import CONTRACT, Gate, Status, WorkRefusedError

MAX_WAIT_SECONDS = 60.0
MAX_LEASE_SECONDS = 3600.0
DEFAULT_LEASE_SECONDS = 30.0
RETRY_AFTER_SECONDS = 2
LONG_POLL_RETRY_AFTER_SECONDS = 1
EXTENSION_KEY = "upgrade_gate"
WATCH_HEADER = "Upgrade-Gate-Watch"
INSTANCE_HEADER = "Upgrade-Gate-Instance"


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
    try:
        raw = request.get_data(cache=True)
    except HTTPException:  # too large (413): already a clear answer
        raise
    except Exception as exc:  # the server could not read it (malformed chunks, say)
        raise InputError(f"body could not be read: {exc}") from None
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except RecursionError:
        raise InputError("body is nested too deeply") from None
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
        raise InputError(f"{name} must be a number, got {_brief(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{name} must be a finite number")
    # Compared before any float(): an integer of 400 digits has no float.
    if value <= 0:
        raise InputError(f"{name} must be positive, got {_brief(value)}")
    if value > maximum:
        raise InputError(f"{name} must be at most {maximum:g}, got {_brief(value)}")
    return float(value)


def _brief(value: object, limit: int = 40) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def status_body(status: Status) -> dict[str, Any]:
    body: dict[str, Any] = {
        "contract": CONTRACT,
        "upgradeable": status.upgradeable,
        "isUpgradeable": status.upgradeable,
        "active": status.active,
        "running": list(status.running),
        "draining": status.draining,
        "shutting_down": status.shutting_down,
        "instance": status.instance,
    }
    if status.draining:
        body["lease"] = {"holder": status.lease_holder, "expires_in": status.lease_expires_in}
    return body


_REFUSALS = {
    "draining": (
        "draining",
        "an upgrade is waiting for this pod: new work is refused until it proceeds",
    ),
    "shutting down": ("shutting_down", "this pod is shutting down: send new work to another pod"),
    "cannot start": (
        "cannot_start",
        "this pod cannot start the work now ({detail}): retry later or on another pod",
    ),
}


def status_fields(status: Status) -> dict[str, Any]:
    """The status fields that go along with an error (``contract`` marks answers only)."""
    return {k: v for k, v in status_body(status).items() if k != "contract"}


def refused_response(exc: WorkRefusedError) -> Response:
    error, message = _REFUSALS.get(exc.reason, _REFUSALS["shutting down"])
    response = json_error(
        503, error, message=message.format(detail=exc.detail), **status_fields(exc.status)
    )
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def too_many_long_polls(status: Status) -> Response:
    response = json_error(
        429,
        "too_many_long_polls",
        message=(
            "too many long-polls already wait on this pod: retry after "
            f"{LONG_POLL_RETRY_AFTER_SECONDS}s, or ask without ?wait"
        ),
        **status_fields(status),
    )
    response.headers["Retry-After"] = str(LONG_POLL_RETRY_AFTER_SECONDS)
    response.headers["Cache-Control"] = "no-store"
    return response


def _status_response(status: Status, watched: bool = False) -> Response:
    body = status_body(status)
    if watched:
        body["watched"] = True  # this app watches; an older one ignores ?watch
    response = jsonify(body)
    if not status.upgradeable:
        response.status_code = 503
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response.headers["Cache-Control"] = "no-store"
    return response


class _HeldWatch:
    """The body of a held ``?watch``: a space at once, the status when the watch ends.

    An iterable with ``close`` rather than a generator, so that the long-poll
    slot is given back even when the server never starts iterating.
    """

    def __init__(self, gate: Gate, seconds: float, slot: ExitStack) -> None:
        self.gate, self.seconds, self.slot = gate, seconds, slot

    def __iter__(self) -> Iterator[bytes]:
        yield b" "  # the head and this go out now: the watch holds
        status = self.gate.watch_fence(self.seconds)
        self.slot.close()
        yield json.dumps({**status_body(status), "watched": True}).encode()

    def close(self) -> None:
        self.slot.close()


def _would_wait(status: Status, watched: bool) -> bool:
    """Whether a long-poll would block now (``watch``: while fenced and idle)."""
    if status.shutting_down:
        return False
    if watched:
        return status.draining and status.upgradeable
    return not status.upgradeable


@dataclass(frozen=True)
class LongPollLimits:
    """How many long-polls may wait at once.

    Each waiting long-poll holds one of the server's request threads, so the
    sum must stay below their number: the rest answer probes and ``/drain``.
    ``anonymous`` long-polls need no token; ``authorized`` ones carry the
    drain token (the hook's) and have their own allowance on top, so that no
    crowd of anonymous ones keeps the hook out.
    """

    anonymous: int = 16
    authorized: int = 4

    @classmethod
    def for_threads(cls, threads: int, anonymous: int | None = None) -> LongPollLimits:
        """Half the threads for anonymous long-polls, an eighth (at least one)
        for the hook's, and at least a quarter (at least one) always free.

        Raises ``ValueError`` if ``anonymous`` (instead of half) leaves less free.
        """
        if threads < 2:
            raise ValueError(f"must be at least 2 (one stays free for probes), got {threads}")
        authorized = max(1, threads // 8)
        most = threads - authorized - max(1, threads // 4)
        if anonymous is None:
            anonymous = max(0, min(threads // 2, most))
        elif not 0 <= anonymous <= most:
            raise ValueError(
                f"must be at most {most} with {threads} threads ({authorized} more are kept "
                f"for the hook's long-polls, {threads - authorized - most} for probes and /drain)"
            )
        return cls(anonymous=anonymous, authorized=authorized)


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
        self.gate = gate
        # Space around a token is not the token's (a Secret made with --from-file keeps the
        # file's last newline), as for upgrade_gate.config.read_token and the hook.
        self.token = (token or "").strip() or None
        self.long_polls = long_polls or LongPollLimits()
        self._anonymous_slots = threading.BoundedSemaphore(self.long_polls.anonymous)
        self._authorized_slots = threading.BoundedSemaphore(self.long_polls.authorized)
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
        wait_arg, watch_arg = request.args.get("wait"), request.args.get("watch")
        watched = watch_arg is not None
        if wait_arg is not None and watched:
            raise InputError(
                "ask with wait (until idle) or watch (while fenced and idle), not both"
            )
        if wait_arg is None and watch_arg is None:
            status = self.gate.status()
        else:
            name, text = ("watch", watch_arg) if watched else ("wait", wait_arg)
            try:
                seconds = float(str(text))
            except ValueError:
                raise InputError(f"{name} must be a number of seconds, got {text!r}") from None
            seconds = number_in_range(seconds, name, maximum=MAX_WAIT_SECONDS)
            if watched:
                return self._watch(seconds)
            with self._long_poll_slot() as admitted:
                if admitted:
                    status = self.gate.wait_upgradeable(seconds)
                else:
                    # No slot: an answer that needs no waiting is still given.
                    status = self.gate.status()
                    if _would_wait(status, watched=False):
                        return too_many_long_polls(status)
        return _status_response(status)

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
        admitted = slot.enter_context(self._long_poll_slot())
        status = self.gate.status()
        if not _would_wait(status, watched=True):
            slot.close()
            return _status_response(status, watched=True)
        if not admitted:
            slot.close()
            return too_many_long_polls(status)
        response = Response(
            _HeldWatch(self.gate, seconds, slot), status=200, mimetype="application/json"
        )
        response.headers[WATCH_HEADER] = "holding"
        response.headers[INSTANCE_HEADER] = status.instance
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

    @contextmanager
    def _long_poll_slot(self) -> Iterator[bool]:
        """Hold a long-poll slot while the block runs; ``False`` if none is free.

        A request with the token tries its own allowance first, then the
        anonymous one.
        """
        pools = [self._anonymous_slots]
        if self._token_matches():
            pools.insert(0, self._authorized_slots)
        for pool in pools:
            if pool.acquire(blocking=False):
                try:
                    yield True
                finally:
                    pool.release()
                return
        yield False

    def _token_matches(self) -> bool:
        if self.token is None:
            return False
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), self.token.encode()
        )

    def _authorize(self) -> Response | None:
        if self.token is None:
            return json_error(
                403,
                "drain is disabled: no token is configured (set UPGRADE_GATE_TOKEN)",
            )
        if not self._token_matches():
            response = json_error(401, "a valid 'Authorization: Bearer <token>' is required")
            response.headers["WWW-Authenticate"] = 'Bearer realm="upgrade-gate"'
            return response
        return None


def current_gate() -> Gate:
    """The gate of the Flask app handling this request."""
    ext: UpgradeGate = current_app.extensions[EXTENSION_KEY]
    return ext.gate
