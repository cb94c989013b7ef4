"""gunicorn's threaded worker, changed where a pod must stay probe-able and JSON-speaking.

- **A request is read whole before a thread sees it.** The worker's poller
  reads each connection's bytes as they come, and hands the connection to a
  request thread only once a whole request (headers and body) is there.
  gunicorn gives a connection a thread on its first byte and reads the rest
  there, blocking, with no deadline: a few dozen connections that send half
  their headers and then nothing (slowloris), or a body that stops short,
  held every thread, and the probes and the hook's fence timed out. Here a
  request has ``REQUEST_SECONDS`` from its first byte; one that is not whole
  by then is answered 408 and closed. A body larger than the app takes
  (Flask's ``MAX_CONTENT_LENGTH``), declared or chunked, is answered 413 at
  once, without waiting for it.
- **Closing waits for the client off the accepting loop.** After an answer
  that ends a connection (HTTP/1.0, ``Connection: close``, an error), the
  write side is shut and what the client still sends is read and dropped
  until it closes, for at most ``LINGER_SECONDS`` (RFC 9112 section 9.6) —
  in the poller. gunicorn does this blocking, on the loop that accepts, one
  connection after another: 25 HTTP/1.0 clients that never close kept a
  probe waiting 50 s.
- **Every read or write in a request thread has a deadline**
  (``IO_SECONDS``): the request is read already, so this bounds a client
  that does not read its answer, and whatever the framing here and
  gunicorn's parser disagree on.
- **Every request thread starts with the worker.** gunicorn's pool starts
  them as requests come, on the accepting loop, where a thread the system
  refuses (a container's pids limit) ended the worker and every operation
  it ran.
- gunicorn answers some requests itself, before Flask sees them: a malformed
  request line (400), a URI too long (414), headers too large (431), an
  unknown transfer coding (501). Those answers are JSON here, as the app's
  are: ``{"error": "uri_too_long", "message": "..."}``, with the status code
  gunicorn chose.
- **The management port has threads of its own.** With ``serve
  --management-port``, requests on that listener (the probes, the hook)
  run in a small pool of their own, which the app's traffic cannot take.
- At ``worker_connections`` gunicorn stops accepting. Before that happens,
  the connection idle longest is closed, so that a new connection (a probe,
  the hook) is always accepted; the app port's connections make room among
  their own, never by closing one of the management port's.

The worker builds on gunicorn 27's gthread internals (``TConn``,
``enqueue_req``, ``finish_request``), hence the pin in ``pyproject.toml``.
"""

from __future__ import annotations

import errno
import json
import re
import selectors
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from functools import partial
from typing import Any

from gunicorn import util
from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, TConn, ThreadWorker

REQUEST_SECONDS = 10.0  # a request's headers and body, from its first byte
LINGER_SECONDS = 2.0  # gunicorn's close_graceful() bound
IO_SECONDS = 10.0  # any one read or write in a request thread
SWEEP_SECONDS = 0.25  # how often deadlines are checked, at most
RECV_BYTES = 65536
# Chunks in one body: 1 MiB in 64-byte pieces (a client streaming a generator); each costs
# the reading loop a few microseconds, so a bound keeps one request from costing it a second.
MAX_CHUNKS = 16384
MAX_BUFFERED = 64 * 1024 * 1024  # unfinished requests held at once, all connections
DEFAULT_MAX_BODY = 1024 * 1024

_STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) ([^\r\n]*)\r\n")
_MESSAGE_LIMIT = 300
_HEX = frozenset(b"0123456789abcdefABCDEF")


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


# -- framing: where the first request in a buffer ends -------------------------------------


class BodyTooLargeError(Exception):
    """The request's body, declared or chunked, is more than the app takes."""


class UnframeableError(Exception):
    """Not a request this framing reads: gunicorn's to refuse (400, 414, 431, 501), from
    the bytes it is given and no more."""


