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
