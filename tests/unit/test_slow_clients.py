"""Clients that send slowly, or never finish, cannot take the gate away.

A connection's request is read whole in the worker's poller, against a
deadline, before a request thread sees it. So connections that send part of
their headers and then nothing (slowloris), bodies that stop short, chunk
sizes no body could have, and HTTP/1.0 clients that never close after their
answer leave the threads, and the loop that accepts, to the probes and the
hook. Each test holds more such connections than the server has threads.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
import requests

from e2e.loopback import TOKEN, AppProcess

ANSWER_TIMEOUT = 10.0  # a starved server does not answer at all; a busy machine does, late


@pytest.fixture
def app(request: pytest.FixtureRequest) -> Iterator[AppProcess]:
    with AppProcess(threads=4) as app:
        request.node.app_processes = [app]
        yield app


def held(stack: ExitStack, app: AppProcess, count: int, raw: bytes) -> list[socket.socket]:
    """``count`` connections that have each sent ``raw`` and then nothing."""
    socks = []
    for _ in range(count):
        sock = stack.enter_context(socket.create_connection(("127.0.0.1", app.port), timeout=30))
        sock.sendall(raw)
        socks.append(sock)
    return socks


def answered_while_held(app: AppProcess) -> None:
    """A probe on a new connection and a fence, as the kubelet and the hook send them."""
    assert requests.get(f"{app.url}/healthz", timeout=ANSWER_TIMEOUT).status_code == 200
    fence = requests.post(
        f"{app.url}/drain",
        json={"ttl": 30},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=ANSWER_TIMEOUT,
    )
    assert fence.status_code == 200
    lifted = requests.delete(
        f"{app.url}/drain", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=ANSWER_TIMEOUT
    )
    assert lifted.status_code == 200


def everything_sent_back(sock: socket.socket) -> bytes:
    """What the server writes before it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def status_and_json(answer: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ",
        b"POST /operations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{",
    ],
    ids=["headers-unfinished", "body-unfinished"],
)
def test_requests_that_stop_short_do_not_hold_the_probes_or_the_fence(
    app: AppProcess, raw: bytes
) -> None:
    with ExitStack() as stack:
        socks = held(stack, app, 8 * app.threads, raw)
        answered_while_held(app)
        # The read deadline ends each of them with a 408, and no operation began.
        for sock in socks:
            status, body = status_and_json(everything_sent_back(sock))
            assert (status, body["error"]) == (408, "request_timeout")
    assert app.get("/operations").json()["operations"] == []


