"""Where a session's time went: cluster up, images, installs, upgrades."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class Phases:
    def __init__(self) -> None:
        self.rows: list[tuple[str, float]] = []

    def add(self, name: str, seconds: float) -> None:
        self.rows.append((name, seconds))

    @contextmanager
    def measure(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.add(name, time.monotonic() - started)

    def report(self) -> str:
        if not self.rows:
            return "no phases recorded"
        width = max(len(name) for name, _ in self.rows)
        return "\n".join(f"{name:<{width}}  {seconds:7.1f} s" for name, seconds in self.rows)
