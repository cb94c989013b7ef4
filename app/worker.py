"""gunicorn's threaded worker, changed where a pod must stay probe-able and JSON-speaking.

- gunicorn answers some requests itself, before Flask sees them: a malformed
  request line (400), a URI too long (414), headers too large (431), an
  unknown transfer coding (501). Those answers are JSON here, as the app's
  are: ``{"error": "uri_too_long", "message": "..."}``, with the status code
  gunicorn chose.
- A new connection waits for its first bytes in the worker's poller, not in
  a request thread. gunicorn 24+ gives each new connection a thread that
  waits up to 5 s for data, so a few dozen silent connections (a port scan,
  a client pool that connects ahead) kept the probes out for many seconds.
  This is how gunicorn 21 to 23 did it, with a deadline; upstream discusses
  the same change (benoitc/gunicorn#3635).
- At ``worker_connections`` gunicorn stops accepting. Before that happens,
  the connection idle longest is closed, so that a new connection (a probe,
  the hook) is always accepted.
"""

from __future__ import annotations

import errno
import json
import re
import selectors
import socket
import time
from collections import deque
from contextlib import suppress
from functools import partial
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import TConn, ThreadWorker

# The parts of gunicorn's worker the connection handling below relies on
# (gunicorn 27); without them the worker keeps gunicorn's own behaviour.
_POLL_FIRST = all(
    hasattr(ThreadWorker, name) for name in ("on_pending_socket_readable", "murder_pending")
)
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) ([^\r\n]*)\r\n")
_MESSAGE_LIMIT = 300


class _Captured:
    """Stands in for the client socket while gunicorn writes its HTML error."""

    def __init__(self) -> None:
        self.data = b""

    def gettimeout(self) -> float:
        return 0.0

    def setblocking(self, flag: bool) -> None:
        pass

    def sendall(self, data: bytes) -> None:
        self.data += data


def json_error_answer(code: int, reason: str, message: str) -> bytes:
    """A complete HTTP/1.1 error answer with a JSON body; the connection closes."""
    error = "internal_error" if code == 500 else re.sub(r"\W+", "_", reason.lower()).strip("_")
    if len(message) > _MESSAGE_LIMIT:
        message = message[: _MESSAGE_LIMIT - 3] + "..."
    body = json.dumps({"error": error or "bad_request", "message": message}).encode()
    head = (
        f"HTTP/1.1 {code} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class Worker(ThreadWorker):  # type: ignore[misc]
    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: BaseException) -> None:
        # gunicorn decides the status and logs; only the body it writes changes.
        captured = _Captured()
        super().handle_error(req, captured, addr, exc)
        match = _STATUS_LINE.match(captured.data)
        if match is None:
            return
        code, reason = int(match[1]), match[2].decode("latin-1")
        message = str(exc) if code < 500 else "see the application log"
        try:
            util.write_nonblock(client, json_error_answer(code, reason, message))
        except OSError:
            self.log.debug("Failed to send error message.")

    def accept(self, listener: socket.socket) -> None:
        if not _POLL_FIRST:
            super().accept(listener)
            return
        try:
            sock, client = listener.accept()
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                return
            raise
        self.nr_conns += 1
        conn = TConn(self.cfg, sock, client, listener.getsockname())  # non-blocking
        # A thread takes it once it is readable; silent past the keep-alive
        # timeout, murder_pending() closes it.
        conn.timeout = time.monotonic() + self.cfg.keepalive
        self.pending_conns.append(conn)
        self.poller.register(
            conn.sock, selectors.EVENT_READ, partial(self.on_pending_socket_readable, conn)
        )
        self._make_room()

    def _make_room(self) -> None:
        """Close the longest-idle connections while the worker is at its limit."""
        while self.nr_conns >= self.worker_connections:
            queues: list[deque[TConn]] = [
                q for q in (self.pending_conns, self.keepalived_conns) if q
            ]
            if not queues:
                return
            oldest = min(queues, key=lambda q: q[0].timeout)
            conn = oldest.popleft()
            with suppress(OSError, KeyError, ValueError):  # not registered any more
                self.poller.unregister(conn.sock)
            self.nr_conns -= 1
            conn.close()
