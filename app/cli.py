"""``python -m app``: ``serve`` runs the sample app, ``wait`` is the pre-upgrade hook.

Exit codes of ``wait``: 0 every pod idle (or none exist), 1 not idle by the
deadline (fences released), 2 bad usage, 3 forbidden by RBAC, 143 terminated
by SIGTERM or SIGINT (fences released; a Job may retry).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from types import FrameType

from app import logs
from app.config import ConfigError

log = logging.getLogger("upgrade_gate.cli")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


def _non_negative(text: str) -> float:
    if text.strip() in ("0", "0.0"):
        return 0.0
    return _positive(text)


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) < 65536:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the sample app with gunicorn")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=_port, default=8080)
    serve.add_argument(
        "--threads", type=int, default=32, help="request threads (long-polls hold one each)"
    )
    serve.add_argument("--access-log", action="store_true")

    wait = sub.add_parser(
        "wait",
        help="hold an upgrade until every pod is idle (the pre-upgrade hook)",
        description="Fence every pod of the release, wait until all are idle, or fail safe.",
    )
    where = wait.add_mutually_exclusive_group()
    where.add_argument(
        "--selector", "-l", help="label selector of the release's pods (Kubernetes mode)"
    )
    where.add_argument("--endpoints", help="static pods as host:port,host:port (no Kubernetes API)")
    where.add_argument(
        "--endpoints-file",
        type=Path,
        help="static pods, one host:port per line, re-read during the wait",
    )
    wait.add_argument(
        "--namespace", "-n", help="default: the service account's namespace, else the kubeconfig's"
    )
    wait.add_argument(
        "--port", default="http", help="the app's container port, by number or name (default: http)"
    )
    wait.add_argument("--kubeconfig", help="default: in-cluster config, else ~/.kube/config")
    wait.add_argument(
        "--timeout",
        type=_positive,
        default=300.0,
        help="deadline in seconds; then fences are released and the hook fails",
    )
    wait.add_argument(
        "--lease",
        type=_positive,
        default=30.0,
        help="fence lease in seconds, renewed every third of it",
    )
    wait.add_argument(
        "--hold",
        type=_non_negative,
        default=120.0,
        help="lease left on the old pods after success, to cover the rollout",
    )
    wait.add_argument(
        "--poll",
        type=_positive,
        default=10.0,
        help="longest single long-poll in seconds (the app allows up to 60)",
    )
    wait.add_argument(
        "--no-fence",
        dest="fence",
        action="store_false",
        help="only wait, do not fence (for apps without /drain)",
    )
    wait.add_argument(
        "--token-env",
        default="UPGRADE_GATE_TOKEN",
        help="environment variable holding the drain token",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.setup(os.environ.get("LOG_LEVEL", "INFO").upper())
    try:
        if args.command == "serve":
            from app.server import serve

            serve(args.host, args.port, threads=args.threads, access_log=args.access_log)
            return 0
        return _wait(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _wait(args: argparse.Namespace) -> int:
    from app.hook import Exit, Options, Waiter
    from app.hook.pods import (
        FileSource,
        KubernetesSource,
        PodSource,
        SourceError,
        StaticSource,
        parse_endpoint,
    )

    usage = "python -m app wait: error:"
    if not (args.selector or args.endpoints or args.endpoints_file):
        print(
            f"{usage} one of --selector, --endpoints, --endpoints-file is required", file=sys.stderr
        )
        return Exit.USAGE
    if args.fence and args.lease <= args.poll / 2:
        print(f"{usage} --lease ({args.lease:g}s) must exceed half of --poll", file=sys.stderr)
        return Exit.USAGE
    source: PodSource
    try:
        if args.endpoints:
            source = StaticSource([parse_endpoint(e) for e in args.endpoints.split(",") if e])
        elif args.endpoints_file:
            source = FileSource(args.endpoints_file)
        else:
            source = KubernetesSource(args.selector, args.port, args.namespace, args.kubeconfig)
    except ValueError as exc:
        print(f"{usage} {exc}", file=sys.stderr)
        return Exit.USAGE
    except SourceError as exc:
        log.error("%s", exc)
        return exc.exit_code

    token = os.environ.get(args.token_env) or None
    if args.fence and token is None:
        log.warning("no token in $%s: pods will refuse the fence", args.token_env)
    waiter = Waiter(
        source,
        Options(
            timeout=args.timeout,
            lease=args.lease,
            hold=args.hold,
            fence=args.fence,
            poll=args.poll,
            token=token,
            holder=f"hook/{socket.gethostname()}",
        ),
    )

    def on_signal(signum: int, frame: FrameType | None) -> None:
        waiter.terminate(f"received {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    outcome = waiter.run()
    (log.info if outcome.code == Exit.OK else log.error)("%s", outcome.summary)
    return int(outcome.code)
