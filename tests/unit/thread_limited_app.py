"""A real app server whose operation threads cannot start, as under a thread limit.

``python -m tests.unit.thread_limited_app serve --port N ...`` takes the same
arguments as ``python -m app serve``; the gate's thread factory answers every
``start()`` with the error CPython raises when the system refuses a thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.cli import build_parser
from app.gate import Gate
from app.server import Server


class UnstartableThread:
    def __init__(self, target: Callable[[], None], **kwargs: Any) -> None:
        self.target = target

    def start(self) -> None:
        raise RuntimeError("can't start new thread")


def main() -> None:
    args = build_parser().parse_args()
    Server(
        args.host,
        args.port,
        args.threads,
        args.access_log,
        gate_factory=lambda: Gate(thread_factory=UnstartableThread),
    ).run()


if __name__ == "__main__":
    main()
