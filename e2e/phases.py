"""Where a session's time went: cluster up, images, then each test's installs and upgrades."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

SESSION = "session"


class Phases:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, float]] = []
        self._group = SESSION

    def add(self, name: str, seconds: float) -> None:
        self.rows.append((self._group, name, seconds))

    @contextmanager
    def measure(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.add(name, time.monotonic() - started)

    @contextmanager
    def group(self, name: str) -> Iterator[None]:
        """Phases added inside the block are reported under ``name`` (a test's name)."""
        outer, self._group = self._group, name
        try:
            yield
        finally:
            self._group = outer

    def to_json(self) -> list[dict[str, object]]:
        """The rows as ``phases.json`` holds them (read by ``python -m e2e.summary``)."""
        return [
            {"group": group, "phase": name, "seconds": round(seconds, 3)}
            for group, name, seconds in self.rows
        ]

    def report(self) -> str:
        if not self.rows:
            return "no phases recorded"
        width = max(len(name) for _, name, _ in self.rows) + 2
        lines: list[str] = []
        groups = list(dict.fromkeys(group for group, _, _ in self.rows))
        for group in groups:
            lines.append(group)
            lines += [
                f"  {name:<{width}}{seconds:7.1f} s" for g, name, seconds in self.rows if g == group
            ]
        return "\n".join(lines)