class Framing:
    """Where the first request in a growing buffer ends (RFC 9112 section 6).

    Only the framing is read: where the headers end, then ``Content-Length``
    or a chunked body. Anything this does not understand raises
    :class:`UnframeableError`: gunicorn's parser gets what was read, and no
    more (the worker shuts the socket's reading side), and answers the error
    it finds. What has been read is remembered, so a request that trickles in
    is scanned once, not once per piece. ``max_line`` is gunicorn's bound on
    a header line, which it applies to a chunk-size line too.
    """

    def __init__(self, max_body: int, max_head: int, max_line: int = 8190) -> None:
        self.max_body = max_body
        self.max_head = max_head
        self.max_line = max_line
        # Chunk-size lines and extensions are overhead a body of max_body needs little of.
        self.max_chunked = 2 * max_body + 65536
        self.reset()

    def reset(self) -> None:
        """The buffer now starts with the next request."""
        self._start = 0  # past the empty lines a request may follow
        self._searched = 0  # of the head, or of the trailers
        self._end: int | None = None  # known from Content-Length
        self._body_start = 0
        self._chunk: int | None = None  # the next chunk-size line
        self._chunks = 0
        self._body = 0
        self._trailers: int | None = None

    def end(self, data: bytes | bytearray) -> int | None:
        """How many bytes of ``data`` its first request takes; ``None`` while it is not whole.

        Raises :class:`BodyTooLargeError` for a body over ``max_body`` bytes, and
        :class:`UnframeableError` for what gunicorn must refuse.
        """
        if self._trailers is not None:
            return self._trailers_end(data)
        if self._chunk is not None:
            return self._chunked_end(data)
        if self._end is not None:
            return self._end if len(data) >= self._end else None
        while data.startswith(b"\r\n", self._start):
            self._start += 2
        scan_from = max(self._start, self._searched - 3)
        head_end = data.find(b"\r\n\r\n", scan_from)
        _refuse_bare_lf(data, max(self._start, self._searched - 1), head_end)
        if head_end < 0:
            self._searched = len(data)
            if len(data) - self._start > self.max_head:
                raise UnframeableError("headers longer than gunicorn reads")
            return None
        lengths: list[bytes] = []
        codings: list[bytes] = []
        for line in bytes(data[self._start : head_end]).split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                lengths.append(value.strip())
            elif name.lower() == b"transfer-encoding":
                codings.extend(c.strip().lower() for c in value.split(b","))
        self._body_start = head_end + 4
        if codings:
            if lengths or codings[-1] != b"chunked":
                raise UnframeableError("a transfer coding gunicorn refuses")
            self._chunk = self._body_start
            return self._chunked_end(data)
        if not lengths:
            return self._body_start
        if len(set(lengths)) > 1 or not lengths[0].isdigit():
            raise UnframeableError("a Content-Length gunicorn refuses")
        digits = lengths[0].lstrip(b"0") or b"0"
        # int() refuses more than 4300 digits; any length this long is too large anyway.
        if len(digits) > len(str(self.max_body)) or int(digits) > self.max_body:
            raise BodyTooLargeError(
                f"a body of {_brief(digits)} bytes is more than the {self.max_body} this "
                "server reads"
            )
        self._end = self._body_start + int(digits)
        return self._end if len(data) >= self._end else None

    def _chunked_end(self, data: bytes | bytearray) -> int | None:
        while (pos := self._chunk) is not None:
            line_end = data.find(b"\r\n", pos)
            if line_end < 0:
                if len(data) - pos > self.max_line:
                    raise UnframeableError("a chunk-size line longer than gunicorn reads")
                return None
            size_text = bytes(data[pos:line_end]).split(b";", 1)[0].rstrip(b" \t")
            if not size_text or not _HEX.issuperset(size_text):
                raise UnframeableError("a chunk size gunicorn refuses")
            digits = size_text.lstrip(b"0") or b"0"
            size = int(digits, 16) if len(digits) <= 16 else self.max_body + 1
            self._body += size
            self._chunks += 1 if size else 0  # the last, empty one is not a chunk of data
            if self._body > self.max_body:
                raise BodyTooLargeError(
                    f"a chunked body of more than the {self.max_body} bytes this server reads"
                )
            if self._chunks > MAX_CHUNKS or line_end - self._body_start > self.max_chunked:
                raise BodyTooLargeError(
                    f"a body in more than {MAX_CHUNKS} chunks, or with more framing than data"
                )
            if size == 0:
                self._chunk, self._trailers, self._searched = None, line_end, line_end
                return self._trailers_end(data)
            self._chunk = line_end + 2 + size + 2
            if len(data) < self._chunk:
                return None
        return None

    def _trailers_end(self, data: bytes | bytearray) -> int | None:
        assert self._trailers is not None
        end = data.find(b"\r\n\r\n", max(self._trailers, self._searched - 3))
        if end < 0:
            self._searched = len(data)
            if len(data) - self._trailers > self.max_head:
                raise UnframeableError("trailers longer than gunicorn reads")
            return None
        return end + 4


