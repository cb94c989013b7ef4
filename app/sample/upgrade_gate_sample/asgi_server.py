"""Serve the ASGI sample app with uvicorn: one process, one event loop.

``python -m upgrade_gate_sample serve --server uvicorn`` takes the same
arguments as under gunicorn. With ``--management-port`` a second uvicorn
server on the same event loop serves the control endpoints; its long-polls
wait in ``--management-threads`` threads of their own. Under uvicorn requests
run on the event loop, and ``--threads`` sizes what long-polls may hold, as
under gunicorn (the same caps, the same ``LONG_POLL_LIMIT``).

SIGTERM: the gate refuses new work, both servers keep answering, and when
every operation has finished (or ``shutdown_timeout`` passed) both begin
uvicorn's graceful stop, and the process exits 0. SIGINT stops at once
(long-polls answered first), as gunicorn's quick stop does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from typing import Any, Self

import uvicorn

from upgrade_gate import Gate
from upgrade_gate_sample.asgi import create_app, create_management_app
from upgrade_gate_sample.settings import Settings
from upgrade_gate_sample.shutdown import drain_when_asked

log = logging.getLogger("upgrade_gate_sample.server")

# Once the work is done, what requests still run (long-polls end with the shutdown) get
# this long before uvicorn cancels them.
GRACEFUL_SECONDS = 10


class _Listener(uvicorn.Server):
    """A uvicorn server that leaves the signals to :class:`AsgiServer`: uvicorn's own
    handlers would stop it at once and raise the signal again when it ends."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class AsgiServer:
    """The app on ``port`` and, with ``management_port``, the control endpoints on theirs."""

    def __init__(
        self,
        host: str,
        port: int,
        threads: int,
        access_log: bool,
        management_port: int | None = None,
        management_threads: int = 4,
    ) -> None:
        self.settings = Settings.from_env(threads=threads)
        self.gate = Gate(max_background=self.settings.operation_limit)
        apps = [(port, create_app(self.settings, self.gate))]
        if management_port is not None:
            management = create_management_app(self.settings, self.gate, management_threads)
            apps.append((management_port, management))
        self.listeners = [
            _Listener(
                uvicorn.Config(
                    app,
                    host=host,
                    port=p,
                    lifespan="off",
                    log_config=None,  # the root logger's format (upgrade_gate.logs)
                    access_log=access_log,
                    timeout_keep_alive=5,
                    timeout_graceful_shutdown=GRACEFUL_SECONDS,
                )
            )
            for p, app in apps
        ]

    @classmethod
    def from_args(cls, args: Any) -> Self:
        """The server ``python -m upgrade_gate_sample serve``'s arguments (``cli.py``) describe."""
        return cls(
            args.host,
            args.port,
            args.threads,
            args.access_log,
            management_port=args.management_port,
            management_threads=args.management_threads,
        )

    def run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()

        def stop() -> None:
            for listener in self.listeners:
                if listener.should_exit:  # a second stop: do not wait for anything
                    listener.force_exit = True
                listener.should_exit = True

        asked = drain_when_asked(
            self.gate, self.settings.shutdown_timeout, lambda: loop.call_soon_threadsafe(stop)
        )

        def on_sigterm() -> None:
            if not asked.is_set():
                self.gate.begin_shutdown()
                asked.set()

        def on_sigint() -> None:
            # The quick stop: long-polls answer now rather than hold the exit.
            self.gate.begin_shutdown()
            stop()

        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
        loop.add_signal_handler(signal.SIGINT, on_sigint)
        await asyncio.gather(*(listener.serve() for listener in self.listeners))
