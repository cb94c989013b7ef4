"""Serve the sample app with gunicorn: one process, many threads.

One worker process is deliberate: the gate's state must be the pod's state,
and a second process would hold a second, disagreeing gate.

SIGTERM (what Kubernetes sends) does not stop the worker at once: the gate
refuses new work, the worker keeps answering status queries, and only when
every operation has finished (or ``shutdown_timeout`` passed) does the worker
begin gunicorn's own graceful stop.

Long-polls hold a request thread each, so they are capped below ``threads``
(see :class:`upgrade_gate.flask.LongPollLimits`); the worker class
(:mod:`upgrade_gate_sample.worker`) keeps silent or surplus connections from holding threads
or the accept loop, and answers gunicorn's own errors in JSON.
"""

from __future__ import annotations

import logging
import math
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any, Self

from flask import Flask
from gunicorn.app.base import BaseApplication

from upgrade_gate import Gate, logs
from upgrade_gate.flask import EXTENSION_KEY
from upgrade_gate_sample import create_app, create_management_app
from upgrade_gate_sample.settings import Settings
from upgrade_gate_sample.shutdown import drain_when_asked

log = logging.getLogger("upgrade_gate_sample.server")


class Listeners:
    """The WSGI app of each listening port: the management port serves its own app
    (the control endpoints), every other port the main one. The worker gives
    the management port's requests threads of their own (:mod:`upgrade_gate_sample.worker`)."""

    def __init__(self, main: Flask, management: Flask, management_port: int, threads: int) -> None:
        self.main = main
        self.management = management
        self.management_port = management_port
        self.management_threads = threads
        self._port_text = str(management_port)

    @property
    def config(self) -> Any:
        return self.main.config

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        # gunicorn sets SERVER_PORT from the listening socket, not from the Host header.
        app = self.management if environ.get("SERVER_PORT") == self._port_text else self.main
        return app(environ, start_response)


def _main_app(worker: Any) -> Flask:
    wsgi = worker.wsgi
    return wsgi.main if isinstance(wsgi, Listeners) else wsgi


def _gate(worker: Any) -> Gate:
    gate: Gate = _main_app(worker).extensions[EXTENSION_KEY].gate
    return gate


def _install_drain_on_sigterm(worker: Any) -> None:
    flask_app: Flask = _main_app(worker)
    gate = _gate(worker)
    bound: float = flask_app.config["SETTINGS"].shutdown_timeout
    asked = drain_when_asked(gate, bound, lambda: worker.handle_exit(signal.SIGTERM, None))

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        if asked.is_set():
            return
        gate.begin_shutdown()
        asked.set()

    signal.signal(signal.SIGTERM, on_sigterm)


def _release_long_polls_on_quick_stop(worker: Any) -> None:
    # SIGINT/SIGQUIT stop the worker at once, but the interpreter's exit joins
    # the request threads: a long-poll would hold the exit for up to its wait.
    _gate(worker).begin_shutdown()


class Server(BaseApplication):  # type: ignore[misc]
    """``gate_factory`` makes the worker's gate (in the worker, so a restarted
    worker gets a new one); tests use it to give the gate a thread factory."""

    def __init__(
        self,
        host: str,
        port: int,
        threads: int,
        access_log: bool,
        gate_factory: Callable[[], Gate] | None = None,
        management_port: int | None = None,
        management_threads: int = 4,
    ) -> None:
        self.settings = Settings.from_env(threads=threads)
        limit = self.settings.operation_limit
        self.gate_factory = gate_factory or (lambda: Gate(max_background=limit))
        self.management_port = management_port
        self.management_threads = management_threads
        ports = [port] if management_port is None else [port, management_port]
        self.options: dict[str, Any] = {
            "bind": [f"[{host}]:{p}" if ":" in host else f"{host}:{p}" for p in ports],
            "workers": 1,
            "worker_class": "upgrade_gate_sample.worker.Worker",  # gthread, see worker.py
            "threads": threads,
            # gunicorn's default, said out loud: connections open at once,
            # idle ones included; upgrade_gate_sample.worker closes the longest-idle one
            # rather than stop accepting at this limit.
            "worker_connections": 1000,
            # The master must outwait the worker's drain, or it would SIGKILL
            # the worker while operations still run.
            "graceful_timeout": math.ceil(self.settings.shutdown_timeout) + 10,
            "timeout": 60,
            "keepalive": 5,
            "logconfig_dict": logs.dict_config(access_log=access_log),
            "accesslog": "-" if access_log else None,
            "post_worker_init": _install_drain_on_sigterm,
            "worker_int": _release_long_polls_on_quick_stop,
            # Heartbeat files in memory: the root filesystem is read-only.
            "worker_tmp_dir": "/dev/shm",  # noqa: S108 (a tmpfs, not shared scratch)
            "proc_name": "upgrade-gate-app",
            # gunicorn 24+ opens a control socket under $HOME; nothing here uses it.
            "control_socket_disable": True,
        }
        super().__init__()

    @classmethod
    def from_args(cls, args: Any, gate_factory: Callable[[], Gate] | None = None) -> Self:
        """The server ``python -m upgrade_gate_sample serve``'s arguments (``cli.py``) describe."""
        return cls(
            args.host,
            args.port,
            args.threads,
            args.access_log,
            gate_factory=gate_factory,
            management_port=args.management_port,
            management_threads=args.management_threads,
        )

    def load_config(self) -> None:
        for key, value in self.options.items():
            if value is not None:
                self.cfg.set(key, value)

    def load(self) -> Flask | Listeners:
        gate = self.gate_factory()
        main = create_app(self.settings, gate)
        if self.management_port is None:
            return main
        management = create_management_app(self.settings, gate, self.management_threads)
        return Listeners(main, management, self.management_port, self.management_threads)