def _refuse_bare_lf(data: bytes | bytearray, start: int, end: int) -> None:
    """A line ended by LF alone, which gunicorn refuses (it would otherwise wait here for
    a CRLF CRLF that may never come)."""
    stop = len(data) if end < 0 else end
    at = data.find(b"\n", start, stop)
    while at >= 0:
        if at == 0 or data[at - 1] != 0x0D:
            raise UnframeableError("a line ended by LF alone")
        at = data.find(b"\n", at + 1, stop)


def _brief(digits: bytes) -> str:
    text = digits.decode("ascii")
    return text if len(text) <= 20 else f"{text[:8]}...({len(text)} digits)"


# -- connections ---------------------------------------------------------------------------


def _started(pool: ThreadPoolExecutor, threads: int) -> ThreadPoolExecutor:
    """``pool`` with all its ``threads`` running: it starts one whenever none is idle, so
    all are kept busy until the last has started."""
    started = threading.Barrier(threads + 1)
    for _ in range(threads):
        pool.submit(started.wait, 60)
    started.wait(60)
    return pool


class _ReadAhead(SocketUnreader):  # type: ignore[misc]
    """gunicorn's reader of a socket, serving a request read already first, a socket read's
    worth at a time. Handed the whole request at once (``unread``), gunicorn's chunked
    reader copied the rest of it for every chunk: 1 MiB in 256-byte chunks took 4 s."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock)
        self.pending = memoryview(b"")

    def feed(self, request: bytes) -> None:
        self.pending = memoryview(request)

    def chunk(self, size_hint: int | None = None) -> bytes:
        if not self.pending:
            return bytes(super().chunk(size_hint))
        size = self.mxchunk
        if size_hint and size_hint > size:
            size = min(size_hint, self.max_body_chunk)
        piece, self.pending = self.pending[:size], self.pending[size:]
        return bytes(piece)

    def take_buffered(self) -> bytes:
        data = bytes(super().take_buffered()) + bytes(self.pending)
        self.pending = memoryview(b"")
        return data


class _Socket(socket.socket):
    """A client socket on which "blocking" means "blocking, with a deadline"."""

    def setblocking(self, flag: bool) -> None:
        if flag:
            self.settimeout(IO_SECONDS)
        else:
            super().setblocking(False)


class Conn(TConn):  # type: ignore[misc]
    def __init__(self, cfg: Any, sock: socket.socket, client: Any, server: Any) -> None:
        super().__init__(cfg, sock, client, server)
        self.inbuf = bytearray()  # read, not yet handed over
        self.request = b""  # one whole request, for the thread
        self.data_ready = True  # gunicorn's thread need not wait for it
        self.drained = 0  # while lingering
        self.framing: Framing | None = None
        self.continued = False  # "100 Continue" sent for this request
        self.queued = 0  # bytes of its request waiting for a thread
        self.last = False  # its request is gunicorn's to refuse: the connection ends


class Worker(ThreadWorker):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reading: set[Conn] = set()  # waiting for a whole request, in the poller
        self.lingering: set[Conn] = set()  # answered, closing
        self.max_body = DEFAULT_MAX_BODY
        # gunicorn's own bounds on a request line and its header fields.
        self.max_head = self.cfg.limit_request_line + self.cfg.limit_request_fields * (
            self.cfg.limit_request_field_size + 2
        )
        self._next_sweep = 0.0
        self.management_port: int | None = None
        self.management_pool: ThreadPoolExecutor | None = None
        self.queued_bytes = 0  # whole requests waiting for a thread

    def load_wsgi(self) -> None:
        super().load_wsgi()
        config = getattr(self.wsgi, "config", {})
        self.max_body = config.get("MAX_CONTENT_LENGTH") or DEFAULT_MAX_BODY
        # server.Listeners: the management port's requests get threads of their own.
        self.management_port = getattr(self.wsgi, "management_port", None)
        if self.management_port is not None:
            threads = self.wsgi.management_threads
            self.management_pool = _started(
                ThreadPoolExecutor(threads, thread_name_prefix="management"), threads
            )

    def get_thread_pool(self) -> ThreadPoolExecutor:
        return _started(super().get_thread_pool(), self.cfg.threads)

    def enqueue_req(self, conn: Conn) -> None:
        pool = self.tpool
        if self.management_pool is not None and conn.server[1] == self.management_port:
            pool = self.management_pool
        conn.queued = len(conn.request)
        self.queued_bytes += conn.queued
        future = pool.submit(self.handle, conn)
        future.add_done_callback(
            lambda done: self.method_queue.defer(self.finish_request, conn, done)
        )

    def set_accept_enabled(self, enabled: bool) -> None:
        """gunicorn stops accepting at ``worker_connections``, counting both ports' connections
        and whole requests waiting for a thread, which it cannot close to make room: the
        management listener keeps accepting while the worker runs (``_make_room`` bounds it)."""
        for listener in self.sockets:
            management = self._is_management(listener.getsockname())
            with suppress(KeyError, ValueError):  # registered already, or not
                if enabled or (management and self.alive):
                    listener.setblocking(False)
                    self.poller.register(listener, selectors.EVENT_READ, self.accept)
                else:
                    self.poller.unregister(listener)
        self._accepting = enabled

    def _is_management(self, address: Any) -> bool:
        return self.management_port is not None and address[1] == self.management_port

    def handle_quit(self, sig: Any, frame: Any) -> None:
        if self.management_pool is not None:
            self.management_pool.shutdown(wait=False)
        super().handle_quit(sig, frame)

    # -- gunicorn's errors, in JSON --------------------------------------------------------

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

    # -- the accepting loop ----------------------------------------------------------------

    def accept(self, listener: socket.socket) -> None:
        try:
            sock, client = listener.accept()
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                return
            raise
        sock = _Socket(sock.family, sock.type, sock.proto, fileno=sock.detach())
        self.nr_conns += 1
        self._make_room(for_management=self._is_management(listener.getsockname()))
        self._await_request(Conn(self.cfg, sock, client, listener.getsockname()))

    def _await_request(self, conn: Conn, idle: float | None = None) -> None:
        """Read ``conn``'s next request in the poller; silent for ``idle`` s, it closes."""
        conn.sock.setblocking(False)
        wait = REQUEST_SECONDS if conn.inbuf else (idle or self.cfg.keepalive)
        conn.timeout = time.monotonic() + wait
        self.reading.add(conn)
        if conn.inbuf and self._take_request(conn):
            return  # it was there already (pipelined), or refused
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))

    @staticmethod
    def _recv(conn: Conn) -> bytes | None:
        """What the client sent, in the poller: ``None`` if nothing yet, empty if it closed
        or failed."""
        try:
            return bytes(conn.sock.recv(RECV_BYTES))
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            return b""

    def _on_readable(self, conn: Conn, _sock: Any) -> None:
        if (data := self._recv(conn)) is None:
            return
        if not data:  # the client closed or failed; no answer can reach it
            self._forget(conn)
            conn.close()
            return
        if not conn.inbuf:
            conn.timeout = time.monotonic() + REQUEST_SECONDS  # its clock starts now
        conn.inbuf += data
        try:
            self._take_request(conn)
        except Exception:  # a bug here must not end the worker and its operations
            self.log.exception("Error reading a request; the connection is closed.")
            self._forget(conn)
            util.close(conn.sock)

    def _take_request(self, conn: Conn) -> bool:
        """Hand ``conn`` to a thread if a whole request is in; refuse it if it never will be."""
        if conn.framing is None:
            conn.framing = Framing(
                self.max_body, self.max_head, self.cfg.limit_request_field_size or 8190
            )
        try:
            length = conn.framing.end(conn.inbuf)
        except BodyTooLargeError as exc:
            self._refuse(conn, 413, "Content Too Large", str(exc))
            return True
        except UnframeableError:
            # gunicorn answers what it finds wrong in these bytes; it must not wait for more.
            length, conn.last = len(conn.inbuf), True
        if length is None:
            if len(conn.inbuf) > RECV_BYTES and self._buffered() > MAX_BUFFERED:
                self._refuse(
                    conn, 503, "Service Unavailable", "too many unfinished requests; try again"
                )
                return True
            if not conn.continued and b"\r\n\r\n" in conn.inbuf:
                self._continue(conn)
            return False
        self._unwatch(conn)
        self.reading.discard(conn)
        conn.request, conn.inbuf = bytes(conn.inbuf[:length]), conn.inbuf[length:]
        conn.framing.reset()
        conn.continued = False
        self.enqueue_req(conn)
        return True

    def _continue(self, conn: Conn) -> None:
        """A client that waits for "100 Continue" before its body (curl does) gets it now."""
        conn.continued = True
        head = bytes(conn.inbuf[: conn.inbuf.find(b"\r\n\r\n")]).lower()
        request_line = head.lstrip(b"\r\n").partition(b"\r\n")[0]
        if request_line.endswith(b" http/1.1") and re.search(
            rb"\r\nexpect:[ \t]*100-continue", head
        ):
            with suppress(OSError):
                conn.sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _buffered(self) -> int:
        """Request bytes held: being read, and whole ones waiting for a thread."""
        return sum(len(c.inbuf) for c in self.reading) + self.queued_bytes

    def handle(self, conn: Conn) -> Any:
        """In a request thread: the request is read already; gunicorn parses it."""
        if conn.request:
            conn.sock.setblocking(True)
            conn.init()
            if not isinstance(conn.parser.unreader, _ReadAhead):
                conn.parser.unreader = _ReadAhead(conn.sock)
            conn.parser.unreader.feed(conn.request)
            conn.request = b""
            if conn.last:
                with suppress(OSError):  # gunicorn reads no more than it was given
                    conn.sock.shutdown(socket.SHUT_RD)
        return super().handle(conn)

    def finish_request(self, conn: Conn, fs: Future[Any]) -> None:
        self.queued_bytes -= conn.queued
        conn.queued = 0
        try:
            keepalive = not fs.cancelled() and fs.result() is True
        except Exception:  # gunicorn's handle() keeps its own errors in; anything else closes
            keepalive = False
        if keepalive and not conn.last:
            # A request pipelined behind this one may sit in the parser already.
            conn.inbuf[:0] = conn.parser.unreader.take_buffered()
            self._await_request(conn, self.cfg.keepalive if self.alive else STOP_KEEPALIVE_LINGER)
        else:
            self.nr_conns -= 1
            self._linger(conn)

    # -- ending connections ----------------------------------------------------------------

    def _refuse(self, conn: Conn, code: int, reason: str, message: str) -> None:
        self._forget(conn)
        with suppress(OSError):  # a few hundred bytes: the socket's buffer takes them
            conn.sock.send(json_error_answer(code, reason, message))
        self._linger(conn)

    def _linger(self, conn: Conn) -> None:
        """Close after the answer without cutting it off, waiting in the poller."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            util.close(conn.sock)
            return
        conn.sock.setblocking(False)
        conn.timeout = time.monotonic() + LINGER_SECONDS
        conn.drained = 0
        self.lingering.add(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_lingering, conn))

    def _on_lingering(self, conn: Conn, _sock: Any) -> None:
        if (data := self._recv(conn)) is None:
            return
        conn.drained += len(data)
        if not data or conn.drained > RECV_BYTES:
            self._end_linger(conn)

    def _end_linger(self, conn: Conn) -> None:
        self.lingering.discard(conn)
        self._unwatch(conn)
        util.close(conn.sock)

    def _forget(self, conn: Conn) -> None:
        """``conn`` is no longer read here, nor counted."""
        self._unwatch(conn)
        if conn in self.reading:
            self.reading.discard(conn)
            self.nr_conns -= 1

    def _unwatch(self, conn: Conn) -> None:
        with suppress(OSError, KeyError, ValueError):  # not registered (any more)
            self.poller.unregister(conn.sock)

    def murder_pending(self) -> None:
        """Called on every turn of gunicorn's loop, and while it stops."""
        super().murder_pending()
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_SECONDS
        for conn in [c for c in self.reading if c.timeout <= now]:
            if conn.inbuf:
                self._refuse(
                    conn,
                    408,
                    "Request Timeout",
                    f"the request was not whole within {REQUEST_SECONDS:g} s of its first byte",
                )
            else:
                self._forget(conn)
                conn.close()
        for conn in [c for c in self.lingering if c.timeout <= now]:
            self._end_linger(conn)

    def _cap_keepalive(self, deadline: float) -> None:
        """A stopping worker: every connection still being read ends by ``deadline``
        (gunicorn's STOP_KEEPALIVE_LINGER from now): idle ones close, a request
        not yet whole is answered 408. A slow client does not hold the exit."""
        super()._cap_keepalive(deadline)
        for conn in self.reading:
            conn.timeout = min(conn.timeout, deadline)
        self._next_sweep = 0.0

    def _make_room(self, for_management: bool) -> None:
        """Close the longest-idle connections while the worker is at its limit. The app
        port's connections make room among their own only: a connection of the management
        port (a probe, the hook) is never closed for them."""
        while self.nr_conns >= self.worker_connections:
            candidates = [c for c in self.reading if not self._is_management(c.server)]
            if not candidates and for_management:
                candidates = list(self.reading)
            if not candidates:
                return
            idle = [c for c in candidates if not c.inbuf] or candidates
            oldest = min(idle, key=lambda c: c.timeout)
            self._forget(oldest)
            oldest.close()
