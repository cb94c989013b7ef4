"""``python -m upgrade_gate.hook`` (or ``upgrade-gate-hook``): ``wait`` is the pre-upgrade
hook, ``release`` lifts the fences on the pods an upgrade or rollback left running.

Exit codes of ``wait``: 0 every pod idle (or none exist), 1 not idle by the
deadline, or at once a pod's app lacking ``/drain`` or ``/upgradeable`` (404/405;
fences released), 2 bad usage, 3 forbidden by RBAC, 4 something the
hook did not foresee (fences released; a Job may retry), 143 terminated by
SIGTERM or SIGINT (fences released; a Job may retry). ``release`` exits 0
even when a pod cannot be reached or the pods cannot be listed within its
``--timeout`` (the fences run out with their lease), 2 on bad usage, 3 when
forbidden.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import socket
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

from upgrade_gate import logs
from upgrade_gate.config import TOKEN_ENV, ConfigError, read_token

if TYPE_CHECKING:
    from upgrade_gate.hook.pods import PodSource

log = logging.getLogger("upgrade_gate.cli")
# An object's name, as the API server takes it (RFC 1123 subdomain).
_DNS_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
MIN_POLL, MAX_POLL = 0.5, 60.0


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


def _poll(text: str) -> float:
    value = _positive(text)
    if not MIN_POLL <= value <= MAX_POLL:
        raise argparse.ArgumentTypeError(
            f"must be between {MIN_POLL:g} and {MAX_POLL:g} seconds (the app's longest "
            f"long-poll): {text!r}"
        )
    return value


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    return int(text)


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) < 65536:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="upgrade-gate-hook", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    wait = sub.add_parser(
        "wait",
        help="hold an upgrade until every pod is idle (the pre-upgrade hook)",
        description="Fence every pod of the release, wait until all are idle, or fail safe.",
    )
    _pod_options(wait)
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
        type=_poll,
        default=10.0,
        help=f"longest single long-poll in seconds, {MIN_POLL:g} to {MAX_POLL:g} (the app's limit)",
    )
    wait.add_argument(
        "--replicas",
        type=_count,
        help="with --template-hash: the replicas the upgrade keeps (more pods on the new "
        "template than this are gated too: a scale-down removes some)",
    )
    wait.add_argument(
        "--no-fence",
        dest="fence",
        action="store_false",
        help="only wait, do not fence (for apps without /drain)",
    )

    release = sub.add_parser(
        "release",
        help="lift the fences on pods that stay (the post-rollback hook)",
        description="Lift the fence on every pod of the release that runs --template-hash "
        "(the pods a rollback or an upgrade keeps), so they take work again at once.",
    )
    _pod_options(release)
    release.add_argument(
        "--timeout",
        type=_non_negative,
        default=30.0,
        help="how long to retry listing the pods when the API server is away; then exit 0, "
        "as the fences run out with their lease (default: 30)",
    )
    return parser


def _pod_options(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--selector", "-l", help="label selector of the release's pods (Kubernetes mode)"
    )
    where.add_argument("--endpoints", help="static pods as host:port,host:port (no Kubernetes API)")
    where.add_argument(
        "--endpoints-file",
        type=Path,
        help="static pods, one host:port per line, re-read during the wait",
    )
    parser.add_argument(
        "--namespace", "-n", help="default: the service account's namespace, else the kubeconfig's"
    )
    parser.add_argument(
        "--port",
        default="http",
        help="the app's container port, by number or name (default: http); several, comma-"
        "separated, are tried in order for each pod: management,http",
    )
    parser.add_argument("--kubeconfig", help="default: in-cluster config, else ~/.kube/config")
    parser.add_argument(
        "--template-hash",
        help="the pod template the upgrade rolls out (the chart's upgrade-gate/template-hash "
        "annotation): wait skips pods already on it, release lifts fences only on them",
    )
    parser.add_argument(
        "--template-from",
        metavar="CONFIGMAP",
        help="read --template-hash and --replicas from this ConfigMap's data (template-hash, "
        "replicas, revision), which a parent chart renders as a hook; none there: every pod "
        "counts, as without --template-hash",
    )
    parser.add_argument(
        "--template-revision",
        type=_count,
        help="with --template-from: the Helm revision the ConfigMap must be of; another "
        "(left by an upgrade that failed) counts as none",
    )
    parser.add_argument(
        "--token-env",
        default=TOKEN_ENV,
        help="environment variable holding the drain token; NAME_FILE, when set, names a "
        "file holding it instead (a mounted Secret)",
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.setup(os.environ.get("LOG_LEVEL", "INFO").upper())
    try:
        return _wait(args) if args.command == "wait" else _release(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def run(argv: list[str] | None = None) -> NoReturn:
    """``main``, then exit at once: what ``python -m`` and the console script run."""
    code = main(argv)
    # The pod threads may still sit in long-polls; interpreter teardown would
    # cost ~40 ms of Helm's time for nothing, as nothing is left to clean.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _usage(args: argparse.Namespace, message: str) -> int:
    print(f"upgrade-gate-hook {args.command}: error: {message}", file=sys.stderr)
    return 2  # Exit.USAGE, without importing the hook for it


def _token(args: argparse.Namespace) -> str | None:
    """The drain token as the app reads it (``$NAME_FILE``, else ``$NAME``); absent is none."""
    return read_token(os.environ, args.token_env, missing_ok=True)


def _source(args: argparse.Namespace) -> PodSource:
    """The pod source the arguments name; ValueError or SourceError if they cannot work."""
    from upgrade_gate.hook.pods import FileSource, KubernetesSource, StaticSource, parse_endpoint

    if args.endpoints is not None:
        pods = [parse_endpoint(e) for e in args.endpoints.split(",") if e.strip()]
        if not pods:
            raise ValueError(f"--endpoints names no host:port: {args.endpoints!r}")
        return StaticSource(pods)
    if args.endpoints_file:
        return FileSource(args.endpoints_file)
    if not args.selector:
        raise ValueError("one of --selector, --endpoints, --endpoints-file is required")
    if args.template_from is not None:
        if args.template_hash is not None or getattr(args, "replicas", None) is not None:
            raise ValueError(
                "--template-from gives the template hash and the replicas: not "
                "with --template-hash or --replicas"
            )
        if len(args.template_from) > 253 or not _DNS_NAME.fullmatch(args.template_from):
            raise ValueError(f"--template-from is not a ConfigMap name: {args.template_from!r}")
    elif args.template_revision is not None:
        raise ValueError("--template-revision goes with --template-from")
    return KubernetesSource(
        args.selector,
        args.port,
        args.namespace,
        args.kubeconfig,
        template_hash=args.template_hash,
        replicas=getattr(args, "replicas", None),
        template_from=args.template_from,
        template_revision=args.template_revision,
    )


def _wait(args: argparse.Namespace) -> int:
    from upgrade_gate.hook import Exit, Options, Waiter
    from upgrade_gate.hook.pods import SourceError
    from upgrade_gate.hook.wait import exit_for

    if args.fence and args.lease <= args.poll / 2:
        return _usage(args, f"--lease ({args.lease:g}s) must exceed half of --poll")
    try:
        token = _token(args)
        source = _source(args)
    except ValueError as exc:
        return _usage(args, str(exc))
    except SourceError as exc:
        log.error("%s", exc)
        return exit_for(exc)

    if args.fence and token is None:
        log.warning(
            "no token in $%s or $%s_FILE: pods will refuse the fence",
            args.token_env,
            args.token_env,
        )
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


def _release(args: argparse.Namespace) -> int:
    from upgrade_gate.hook import Exit
    from upgrade_gate.hook.pods import (
        ForbiddenError,
        KubernetesSource,
        MisconfiguredError,
        Pod,
        SourceError,
        list_within,
    )
    from upgrade_gate.hook.release import release_fences
    from upgrade_gate.hook.wait import exit_for

    try:
        token = _token(args)
        source = _source(args)
    except ValueError as exc:
        return _usage(args, str(exc))
    except SourceError as exc:
        log.error("%s", exc)
        return exit_for(exc)

    def listing() -> list[Pod]:
        if isinstance(source, KubernetesSource):
            return source.staying_pods()
        return source.list_pods()

    deadline = time.monotonic() + args.timeout
    pause = 0.25
    while True:
        try:
            pods = list_within(listing, deadline)
            break
        except (ForbiddenError, MisconfiguredError) as exc:
            log.error("%s", exc)
            return exit_for(exc)
        except SourceError as exc:
            # The API server away for a moment must not fail the rollback: retry
            # until the deadline, then give up. Nothing is lost: the fences this
            # would lift run out with their lease.
            left = deadline - time.monotonic()
            if left <= 0:
                log.warning(
                    "could not list the pods within %gs (%s); fences left in place "
                    "run out with their lease",
                    args.timeout,
                    exc,
                )
                return Exit.OK
            if pause == 0.25:
                log.warning("%s; retrying for up to %gs", exc, args.timeout)
            time.sleep(min(pause, left))  # nothing to wait on but the API server
            pause = min(pause * 2, 2.0)
    log.info("%s", release_fences(pods, token, f"release/{socket.gethostname()}"))
    return Exit.OK
