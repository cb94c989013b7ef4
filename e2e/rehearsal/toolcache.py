"""A runner tool cache, so that `setup-python` and `setup-go` find what the workflows ask for
without downloading it, as on a GitHub runner image.

- **Python**: each version the workflows ask for (``3.11``) from the interpreters this machine
  has (pyenv's, under ``$PYENV_ROOT/versions``): copied without its site-packages, its tests
  or its bytecode, its pip put back with ``ensurepip``, and its library found next to it
  (``RUNPATH $ORIGIN/../lib``, with patchelf), since the copy must run for a user who cannot
  read pyenv's folder.
- **Go**: the newest patch release of each version asked for (``1.27``) from the Go toolchain
  module (``golang.org/toolchain``) on the Go module proxy, checked against the checksum
  database like any module.

Both are laid out as ``NAME/VERSION/x64`` with a ``x64.complete`` marker beside it, the layout
`@actions/tool-cache` finds. They are built once into the rehearsal's cache and copied into
the runner's tool cache for each rehearsal.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

from e2e.cluster.base import ClusterError
from e2e.cluster.host.commands import run

ARCH = "x64"
GO_TOOLCHAIN = "golang.org/toolchain"
GO_PLATFORM = "linux-amd64"


@dataclass(frozen=True)
class Tool:
    name: str  # Python, go
    version: str  # 3.11.7, 1.27.4
    source: str  # where it came from, for the rehearsal's output
    origin: Path | None = None  # the prefix it was built for, which its files name

    def folder(self, cache: Path) -> Path:
        return cache / self.name / self.version / ARCH

    def marker(self, cache: Path) -> Path:
        return cache / self.name / self.version / f"{ARCH}.complete"


def _newest(versions: list[str], asked: str) -> str | None:
    """The newest version that `asked` (``3.11``, ``1.27`` or exact) covers."""
    matching = [v for v in versions if v == asked or v.startswith(asked + ".")]
    return max(matching, key=_key, default=None)


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


# --- Python ---------------------------------------------------------------------------------
def pyenv_versions() -> dict[str, Path]:
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    found = {}
    if root.is_dir():
        for entry in root.iterdir():
            if re.fullmatch(r"\d+\.\d+\.\d+", entry.name) and (entry / "bin").is_dir():
                found[entry.name] = entry
    return found


def python(asked: str, cache: Path, log_file: Path) -> Tool:
    """The newest Python that `asked` covers, in the rehearsal's tool cache."""
    have = pyenv_versions()
    version = _newest(list(have), asked)
    if version is None:
        raise ClusterError(
            f"setup-python asks for Python {asked}; this machine has "
            f"{', '.join(sorted(have, key=_key)) or 'no pyenv interpreter'} ($PYENV_ROOT/versions)"
        )
    tool = Tool("Python", version, f"pyenv's {have[version]}", have[version])
    if not tool.marker(cache).exists():
        _copy_python(have[version], tool.folder(cache), log_file)
        tool.marker(cache).touch()
    return tool


def _copy_python(source: Path, folder: Path, log_file: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    short = ".".join(source.name.split(".")[:2])
    lib = f"lib/python{short}"

    def leave_out(directory: str, names: list[str]) -> set[str]:
        here = Path(directory).relative_to(source).as_posix()
        skipped = {"__pycache__"} & set(names)
        if here == lib:
            skipped |= {"test", "site-packages"} & set(names)
        return skipped

    shutil.copytree(source, folder, symlinks=True, ignore=leave_out)
    (folder / lib / "site-packages").mkdir()
    binary = folder / "bin" / f"python{short}"
    run(["patchelf", "--set-rpath", "$ORIGIN/../lib", binary], log_file=log_file)
    run([binary, "-m", "ensurepip", "--default-pip"], log_file=log_file)


# --- Go -----------------------------------------------------------------------------------------
def go(asked: str, cache: Path, log_file: Path) -> Tool:
    """The newest Go release that `asked` covers, from the Go toolchain module."""
    listed = run(["go", "list", "-m", "-versions", GO_TOOLCHAIN]).stdout.split()[1:]
    pattern = re.compile(rf"v0\.0\.1-go(\d+\.\d+(?:\.\d+)?)\.{GO_PLATFORM}")
    releases = [m[1] for v in listed if (m := pattern.fullmatch(v))]
    version = _newest(releases, asked)
    if version is None:
        raise ClusterError(f"setup-go asks for Go {asked}: {GO_TOOLCHAIN} has no such release")
    module = f"{GO_TOOLCHAIN}@v0.0.1-go{version}.{GO_PLATFORM}"
    tool = Tool("go", version, f"the Go module {module}")
    if not tool.marker(cache).exists():
        done = run(["go", "mod", "download", "-json", module], log_file=None)
        archive = Path(json.loads(done.stdout)["Zip"])
        _unpack_go(archive, module, tool.folder(cache))
        tool.marker(cache).touch()
    return tool


def _unpack_go(archive: Path, module: str, folder: Path) -> None:
    """The module's zip holds the Go tree under ``<module>/``; its files lose their modes, so
    the binaries are made executable again (as the go command does when it switches)."""
    shutil.rmtree(folder, ignore_errors=True)
    prefix = module + "/"
    with zipfile.ZipFile(archive) as zipped:
        for member in zipped.infolist():
            if member.is_dir() or not member.filename.startswith(prefix):
                continue
            target = folder / member.filename.removeprefix(prefix)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zipped.open(member) as source, target.open("wb") as sink:
                shutil.copyfileobj(source, sink)
    for executable in [*folder.glob("bin/*"), *folder.glob("pkg/tool/*/*")]:
        executable.chmod(0o755)


# --- into the runner's tool cache ------------------------------------------------------------
# A Python's files that name its prefix: its build configuration (sysconfig, which virtualenv
# reads to find libpython), pkg-config files and scripts.
PREFIX_FILES = (
    "lib/python*/_sysconfigdata_*.py",
    "lib/python*/config-*/Makefile",
    "lib/pkgconfig/*.pc",
    "bin/*",
)


def install(tools: list[Tool], cache: Path, runner_cache: Path, owner: tuple[int, int]) -> None:
    """Copy each tool into the runner's tool cache, owned by the runner; a Python's files name
    the prefix where it is now, not pyenv's or the cache's. A workflow that sets up no tool
    gets an empty tool cache, as a runner has one."""
    runner_cache.mkdir(parents=True, exist_ok=True)
    for tool in tools:
        target = tool.folder(runner_cache)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(
            tool.folder(cache), target, symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
        )
        tool.marker(runner_cache).touch()
        if tool.origin is not None:
            olds = (str(tool.origin), str(tool.folder(cache)))
            for pattern in PREFIX_FILES:
                for path in target.glob(pattern):
                    _rename_prefix(path, olds, str(target))
    subprocess.run(
        ["chown", "-R", "--no-dereference", f"{owner[0]}:{owner[1]}", str(runner_cache)],
        check=True,
    )


def _rename_prefix(path: Path, olds: tuple[str, ...], new: str) -> None:
    """Put `new` for each of `olds` in a text file (binaries and links are left alone)."""
    if path.is_symlink() or not path.is_file():
        return
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return
    changed = data
    for old in olds:
        # The prefix itself, never a longer name that starts with it (3.11.7 in 3.11.70).
        pattern = re.compile(re.escape(old.encode()) + rb"(?![\w.-])")
        changed = pattern.sub(new.encode().replace(b"\\", b"\\\\"), changed)
    if changed != data:
        path.write_bytes(changed)
