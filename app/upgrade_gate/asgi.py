"""The gate's HTTP contract (``upgrade-gate/v1``) for Starlette and FastAPI apps.

``UpgradeGate(gate, token=..., app=app)`` serves ``GET /upgradeable`` and
``POST``/``DELETE /drain`` beside the app's own routes, and answers a refused
unit of work (:class:`WorkRefusedError`) with the contract's 503; or take its
``routes`` and ``exception_handlers`` into ``Starlette(...)`` yourself. What
each answer says is :mod:`upgrade_gate.contract`'s, shared by every
integration: the same status codes, bodies and headers as
:mod:`upgrade_gate.flask`.

The gate is thread-based. A long-poll never blocks the event loop: it waits in
a worker thread of a pool of its own, as many threads as long-polls may wait
(:class:`LongPollLimits`), so it takes nothing from the threads that
Starlette's sync endpoints run in. When its client goes away the wait ends at
once (:meth:`Gate.release`), and its slot is given back.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from typing import Any

try:
    import anyio
    import anyio.to_thread
    from starlette.applications import Starlette
    from starlette.requests import ClientDisconnect, Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute, Route
    from starlette.types import Receive, Scope, Send
except ModuleNotFoundError as exc:
    raise ModuleNotFoundError(
        f"upgrade_gate.asgi needs Starlette ({exc}): pip install 'helm-upgrade-gate[asgi]'"
    ) from exc

from upgrade_gate.contract import (
    MISSING,
    Ask,
    Contract,
    InputError,
    LongPollLimits,
    Reply,
    error_reply,
    json_object,
    number_in_range,
    refused_reply,
    status_reply,
    too_many_long_polls,
    watch_end,
    watch_headers,
    would_wait,
)
from upgrade_gate.core import Gate, Status, WorkRefusedError

__all__ = [
    "MAX_BODY_BYTES",
    "MISSING",
    "STATE_KEY",
    "BodyTooLargeError",
    "InputError",
    "LongPollLimits",
    "UpgradeGate",
    "as_response",
    "current_gate",
    "json_error",
    "json_object_body",
    "number_in_range",
]

STATE_KEY = "upgrade_gate"  # app.state.upgrade_gate: the UpgradeGate serving this app
MAX_BODY_BYTES = 1024 * 1024  # a /drain body is a few dozen bytes of JSON

Handler = Callable[[Request, Exception], Awaitable[Response]]


class BodyTooLargeError(InputError):
    """A request body over the limit; becomes a 413."""


def as_response(reply: Reply) -> Response:
    """A :class:`Reply` as Starlette sends it."""
    return Response(reply.encode(), reply.status, reply.headers, media_type="application/json")


def json_error(status: int, error: str, **extra: Any) -> Response:
    """A JSON error body: ``error`` says what is wrong, ``extra`` adds fields."""
    return as_response(error_reply(status, error, **extra))


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refused past ``limit`` bytes (declared or sent) before it is all read."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError(f"a body here is at most {limit} bytes, this one is {declared}")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLargeError(f"a body here is at most {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise InputError("body could not be read: the client went away") from None
    return b"".join(chunks)


async def json_object_body(request: Request, limit: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The request body as a JSON object; an empty body is an empty object."""
    return json_object(await read_body(request, limit))


