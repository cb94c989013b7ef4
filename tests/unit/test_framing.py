"""Where a request ends, read from a buffer that grows as the client sends.

The worker's poller uses :class:`upgrade_gate_sample.worker.Framing` to hand a connection to a
request thread only once a whole request is in. Whatever the pieces the
request arrives in, the answer is the same as for the whole of it; anything
it cannot frame is gunicorn's to refuse, from the bytes read so far.
"""

from __future__ import annotations

import pytest

from upgrade_gate_sample.worker import MAX_CHUNKS, BodyTooLargeError, Framing, UnframeableError

MAX_BODY = 1024
MAX_HEAD = 4096
MAX_LINE = 8190  # gunicorn's limit_request_field_size, which bounds a chunk-size line too
NEXT = b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"

REQUESTS = {
    "no-body": b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "empty-lines-first": b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "length": b'POST /drain HTTP/1.1\r\nContent-Length: 11\r\n\r\n{"ttl": 30}',
    "length-zero": b"POST /drain HTTP/1.1\r\ncontent-length: 0\r\n\r\n",
    "chunked": b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    "chunked-trailers": b"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
    b"1\r\na\r\n0\r\nX-Sum: 1\r\n\r\n",
}


def fed_in_pieces(raw: bytes, step: int) -> int | None:
    framing, data = Framing(MAX_BODY, MAX_HEAD, MAX_LINE), bytearray()
    for start in range(0, len(raw), step):
        data += raw[start : start + step]
        end = framing.end(data)
        if end is not None:
            return end
    return None


@pytest.mark.parametrize("name", REQUESTS)
@pytest.mark.parametrize("step", [1, 2, 3, 7, 10_000])
def test_a_request_ends_where_it_ends_whatever_its_pieces(name: str, step: int) -> None:
    raw = REQUESTS[name]
    assert fed_in_pieces(raw + NEXT, step) == len(raw)
    assert fed_in_pieces(raw[:-1], step) is None


@pytest.mark.parametrize(
    "raw",
    [
        b"POST /x HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        b"POST /x HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        b"POST /x HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST /x HTTP/1.1\r\nTransfer-Encoding: foo\r\n\r\n",
        b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * (MAX_LINE + 1),
        b"GET /" + b"a" * 5000,
        b"GET / HTTP/1.1\nHost: x\n",
        b"GET / HTTP/1.1\r\nHost: x\n\r\n",
    ],
    ids=[
        "two-lengths",
        "negative",
        "length-and-chunked",
        "coding",
        "chunk-size",
        "chunk-line",
        "head",
        "bare-lf",
        "bare-lf-in-head",
    ],
)
def test_what_cannot_be_framed_is_gunicorns_to_refuse(raw: bytes) -> None:
    """It gets these bytes and no more (the worker shuts the socket's reading side)."""
    with pytest.raises(UnframeableError):
        Framing(MAX_BODY, MAX_HEAD, MAX_LINE).end(raw)


def test_a_length_with_leading_zeros_is_its_value() -> None:
    raw = b"POST /x HTTP/1.1\r\nContent-Length: " + b"0" * 5000 + b"2\r\n\r\n{}"
    assert Framing(MAX_BODY, MAX_HEAD * 2, MAX_LINE).end(raw) == len(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"POST /x HTTP/1.1\r\nContent-Length: 1025\r\n\r\n",
        b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" + b"0" * 40 + b"\r\n",
        b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"200\r\n"
        + b"a" * 512
        + b"\r\n201\r\n",
        b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1\r\na\r\n" * 5000,
        # 4301 digits: more than int() converts; it raised in the worker's loop, which died.
        b"POST /x HTTP/1.1\r\nContent-Length: " + b"1" * 4301 + b"\r\n\r\n",
        b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        + (b"1;" + b"e" * 8000 + b"\r\na\r\n") * 300,
    ],
    ids=["declared", "chunk-size", "chunks-add-up", "chunk-count", "digits", "extensions"],
)
def test_a_body_larger_than_the_limit_is_refused_before_it_is_sent(raw: bytes) -> None:
    with pytest.raises(BodyTooLargeError):
        Framing(MAX_BODY, MAX_HEAD * 2, MAX_LINE).end(raw)


def test_the_chunk_bound_counts_chunks_of_data() -> None:
    """The last, empty chunk is not one: MAX_CHUNKS chunks of data are a body."""
    head = b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    raw = head + b"1\r\na\r\n" * MAX_CHUNKS + b"0\r\n\r\n"
    assert Framing(4 * MAX_CHUNKS, MAX_HEAD, MAX_LINE).end(raw) == len(raw)
    with pytest.raises(BodyTooLargeError):
        Framing(4 * MAX_CHUNKS, MAX_HEAD, MAX_LINE).end(head + b"1\r\na\r\n" * (MAX_CHUNKS + 1))
