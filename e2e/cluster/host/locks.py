"""One holder at a time: an exclusive file lock that says when it has to wait for another.

The kind provider's `up`/`down` (one daemon and one cluster on one machine) and the Go
builds (one cache shared by several test sessions) each take one. The lock file stays,
so that it remains a lock for the next comer.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("e2e.host.locks")


@contextlib.contextmanager
def exclusive(path: Path, waiting_for: str) -> Iterator[None]:
    """Hold ``path`` locked for the block; log once, naming ``waiting_for``, if it is held."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for %s (%s)", waiting_for, path)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def turn(path: Path, *, alone: bool, waiting_for: str) -> Iterator[None]:
    """A turn on what ``path`` guards: shared with other holders, or ``alone``.

    A holder that needs it alone waits for the shared holders there are, and none comes in
    after it: every comer passes a gate (``path`` + ".gate") that the one waiting to be alone
    keeps shut while it waits. Without the gate, shared turns that overlap end to end (three
    xdist workers, scenario after scenario) would keep it waiting until the session's end.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = fcntl.LOCK_EX if alone else fcntl.LOCK_SH
    with path.open("a") as lock:
        with exclusive(path.with_name(path.name + ".gate"), waiting_for):
            try:
                fcntl.flock(lock, mode | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("waiting for %s (%s)", waiting_for, path)
                fcntl.flock(lock, mode)
        yield
