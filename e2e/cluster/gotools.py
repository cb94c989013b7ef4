"""Pinned Go tools, built from their Go modules: actionlint (``tox -e lint``), kind (CI), act
(``ci/rehearse``, which runs the GitHub workflows here) and cosign (release.yml).

kind is pinned and built in one place, e2e/cluster/builds/kind.py, for this command and the kind
provider alike (``<cache>/kind/<version>/bin/kind``); the rest as follows.

``go install <package>@<version>`` with ``GOBIN`` in a hidden staging folder, then renamed
to ``${XDG_CACHE_HOME:-~/.cache}/upgrade-gate/go-tools/<name>-<version>/<name>``: a folder
with the final name is always complete, and a tool is built once per version. The sources
come from the Go module proxy, checked against the checksum database (``GOSUMDB``), so no
release binary is downloaded and nothing unverified is built. A file lock serializes
concurrent builders. ``$UPGRADE_GATE_<NAME>`` (e.g. ``UPGRADE_GATE_ACTIONLINT``) names your
own binary instead.

    python -m e2e.cluster.gotools path kind            # build if needed, print the path
    python -m e2e.cluster.gotools run actionlint -- -color
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from e2e.cluster.base import ClusterError, Progress, cache_root
from e2e.cluster.builds.kind import KIND_MODULE, KIND_VERSION, build_kind
from e2e.cluster.host.locks import exclusive

PROBE_TIMEOUT = 30.0


class GoToolError(ClusterError):
    """A tool cannot be built or run; the message says what to do."""


@dataclass(frozen=True)
class GoTool:
    name: str
    package: str
    version: str
    version_args: tuple[str, ...]
    # What `version_args` prints of the version, where it is not `version` itself.
    reports: str | None = None

    @property
    def env(self) -> str:
        return f"UPGRADE_GATE_{self.name.upper()}"

    @property
    def dirname(self) -> str:
        return f"{self.name}-{self.version}"


ACTIONLINT = GoTool(
    "actionlint", "github.com/rhysd/actionlint/cmd/actionlint", "v1.7.12", ("-version",)
)
# act runs the workflows in .github/workflows on this host, as GitHub's runner would.
ACT = GoTool("act", "github.com/nektos/act", "v0.2.89", ("--version",), reports="0.2.89")
# cosign signs a release's image and chart (release.yml), keyless, with GitHub's OIDC token.
COSIGN = GoTool("cosign", "github.com/sigstore/cosign/v3/cmd/cosign", "v3.1.3", ("version",))
# kind: e2e/cluster/builds/kind.py pins it (the version whose kindest/node images CI pins).
KIND = GoTool("kind", KIND_MODULE, KIND_VERSION, ("version",))
TOOLS = {tool.name: tool for tool in (ACTIONLINT, ACT, COSIGN, KIND)}


def tools_dir() -> Path:
    return cache_root() / "go-tools"


def path(name: str, root: Path | None = None) -> Path:
    """The tool's binary, built first if it is not there yet."""
    tool = _tool(name)
    override = os.environ.get(tool.env)
    if override:
        found = shutil.which(override)
        if found is None:
            raise GoToolError(f"{tool.env}={override}: not an executable")
        return Path(found)
    if tool is KIND:
        # The kind provider's build: one binary per version, whoever asks first builds it.
        if shutil.which("go") is None:
            raise GoToolError("kind: `go` is not on PATH (Go 1.24 or newer builds it)")
        try:
            return build_kind(cache_root(), Progress("kind", sys.stderr)).path
        except ClusterError as exc:
            raise GoToolError(str(exc)) from exc
    root = root or tools_dir()
    binary = root / tool.dirname / tool.name
    if _usable(tool, binary):
        return binary
    root.mkdir(parents=True, exist_ok=True)
    with exclusive(root / ".lock", "another build of a Go tool"):
        if not _usable(tool, binary):  # another builder may have finished meanwhile
            _build(tool, root)
    return binary


def _build(tool: GoTool, root: Path) -> None:
    go = shutil.which("go")
    if go is None:
        raise GoToolError(f"{tool.name}: `go` is not on PATH (Go 1.24 or newer builds it)")
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{tool.dirname}-"))
    try:
        staging.chmod(0o755)
        env = {
            **os.environ,
            "GOBIN": str(staging),
            "CGO_ENABLED": "0",
            "GOFLAGS": "-trimpath",
            "GOWORK": "off",
        }
        print(f"building {tool.package}@{tool.version}", file=sys.stderr, flush=True)
        result = subprocess.run(
            [go, "install", "-ldflags=-s -w", f"{tool.package}@{tool.version}"],
            cwd=staging,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise GoToolError(
                f"go install {tool.package}@{tool.version} failed:\n{result.stderr[-3000:]}"
            )
        if not _usable(tool, staging / tool.name):
            raise GoToolError(f"{tool.name} built, but does not report {tool.version}")
        final = root / tool.dirname
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _usable(tool: GoTool, binary: Path) -> bool:
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        return False
    try:
        result = subprocess.run(
            [str(binary), *tool.version_args],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and (tool.reports or tool.version) in result.stdout


def _tool(name: str) -> GoTool:
    try:
        return TOOLS[name]
    except KeyError:
        raise GoToolError(f"unknown tool {name!r}; known: {', '.join(TOOLS)}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m e2e.cluster.gotools",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    path_cmd = sub.add_parser("path", help="build the tool if needed, print its path")
    path_cmd.add_argument("tool", choices=sorted(TOOLS))
    run_cmd = sub.add_parser("run", help="build the tool if needed, run it with the arguments")
    run_cmd.add_argument("tool", choices=sorted(TOOLS))
    run_cmd.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    try:
        binary = path(args.tool)
    except GoToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.command == "path":
        print(binary)
        return 0
    extra = args.args[1:] if args.args[:1] == ["--"] else args.args
    return subprocess.run([str(binary), *extra], check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
