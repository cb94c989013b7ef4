"""A real app server under a thread limit, as a container's pids limit makes one.

``python -m e2e.thread_limited_app serve --port N ...`` takes the same
arguments as ``python -m upgrade_gate_sample serve``. In the worker process:

- with ``THREAD_LIMIT=N`` in the environment, a thread cannot start while N
  threads are alive, and ``start()`` raises the error CPython raises when the
  system refuses one (``RLIMIT_NPROC`` is not enforced for root, so a test
  cannot count on the kernel here);
- without it, no operation thread can start at all.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from upgrade_gate import Gate
from upgrade_gate_sample.cli import build_parser
from upgrade_gate_sample.server import Server

LIMIT_ENV = "THREAD_LIMIT"


class UnstartableThread:
    def __init__(self, target: Callable[[], None], **kwargs: Any) -> None:
        self.target = target

    def start(self) -> None:
        raise RuntimeError("can't start new thread")


def limit_threads(limit: int) -> None:
    """From now on, ``Thread.start`` fails while ``limit`` threads are alive."""
    start = threading.Thread.start

    def limited_start(thread: threading.Thread) -> None:
        if threading.active_count() >= limit:
            raise RuntimeError("can't start new thread")
        start(thread)

    threading.Thread.start = limited_start  # type: ignore[method-assign,assignment]


def gate_factory() -> Gate:
    """Called in the worker process, where the limit must hold."""
    limit = os.environ.get(LIMIT_ENV)
    if limit is None:
        return Gate(thread_factory=UnstartableThread)
    limit_threads(int(limit))
    return Gate()


def main() -> None:
    Server.from_args(build_parser().parse_args(), gate_factory=gate_factory).run()


if __name__ == "__main__":
    main()
