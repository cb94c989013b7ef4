"""The hook image's root filesystem: this CPython, its standard library and a venv, nothing else.

Run inside the build stage of app/hook.Dockerfile by the base image's python3 (standard
library only), after the venv is installed:

    python3 /src/app/hook_rootfs.py /opt/venv /rootfs

It copies into ``/rootfs``, at the same paths: the interpreter (with the symlinks that lead
to it, which the venv's ``bin/python3`` follows), the standard library without the parts a
program that never builds, tests or draws anything needs (``SKIP``), the shared libraries
the interpreter and its extension modules link (by ``ldd``, so it works on a Debian
``python3`` in ``/usr`` and on a ``python:3.x-slim`` in ``/usr/local`` alike), the dynamic
loader's configuration, and the venv. No shell, no package manager, no Perl, no docs:
``python3 -m upgrade_gate.hook`` is all the image can run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

# Top-level names in the standard library that the hook never imports, and that are large.
SKIP = {
    "__phello__",
    "config",  # config-3.x-<platform>: the static libpython and the build's Makefile
    "distutils",
    "ensurepip",
    "idlelib",
    "lib2to3",
    "pydoc_data",
    "site-packages",
    "dist-packages",
    "test",
    "tkinter",
    "turtledemo",
    "venv",
}
# Extension modules whose libraries the hook never needs (a terminal, a database).
SKIP_EXTENSIONS = re.compile(
    r"^(_crypt|_curses|_dbm|_gdbm|_sqlite3|_tkinter|nis|readline|_test|_xx|xx)"
)
LINKED = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x[0-9a-f]+\)")


def copy_path(path: Path, root: Path) -> None:
    """``path`` under ``root`` at the same place; a symlink stays a symlink, and its target
    comes along."""
    dest = root / path.relative_to("/")
    if dest.exists() or dest.is_symlink():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        target = path.readlink()
        dest.symlink_to(target)
        copy_path(Path(os.path.normpath(path.parent / target)), root)
    elif path.is_dir():
        shutil.copytree(path, dest, symlinks=True)
    else:
        shutil.copy2(path, dest)


def interpreter_chain(executable: Path) -> list[Path]:
    """The executable and every symlink on the way to the real binary."""
    chain = [executable]
    while chain[-1].is_symlink():
        target = chain[-1].readlink()
        chain.append(target if target.is_absolute() else chain[-1].parent / target)
    return chain


def linked_libraries(files: list[Path]) -> set[Path]:
    """Every shared library (and the loader) that ``files`` link, by ``ldd``."""
    found: set[Path] = set()
    for file in files:
        result = subprocess.run(["ldd", str(file)], capture_output=True, text=True)
        if result.returncode != 0:  # a static binary, or not an ELF file
            continue
        found.update(Path(m.group(1)) for m in LINKED.finditer(result.stdout))
    return found


def standard_library(stdlib: Path, root: Path) -> list[Path]:
    """The standard library under ``root`` minus SKIP; the extension modules copied."""
    dest = root / stdlib.relative_to("/")
    dest.mkdir(parents=True, exist_ok=True)
    extensions: list[Path] = []
    for entry in sorted(stdlib.iterdir()):
        if entry.name in SKIP or entry.name.startswith("config-") or entry.name == "__pycache__":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(
                entry,
                dest / entry.name,
                symlinks=True,
                ignore=lambda _dir, names: [
                    n
                    for n in names
                    if n == "__pycache__" or (n.endswith(".so") and SKIP_EXTENSIONS.match(n))
                ],
            )
        else:
            copy_path(entry, root)
    for so in sorted(dest.rglob("*.so")):
        extensions.append(stdlib / so.relative_to(dest))
    return extensions


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python3 hook_rootfs.py VENV ROOTFS", file=sys.stderr)
        return 2
    venv, root = Path(argv[0]), Path(argv[1])
    root.mkdir(parents=True, exist_ok=True)
    # Merged /usr (/lib -> usr/lib, ...) kept as it is, so that a library is one file.
    for top in ("bin", "lib", "lib32", "lib64", "libx32", "sbin"):
        link = Path("/") / top
        if link.is_symlink() and not link.readlink().is_absolute():
            (root / top).symlink_to(link.readlink())
            (root / top).resolve().mkdir(parents=True, exist_ok=True)
    chain = interpreter_chain(Path(sys.executable))
    for path in chain:
        copy_path(path, root)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    extensions = standard_library(stdlib, root)
    platstdlib = Path(sysconfig.get_paths()["platstdlib"])
    if platstdlib != stdlib:
        extensions += standard_library(platstdlib, root)
    copy_path(venv, root)
    extensions += sorted(venv.rglob("*.so"))
    for library in sorted(linked_libraries([chain[-1], *extensions])):
        copy_path(library, root)
    # The loader finds a library outside its default directories (python:3.x-slim's
    # /usr/local/lib/libpython) through its cache, rebuilt here for what was copied.
    for conf in [Path("/etc/ld.so.conf"), *sorted(Path("/etc/ld.so.conf.d").glob("*.conf"))]:
        if conf.exists():
            copy_path(conf, root)
    subprocess.run(["ldconfig", "-r", str(root)], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