class _HeldWatch(Response):
    """A held ``?watch``: its head and a space at once, the status when the watch ends.

    The long-poll slot is given back when the watch ends, when the client goes
    away (which ends the wait), and when the response is never sent.
    """

    def __init__(self, owner: UpgradeGate, seconds: float, status: Status, slot: ExitStack) -> None:
        # Not Response.__init__: it would declare an empty body (Content-Length: 0).
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in Reply(200, {}, watch_headers(status)).header_list()
        ]
        self.owner, self.seconds, self.slot = owner, seconds, slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with self.slot:
            head = {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
            await send(head)
            await send({"type": "http.response.body", "body": b" ", "more_body": True})
            gate, seconds = self.owner.gate, self.seconds
            status = await self.owner.wait(lambda gone: gate.watch_fence(seconds, gone), receive)
        await send({"type": "http.response.body", "body": watch_end(status)})


class UpgradeGate:
    """Exposes a :class:`Gate` over HTTP in a Starlette or FastAPI app.

    ``token`` protects ``/drain`` (space around it is not part of it); without
    one, fencing is disabled (403) so that nobody can block deployments
    anonymously. ``long_polls`` caps the long-polls waiting at once (see
    :class:`LongPollLimits`); each waits in a thread of the gate's own pool of
    that size. ``app``: :meth:`init_app` at once.
    """

    def __init__(
        self,
        gate: Gate,
        *,
        token: str | None,
        app: Starlette | None = None,
        long_polls: LongPollLimits | None = None,
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        self.contract = Contract(gate, token, long_polls)
        self.gate = gate
        self.token = self.contract.token
        self.long_polls = self.contract.long_polls
        self.max_body = max_body
        self._threads: anyio.CapacityLimiter | None = None
        if app is not None:
            self.init_app(app)

    @property
    def routes(self) -> list[BaseRoute]:
        """``/upgradeable`` and ``/drain``, for ``Starlette(routes=[...])`` or a router."""
        return [
            Route("/upgradeable", self._upgradeable, methods=["GET"]),
            Route("/drain", self._drain, methods=["POST", "DELETE"]),
        ]

    @property
    def exception_handlers(self) -> dict[Any, Handler]:
        """Refused work as the contract's 503, bad input as a JSON 400 (413: too large)."""
        return {WorkRefusedError: _refused, InputError: _bad_input}

    def init_app(self, app: Starlette) -> None:
        """Add the routes and the exception handlers to ``app`` (a FastAPI app too), and
        make this gate ``app.state.upgrade_gate`` (:func:`current_gate`)."""
        setattr(app.state, STATE_KEY, self)
        app.router.routes.extend(self.routes)
        for kind, handler in self.exception_handlers.items():
            app.add_exception_handler(kind, handler)

    async def wait(self, block: Callable[[threading.Event], Status], receive: Receive) -> Status:
        """``block(gone)`` (a long-poll of the gate) in a worker thread, ended with
        :meth:`Gate.release` when the client goes away or the task is cancelled."""
        gone = threading.Event()

        async def client_gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            self.gate.release(gone)

        if self._threads is None:  # made in the event loop, on first use
            self._threads = anyio.CapacityLimiter(
                self.long_polls.anonymous + self.long_polls.authorized
            )
        async with anyio.create_task_group() as group:
            group.start_soon(client_gone)
            try:
                status = await anyio.to_thread.run_sync(
                    block, gone, limiter=self._threads, abandon_on_cancel=True
                )
            except BaseException:
                self.gate.release(gone)  # cancelled: the thread ends at once too
                raise
            group.cancel_scope.cancel()
        return status

    async def _upgradeable(self, request: Request) -> Response:
        ask = Ask.from_query(request.query_params)
        status = self.gate.status()
        if ask.seconds is None or not would_wait(status, ask.watched):
            return as_response(status_reply(status, watched=ask.watched))
        seconds = ask.seconds
        slot = ExitStack()
        if not slot.enter_context(
            self.contract.long_poll_slot(request.headers.get("Authorization"))
        ):
            slot.close()
            # No slot: an answer that needs no waiting is still given.
            status = self.gate.status()
            if would_wait(status, ask.watched):
                return as_response(too_many_long_polls(status))
            return as_response(status_reply(status, watched=ask.watched))
        if ask.watched:
            # The head goes out at once: the hook's proof that this process holds it.
            return _HeldWatch(self, seconds, status, slot)
        with slot:
            gate = self.gate
            status = await self.wait(
                lambda gone: gate.wait_upgradeable(seconds, gone), request.receive
            )
        return as_response(status_reply(status))

    async def _drain(self, request: Request) -> Response:
        authorization = request.headers.get("Authorization")
        if request.method == "DELETE":
            return as_response(self.contract.undrain(authorization, request.query_params))
        if (denied := self.contract.denied(authorization)) is not None:
            return as_response(denied)
        body = await read_body(request, self.max_body)
        return as_response(self.contract.drain(authorization, body))


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, WorkRefusedError)
    return as_response(refused_reply(exc))


async def _bad_input(request: Request, exc: Exception) -> Response:
    if isinstance(exc, BodyTooLargeError):
        return json_error(413, "body_too_large", message=str(exc))
    return json_error(400, str(exc))


def current_gate(request: Request) -> Gate:
    """The gate of the app handling ``request`` (``app.state.upgrade_gate``)."""
    ext: UpgradeGate = getattr(request.app.state, STATE_KEY)
    return ext.gate
