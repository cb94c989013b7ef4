"""Debian root filesystems made with debootstrap, from the mirror this host's apt uses.

Debian's mirror is a package registry the target machines reach; debootstrap needs root.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from e2e.cluster.host.commands import run
from e2e.cluster.host.mounts import unmount_under

DEFAULT_MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"


def debian_mirror() -> str:
    """The mirror apt uses on this host (deb822 or one-line sources), else deb.debian.org."""
    candidates = [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]
    for path in candidates:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            line = line.strip()
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
            if line.startswith("deb ") and "security" not in line:
                return next(w for w in line.split()[1:] if "://" in w)
    return DEFAULT_MIRROR


def debootstrap(
    target: Path,
    packages: Sequence[str],
    log_file: Path,
    suite: str = SUITE,
    variant: str = "minbase",
    drop_docs: bool = False,
) -> None:
    """A `variant` root filesystem of `suite` with `packages`, apt's caches emptied."""
    try:
        run(
            [
                "debootstrap",
                f"--variant={variant}",
                f"--include={','.join(packages)}",
                suite,
                str(target),
                debian_mirror(),
            ],
            log_file=log_file,
        )
    finally:
        # debootstrap mounts /proc and /sys inside the target; never leave them.
        unmount_under([target])
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for item in (target / junk).glob("*"):
            if item.is_file():
                item.unlink()
    for docs in ("usr/share/doc", "usr/share/man") if drop_docs else ():
        if (target / docs).is_dir():
            shutil.rmtree(target / docs)
            (target / docs).mkdir()