@pytest.mark.parametrize("size", [b"1" + b"0" * 40, b"ffffffff"], ids=["2^160", "0xffffffff"])
def test_a_chunk_larger_than_any_body_is_refused_at_once(app: AppProcess, size: bytes) -> None:
    raw = (
        b"POST /operations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + size + b"\r\n{"
    )
    with ExitStack() as stack:
        (sock,) = held(stack, app, 1, raw)
        status, body = status_and_json(everything_sent_back(sock))
    assert (status, body["error"]) == (413, "content_too_large")
    assert "1048576" in str(body["message"])


def test_a_declared_body_larger_than_the_limit_is_refused_before_it_is_sent(
    app: AppProcess,
) -> None:
    raw = b"POST /operations HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n{"
    with ExitStack() as stack:
        (sock,) = held(stack, app, 1, raw)
        status, body = status_and_json(everything_sent_back(sock))
    assert (status, body["error"]) == (413, "content_too_large")


def test_http_1_0_clients_that_never_close_do_not_hold_the_accepting_loop(
    app: AppProcess,
) -> None:
    """Each answer ends the connection; closing it waits for the client, which
    must not happen on the loop that accepts, one client after another."""
    with ExitStack() as stack:
        socks = held(stack, app, 25, b"GET /healthz HTTP/1.0\r\n\r\n")
        for sock in socks:
            assert everything_sent_back(sock).startswith(b"HTTP/1.0 200 ")
        answered_while_held(app)


def test_a_request_sent_in_pieces_is_answered(app: AppProcess) -> None:
    """Slow is not wrong: pieces that arrive within the deadline make a request."""
    body = b'{"seconds": 0.1}'
    pieces = [
        b"POST /operations HTTP/1.1\r\nHo",
        b"st: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"%x\r\n%s\r\n" % (len(body[:5]), body[:5]),
        b"%x\r\n%s\r\n0\r\n" % (len(body[5:]), body[5:]),
        b"\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ]
    with socket.create_connection(("127.0.0.1", app.port), timeout=30) as sock:
        for piece in pieces:
            sock.sendall(piece)
        answers = everything_sent_back(sock)
    first, second = answers.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"202 ")
    assert second.startswith(b"200 ")


def test_refusing_a_pipelined_request_forgets_its_connection(app: AppProcess) -> None:
    """The worker counts its connections and stops accepting at 1000 (gunicorn's
    worker_connections): a refusal that did not uncount one would, 1000 times over,
    leave a worker that accepts nothing."""
    raw = (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /operations HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n"
    )
    for _ in range(1100):
        with socket.create_connection(("127.0.0.1", app.port), timeout=30) as sock:
            sock.sendall(raw)
            answers = everything_sent_back(sock)
        assert b"HTTP/1.1 413 " in answers
    assert requests.get(f"{app.url}/healthz", timeout=ANSWER_TIMEOUT).status_code == 200


def test_a_length_too_long_for_int_is_a_413_and_the_worker_lives(app: AppProcess) -> None:
    """4301 digits: more than int() converts. It raised in the worker's loop, which died
    with the operations it ran."""
    instance = app.status()["instance"]
    op_id = app.start_operation(30)
    raw = b"POST /operations HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"1" * 4301 + b"\r\n\r\n"
    with ExitStack() as stack:
        (sock,) = held(stack, app, 1, raw)
        status, body = status_and_json(everything_sent_back(sock))
    assert (status, body["error"]) == (413, "content_too_large")
    assert app.status()["instance"] == instance, "the worker was replaced"
    assert app.operation(op_id)["state"] == "running"


def test_a_long_chunk_size_line_does_not_hold_a_thread(app: AppProcess) -> None:
    """Up to gunicorn's own bound on a line (8190 bytes), a chunk-size line that has not
    ended is still being read in the poller, not in a request thread."""
    raw = (
        b"POST /operations HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + b"0" * 6000
    )
    with ExitStack() as stack:
        socks = held(stack, app, 4 * app.threads, raw)
        answered_while_held(app)
        for sock in socks:
            assert status_and_json(everything_sent_back(sock))[0] == 408


def test_a_line_ended_by_lf_alone_is_refused_at_once(app: AppProcess) -> None:
    with ExitStack() as stack:
        (sock,) = held(stack, app, 1, b"GET /healthz HTTP/1.1\nHost: x\n")
        status, _ = status_and_json(everything_sent_back(sock))
    assert status == 400


def test_bodies_in_many_small_chunks_cost_no_more_than_their_size(app: AppProcess) -> None:
    """gunicorn's chunked reader copied the rest of a request read ahead for every chunk:
    8 bodies of 4000 one-byte chunks (with extensions) kept the probes out for a minute."""
    body = b'{"seconds": 0.1, "pad": "' + b"x" * 4000 + b'"}'
    extension = b";e=" + b"v" * 500
    raw = (
        b"POST /operations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + b"".join(b"1" + extension + b"\r\n" + body[i : i + 1] + b"\r\n" for i in range(len(body)))
        + b"0\r\n\r\n"
    )
    with ExitStack() as stack:
        socks = held(stack, app, 2 * app.threads, raw)
        answered_while_held(app)
        for sock in socks:
            # Taken, or refused while the fence answered_while_held sent stood: a body read
            # in that window is the hook's to refuse (seen under load: 503 draining).
            status, answer = status_and_json(everything_sent_back(sock))
            assert status == 202 or (status, answer.get("error")) == (503, "draining"), answer


def test_a_client_streaming_small_pieces_is_answered(app: AppProcess) -> None:
    """python-requests sends a generator as chunked, a chunk per piece: 300 KiB in 64-byte
    pieces is 4800 chunks."""
    pad = b"x" * (300 * 1024)
    body = b'{"seconds": 0.1, "pad": "' + pad + b'"}'
    pieces = (body[i : i + 64] for i in range(0, len(body), 64))
    answer = requests.post(
        f"{app.url}/operations",
        data=pieces,
        headers={"Content-Type": "application/json"},
        timeout=ANSWER_TIMEOUT,
    )
    assert answer.status_code == 202, answer.text
