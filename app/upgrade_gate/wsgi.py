"""The gate's HTTP contract (``upgrade-gate/v1``) for any WSGI app, with the standard library.

``UpgradeGate(gate, token=..., app=wsgi_app)`` is WSGI middleware: it answers
``GET /upgradeable`` and ``POST``/``DELETE /drain``, passes every other path
to ``app`` (Django, Falcon, Bottle, a plain WSGI callable), and answers a
:class:`WorkRefusedError` that ``app`` raises with the contract's 503. Without
``app`` it serves the contract alone (any other path is a JSON 404). The
answers are :mod:`upgrade_gate.contract`'s, the same as every integration's.

A framework that turns a view's exceptions into its own 500 (Django, Falcon)
never lets :class:`WorkRefusedError` reach the middleware: answer it in the
view with :func:`upgrade_gate.contract.refused_reply` (its ``status``,
``headers`` and ``encode()``).

A long-poll holds the server's request thread while it waits, as under Flask:
size ``long_polls`` (:class:`LongPollLimits`) below the server's threads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import ExitStack
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from upgrade_gate.contract import (
    Ask,
    Contract,
    HeldWatch,
    InputError,
    LongPollLimits,
    Reply,
    error_reply,
    refused_reply,
    status_reply,
    too_many_long_polls,
    watch_headers,
    would_wait,
)
from upgrade_gate.core import Gate, WorkRefusedError

__all__ = ["MAX_BODY_BYTES", "LongPollLimits", "UpgradeGate", "respond"]

MAX_BODY_BYTES = 1024 * 1024  # a /drain body is a few dozen bytes of JSON

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


def _status_line(status: int) -> str:
    return f"{status} {HTTPStatus(status).phrase}"


def respond(reply: Reply, start_response: StartResponse) -> list[bytes]:
    """Send a :class:`Reply` through WSGI's ``start_response``; the body to return."""
    body = reply.encode()
    headers = [*reply.header_list(), ("Content-Length", str(len(body)))]
    start_response(_status_line(reply.status), headers)
    return [body]


class UpgradeGate:
    """Serves a :class:`Gate` over WSGI: ``/upgradeable`` and ``/drain``, the rest to ``app``.

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
        app: WSGIApp | None = None,
        long_polls: LongPollLimits | None = None,
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        self.contract = Contract(gate, token, long_polls)
        self.gate = gate
        self.token = self.contract.token
        self.long_polls = self.contract.long_polls
        self.app = app
        self.max_body = max_body

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        allowed = {"/upgradeable": ("GET", "HEAD"), "/drain": ("POST", "DELETE")}.get(path)
        try:
            if allowed is None:
                if self.app is None:
                    return respond(error_reply(404, "not_found", path=path), start_response)
                return self.app(environ, start_response)
            if method not in allowed:
                reply = error_reply(405, f"{method} is not allowed on {path}")
                reply.headers["Allow"] = ", ".join(allowed)
                return respond(reply, start_response)
            if path == "/upgradeable":
                return self._upgradeable(environ, start_response)
            return self._drain(environ, start_response)
        except WorkRefusedError as exc:
            return respond(refused_reply(exc), start_response)
        except InputError as exc:
            status = 413 if isinstance(exc, _BodyTooLargeError) else 400
            return respond(error_reply(status, str(exc)), start_response)

    def _upgradeable(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        ask = Ask.from_query(_query(environ))
        if ask.seconds is None:
            return respond(status_reply(self.gate.status()), start_response)
        authorization = environ.get("HTTP_AUTHORIZATION")
        slot = ExitStack()
        admitted = slot.enter_context(self.contract.long_poll_slot(authorization))
        status = self.gate.status()
        if not would_wait(status, ask.watched):
            slot.close()
            return respond(status_reply(status, watched=ask.watched), start_response)
        if not admitted:
            slot.close()
            return respond(too_many_long_polls(status), start_response)
        if ask.watched:
            head = Reply(200, {}, watch_headers(status)).header_list()
            start_response(_status_line(200), head)
            return HeldWatch(self.gate, ask.seconds, slot)
        with slot:
            status = self.gate.wait_upgradeable(ask.seconds)
        return respond(status_reply(status), start_response)

    def _drain(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        authorization = environ.get("HTTP_AUTHORIZATION")
        if environ.get("REQUEST_METHOD") == "DELETE":
            reply = self.contract.undrain(authorization, _query(environ))
        elif (denied := self.contract.denied(authorization)) is not None:
            reply = denied
        else:
            reply = self.contract.drain(authorization, self._body(environ))
        return respond(reply, start_response)

    def _body(self, environ: Environ) -> bytes:
        """The request body, refused past ``max_body`` bytes (declared or sent)."""
        declared = environ.get("CONTENT_LENGTH") or ""
        stream = environ["wsgi.input"]
        try:
            if declared.isdigit():
                if int(declared) > self.max_body:
                    raise _BodyTooLargeError(f"a body here is at most {self.max_body} bytes")
                body: bytes = stream.read(int(declared))
            elif environ.get("wsgi.input_terminated"):  # chunked, read by the server
                body = stream.read(self.max_body + 1)
                if len(body) > self.max_body:
                    raise _BodyTooLargeError(f"a body here is at most {self.max_body} bytes")
            else:
                body = b""
        except InputError:
            raise
        except Exception as exc:  # the server could not read it (malformed chunks, say)
            raise InputError(f"body could not be read: {exc}") from None
        return body


class _BodyTooLargeError(InputError):
    """A request body over the limit; becomes a 413."""


def _query(environ: Environ) -> dict[str, str]:
    """The query's fields, the first of each name (as Flask reads them)."""
    fields: dict[str, str] = {}
    for name, value in parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True):
        fields.setdefault(name, value)
    return fields
