"""The bottom of the cluster package: its one error, its progress lines, where it keeps things.

Every layer above (host, builds, tools, providers) imports from here and never the other way.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

log = logging.getLogger("e2e.cluster")


class ClusterError(RuntimeError):
    """The cluster machinery could not do what it was asked; the message says why and where to
    look. A failed command's error names the command (``command``) and carries the tail of
    what it printed or logged (``log_tail``)."""

    def __init__(self, message: str, *, command: str | None = None, log_tail: str = "") -> None:
        super().__init__(message)
        self.command = command
        self.log_tail = log_tail


def cache_root() -> Path:
    """Where built binaries, images and cluster state live: outside the repository."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "upgrade-gate"


@dataclass
class PhaseNote:
    """What a phase's line says after its duration (e.g. "cached" or "built")."""

    detail: str = ""


class Progress:
    """One line per finished phase, with its duration and the time since the start.

    The lines go to stdout (or the given stream) so that a person running `up` sees where the
    time goes; the detail of each phase goes to the logger.
    """

    def __init__(self, prefix: str, stream: TextIO | None = None) -> None:
        self._prefix = prefix
        self._stream = stream if stream is not None else sys.stdout
        self._started = time.monotonic()
        self.timings: list[tuple[str, float]] = []

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def line(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        print(
            f"{stamp} [{self.elapsed():6.1f}s] {self._prefix}: {text}",
            file=self._stream,
            flush=True,
        )

    @contextmanager
    def phase(self, name: str, detail: str = "") -> Iterator[PhaseNote]:
        """Time the block; its line ends with the note's detail, which the block may set."""
        started = time.monotonic()
        note = PhaseNote(detail)
        log.info("phase %s: started", name)
        try:
            yield note
        except BaseException:
            took = time.monotonic() - started
            self.line(f"{name} FAILED after {took:.1f}s")
            raise
        took = time.monotonic() - started
        self.timings.append((name, took))
        suffix = f" ({note.detail})" if note.detail else ""
        self.line(f"{name} done in {took:.1f}s{suffix}")


@dataclass(frozen=True)
class Action:
    """One named step of a set-up or a teardown (kind calls them actions); what it returns is
    the note on its line."""

    name: str
    run: Callable[[], str | None]


def run_actions(progress: Progress, actions: Sequence[Action]) -> None:
    """Each action in order, timed on a line of its own; the first that fails ends the list."""
    for action in actions:
        with progress.phase(action.name) as note:
            note.detail = action.run() or ""


def free_port() -> int:
    """A TCP port free on the host's loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
