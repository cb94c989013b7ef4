"""``python -m upgrade_gate_sample serve``: the sample app under gunicorn (or uvicorn)."""

from __future__ import annotations

import argparse
import os
import sys

from upgrade_gate import logs
from upgrade_gate.config import ConfigError


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    return int(text)


def _port(text: str) -> int:
    port = _count(text) if text.isdigit() else -1
    if not 0 <= port < 65536:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m upgrade_gate_sample", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the sample app with gunicorn (or uvicorn)")
    serve.add_argument(
        "--server",
        choices=["gunicorn", "uvicorn"],
        default="gunicorn",
        help="gunicorn: the Flask app, one process with threads (the default); uvicorn: the "
        "Starlette app (pip install 'upgrade-gate-sample[asgi]')",
    )
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=_port, default=8080)
    serve.add_argument(
        "--threads", type=int, default=32, help="request threads (long-polls hold one each)"
    )
    serve.add_argument(
        "--management-port",
        type=_port,
        help="also serve the control endpoints (probes, /upgradeable, /drain, /metrics) on this "
        "port, with threads of their own that the app's traffic cannot take",
    )
    serve.add_argument(
        "--management-threads",
        type=_count,
        default=4,
        help="the management port's request threads (default 4; long-polls hold one each)",
    )
    serve.add_argument("--access-log", action="store_true")

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.setup(os.environ.get("LOG_LEVEL", "INFO").upper())
    if args.management_port is not None and args.management_port in (0, args.port):
        return _usage("--management-port must be a port of its own, not 0")
    if args.management_threads < 2:
        return _usage("--management-threads must be at least 2")
    try:
        if args.server == "uvicorn":
            from upgrade_gate_sample.asgi_server import AsgiServer

            AsgiServer.from_args(args).run()
        else:
            from upgrade_gate_sample.server import Server

            Server.from_args(args).run()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _usage(message: str) -> int:
    print(f"python -m upgrade_gate_sample serve: error: {message}", file=sys.stderr)
    return 2
