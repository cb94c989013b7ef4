"""SIGTERM's drain, whatever the server: refuse new work, wait for the running work.

The server (gunicorn's worker in :mod:`upgrade_gate_sample.server`, uvicorn in
:mod:`upgrade_gate_sample.asgi_server`) calls :meth:`Gate.begin_shutdown` on
SIGTERM, keeps answering, and begins its own graceful stop when
:func:`wait_for_work` returns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from upgrade_gate import Gate

log = logging.getLogger("upgrade_gate_sample.server")


def wait_for_work(gate: Gate, bound: float) -> None:
    """Until no operation runs, or ``bound`` seconds; says which in the log."""
    started = time.monotonic()
    running = gate.status().running
    if running:
        log.info(
            "SIGTERM: waiting up to %gs for %d operation(s): %s",
            bound,
            len(running),
            ", ".join(running),
        )
    idle = gate.wait_idle(bound)
    log.info(
        "SIGTERM: %s after %.1fs, stopping the server",
        "all operations finished" if idle else "shutdown bound reached",
        time.monotonic() - started,
    )


def drain_when_asked(gate: Gate, bound: float, stop: Callable[[], object]) -> threading.Event:
    """A thread, started now, that drains once the returned event is set, then calls ``stop``.

    Started now, not on SIGTERM: under a thread limit a thread started then
    could be refused, and the server would never stop gracefully.
    """
    asked = threading.Event()

    def finish() -> None:
        asked.wait()
        wait_for_work(gate, bound)
        stop()

    threading.Thread(target=finish, name="shutdown", daemon=True).start()
    return asked
