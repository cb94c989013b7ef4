"""Which cluster ci/test and ci/demo use: the one named, else the one this machine can run.

    python -m e2e.clusterchoice [ARGS...]   # prints local or kind; says why on stderr

A cluster named with ``--cluster NAME`` among the arguments or ``$UPGRADE_GATE_CLUSTER`` is
used as it is. Otherwise: the local cluster where we are root and apt-get is at hand (it
installs Debian packages and runs kubelet, containerd and iptables itself); else kind where a
Docker daemon answers and kind is at hand (``$UPGRADE_GATE_KIND``, on PATH, or Go to build
it from its module): a developer's laptop; else the local cluster, whose own errors say what
it lacks. Standard library only: ci/ runs it before any virtualenv has the harness's needs.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from e2e.builds.docker import environment_daemon

NAMES = ("local", "kind", "existing")


@dataclass(frozen=True)
class Host:
    """What the choice depends on."""

    root: bool
    apt_get: bool
    docker: bool  # a Docker daemon answers (DOCKER_HOST or the default socket)
    kind: str | None  # how kind is at hand, or None


@dataclass(frozen=True)
class Choice:
    provider: str
    reason: str

    def line(self) -> str:
        return f"cluster: {self.provider} ({self.reason})"


def named(args: Sequence[str], environ: Mapping[str, str]) -> Choice | None:
    """The cluster the arguments (last ``--cluster`` wins, as in argparse) or env name."""
    given: str | None = None
    for index, arg in enumerate(args):
        if arg == "--cluster" and index + 1 < len(args):
            given = args[index + 1]
        elif arg.startswith("--cluster="):
            given = arg.split("=", 1)[1]
    if given is not None:
        return Choice(given, "named with --cluster")
    if environ.get("UPGRADE_GATE_CLUSTER"):
        return Choice(environ["UPGRADE_GATE_CLUSTER"], "named by $UPGRADE_GATE_CLUSTER")
    return None


def choose(host: Host) -> Choice:
    """The provider this host can run, with the reason in a few words."""
    if host.root and host.apt_get:
        return Choice("local", "root and apt-get: the local cluster, built here")
    lacking = " and ".join(
        what for what, present in (("root", host.root), ("apt-get", host.apt_get)) if not present
    )
    if host.docker and host.kind:
        return Choice("kind", f"no {lacking} for the local cluster; Docker answers, {host.kind}")
    missing = [
        what
        for what, present in (("no Docker daemon answers", host.docker), ("no kind", host.kind))
        if not present
    ]
    return Choice("local", f"no {lacking} for the local cluster, and {', '.join(missing)}")


def look(environ: Mapping[str, str] | None = None) -> Host:
    """This machine, as :func:`choose` needs it."""
    environ = os.environ if environ is None else environ
    path = environ.get("PATH")
    kind: str | None = None
    if environ.get("UPGRADE_GATE_KIND"):
        kind = f"kind from $UPGRADE_GATE_KIND ({environ['UPGRADE_GATE_KIND']})"
    elif found := shutil.which("kind", path=path):
        kind = f"kind at {found}"
    elif found := shutil.which("go", path=path):
        kind = f"kind built from its Go module with {found}"
    return Host(
        root=os.geteuid() == 0,
        apt_get=shutil.which("apt-get", path=path) is not None,
        docker=environment_daemon() is not None,
        kind=kind,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    choice = named(args, os.environ) or choose(look())
    if choice.provider not in NAMES:
        print(f"cluster: {choice.provider!r} is not one of {', '.join(NAMES)}", file=sys.stderr)
        return 2
    print(choice.line(), file=sys.stderr)
    print(choice.provider)
    return 0


if __name__ == "__main__":
    sys.exit(main())
