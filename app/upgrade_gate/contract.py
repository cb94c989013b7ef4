"""The gate's HTTP contract (``upgrade-gate/v1``), without a web framework.

What each answer says, which input is refused and why, how many long-polls may
wait: every integration (:mod:`upgrade_gate.flask`, :mod:`upgrade_gate.asgi`,
:mod:`upgrade_gate.wsgi`) serves these same answers, so that the hook reads any
of them alike. An integration only reads the request and writes the
:class:`Reply`.

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
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from upgrade_gate.core import CONTRACT, Gate, Status, WorkRefusedError

MAX_WAIT_SECONDS = 60.0
MAX_LEASE_SECONDS = 3600.0
DEFAULT_LEASE_SECONDS = 30.0
RETRY_AFTER_SECONDS = 2
LONG_POLL_RETRY_AFTER_SECONDS = 1
WATCH_HEADER = "Upgrade-Gate-Watch"
INSTANCE_HEADER = "Upgrade-Gate-Instance"
MAX_HOLDER_LENGTH = 253

MISSING: Any = object()  # a field absent from the body (``null`` is not absent)


class InputError(ValueError):
    """Client input that cannot be used; becomes a 400 with ``message``."""


@dataclass(frozen=True)
class Reply:
    """One answer of the contract: what an integration writes back as it is."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        """The body as every integration sends it: compact JSON and a newline, the
        fields in their order (what Flask's ``jsonify`` sends, keys unsorted)."""
        return json.dumps(self.body, separators=(",", ":")).encode() + b"\n"

    def header_list(self) -> list[tuple[str, str]]:
        """The headers with the body's ``Content-Type`` first."""
        return [("Content-Type", "application/json"), *self.headers.items()]


def error_reply(status: int, error: str, **extra: Any) -> Reply:
    """A JSON error body: ``error`` says what is wrong, ``extra`` adds fields."""
    return Reply(status, {"error": error, **extra})


def json_object(raw: bytes) -> dict[str, Any]:
    """A request body as a JSON object; an empty body is an empty object."""
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


def refused_reply(exc: WorkRefusedError) -> Reply:
    """Work the gate refused: a 503 that says why, and when to ask again."""
    error, message = _REFUSALS.get(exc.reason, _REFUSALS["shutting down"])
    body = {"error": error, "message": message.format(detail=exc.detail)}
    return Reply(
        503, {**body, **status_fields(exc.status)}, {"Retry-After": str(RETRY_AFTER_SECONDS)}
    )


def too_many_long_polls(status: Status) -> Reply:
    message = (
        "too many long-polls already wait on this pod: retry after "
        f"{LONG_POLL_RETRY_AFTER_SECONDS}s, or ask without ?wait"
    )
    return Reply(
        429,
        {"error": "too_many_long_polls", "message": message, **status_fields(status)},
        {"Retry-After": str(LONG_POLL_RETRY_AFTER_SECONDS), "Cache-Control": "no-store"},
    )


def status_reply(status: Status, watched: bool = False) -> Reply:
    """``GET /upgradeable``'s answer: 200 upgradeable, 503 busy."""
    body = status_body(status)
    if watched:
        body["watched"] = True  # this app watches; an older one ignores ?watch
    headers = {"Cache-Control": "no-store"}
    if not status.upgradeable:
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return Reply(200 if status.upgradeable else 503, body, headers)


def watch_end(status: Status) -> bytes:
    """The end of a held ``?watch``'s body, after the space sent with its head."""
    return json.dumps({**status_body(status), "watched": True}).encode()


def watch_headers(status: Status) -> dict[str, str]:
    """The head of a held ``?watch``: proof that this very process holds it."""
    return {
        WATCH_HEADER: "holding",
        INSTANCE_HEADER: status.instance,
        "Cache-Control": "no-store",
    }


def would_wait(status: Status, watched: bool) -> bool:
    """Whether a long-poll would block now (``watch``: while fenced and idle)."""
    if status.shutting_down:
        return False
    if watched:
        return status.draining and status.upgradeable
    return not status.upgradeable


@dataclass(frozen=True)
class Ask:
    """What ``GET /upgradeable`` asks: the status now, or a long-poll of ``seconds``."""

    seconds: float | None = None
    watched: bool = False

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> Ask:
        """``?wait=N`` or ``?watch=N`` (not both), N seconds up to a minute."""
        wait_arg, watch_arg = query.get("wait"), query.get("watch")
        if wait_arg is not None and watch_arg is not None:
            raise InputError(
                "ask with wait (until idle) or watch (while fenced and idle), not both"
            )
        if wait_arg is None and watch_arg is None:
            return cls()
        name, text = ("watch", watch_arg) if watch_arg is not None else ("wait", wait_arg)
        try:
            seconds = float(str(text))
        except ValueError:
            raise InputError(f"{name} must be a number of seconds, got {text!r}") from None
        return cls(number_in_range(seconds, name, maximum=MAX_WAIT_SECONDS), name == "watch")


@dataclass(frozen=True)
class Fence:
    """What ``POST /drain`` asks: a lease of ``ttl`` seconds for ``holder``."""

    ttl: float
    holder: str

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Fence:
        ttl = number_in_range(
            body.get("ttl", MISSING),
            "ttl",
            maximum=MAX_LEASE_SECONDS,
            default=DEFAULT_LEASE_SECONDS,
        )
        holder = body.get("holder", "anonymous")
        if not isinstance(holder, str) or not 0 < len(holder) <= MAX_HOLDER_LENGTH:
            raise InputError(f"holder must be a string of 1 to {MAX_HOLDER_LENGTH} characters")
        return cls(ttl, holder)


def lifting_holder(query: Mapping[str, str]) -> str:
    """Who ``DELETE /drain?holder=`` lifts the fence for."""
    return query.get("holder", "anonymous")[:MAX_HOLDER_LENGTH]


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


class Contract:
    """A :class:`Gate` as the contract serves it: the token, the long-poll slots.

    ``token`` protects ``/drain`` (space around it is not part of it); without
    one, fencing is disabled (403) so that nobody can block deployments
    anonymously. ``long_polls`` caps the long-polls waiting at once.
    """

    def __init__(self, gate: Gate, token: str | None, long_polls: LongPollLimits | None) -> None:
        self.gate = gate
        # Space around a token is not the token's (a Secret made with --from-file keeps the
        # file's last newline), as for upgrade_gate.config.read_token and the hook.
        self.token = (token or "").strip() or None
        self.long_polls = long_polls or LongPollLimits()
        self._anonymous_slots = threading.BoundedSemaphore(self.long_polls.anonymous)
        self._authorized_slots = threading.BoundedSemaphore(self.long_polls.authorized)

    def token_matches(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header carries the drain token."""
        if self.token is None:
            return False
        scheme, _, given = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), self.token.encode()
        )

    def denied(self, authorization: str | None) -> Reply | None:
        """Why ``/drain`` is refused to this ``Authorization`` header, if it is."""
        if self.token is None:
            return error_reply(
                403, "drain is disabled: no token is configured (set UPGRADE_GATE_TOKEN)"
            )
        if not self.token_matches(authorization):
            reply = error_reply(401, "a valid 'Authorization: Bearer <token>' is required")
            reply.headers["WWW-Authenticate"] = 'Bearer realm="upgrade-gate"'
            return reply
        return None

    @contextmanager
    def long_poll_slot(self, authorization: str | None) -> Iterator[bool]:
        """Hold a long-poll slot while the block runs; ``False`` if none is free.

        A request with the token tries its own allowance first, then the
        anonymous one.
        """
        pools = [self._anonymous_slots]
        if self.token_matches(authorization):
            pools.insert(0, self._authorized_slots)
        for pool in pools:
            if pool.acquire(blocking=False):
                try:
                    yield True
                finally:
                    pool.release()
                return
        yield False

    def drain(self, authorization: str | None, body: bytes) -> Reply:
        """``POST /drain``: fence the pod for a lease."""
        if (denied := self.denied(authorization)) is not None:
            return denied
        fence = Fence.from_body(json_object(body))
        return Reply(200, status_body(self.gate.drain(fence.ttl, fence.holder)))

    def undrain(self, authorization: str | None, query: Mapping[str, str]) -> Reply:
        """``DELETE /drain``: lift the fence."""
        if (denied := self.denied(authorization)) is not None:
            return denied
        return Reply(200, status_body(self.gate.undrain(lifting_holder(query))))


class HeldWatch:
    """The body of a held ``?watch`` for a WSGI server (Flask or plain): a space at once,
    the status when the watch ends.

    An iterable with ``close`` rather than a generator, so that the long-poll
    slot is given back even when the server never starts iterating.
    """

    def __init__(self, gate: Gate, seconds: float, slot: ExitStack) -> None:
        self.gate, self.seconds, self.slot = gate, seconds, slot

    def __iter__(self) -> Iterator[bytes]:
        yield b" "  # the head and this go out now: the watch holds
        status = self.gate.watch_fence(self.seconds)
        self.slot.close()
        yield watch_end(status)

    def close(self) -> None:
        self.slot.close()
