"""Where a session's time went: cluster up, images, then each test's installs and upgrades.

With pytest-xdist each worker process keeps its own :class:`Phases`; the controller merges
their rows (:meth:`Phases.extend`) and prints one table. Session rows name their worker
(``cluster up (kind) [gw1]``): each worker has its own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

SESSION = "session"


class Phases:
    def __init__(self, worker: str | None = None) -> None:
        self.rows: list[tuple[str, str, float]] = []
        self.worker = worker
        self._group = SESSION

    def add(self, name: str, seconds: float) -> None:
        if self.worker is not None and self._group == SESSION:
            name = f"{name} [{self.worker}]"
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
            for group, name, seconds in self.ordered()
        ]

    def extend(self, rows: list[dict[str, object]]) -> None:
        """Add another process's rows, as :meth:`to_json` gave them (an xdist worker's)."""
        self.rows += [
            (str(row["group"]), str(row["phase"]), float(str(row["seconds"]))) for row in rows
        ]

    def ordered(self) -> list[tuple[str, str, float]]:
        """The rows by group, the session's first (whichever worker sent them)."""
        groups = list(dict.fromkeys([SESSION, *(group for group, _, _ in self.rows)]))
        return [row for group in groups for row in self.rows if row[0] == group]

    def report(self) -> str:
        if not self.rows:
            return "no phases recorded"
        width = max(len(name) for _, name, _ in self.rows) + 2
        lines: list[str] = []
        group = None
        for row_group, name, seconds in self.ordered():
            if row_group != group:
                group = row_group
                lines.append(group)
            lines.append(f"  {name:<{width}}{seconds:7.1f} s")
        return "\n".join(lines)
