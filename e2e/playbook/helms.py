"""Which helm plays a scenario file: its ``spec.helm`` (``each``, 3, 4 or none), the helms
the run was given, and a major forced on every file (``e2e.reproduce --helm``)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from e2e.cluster import tools


def helms_for(wanted: Any, given: list[Path], forced: int | None) -> list[tuple[Path, str]]:
    """(binary, id) per play: ``each`` plays once per given helm (the id names it); a major
    plays with the given helm of that major, else the pinned one; none, with the first
    given (the one scenarios not about Helm versions use)."""
    if forced:
        return [(pinned(forced, given), "")]
    if wanted == "each":
        return [(b, f"helm-{version(b)}") for b in given]
    if wanted in (3, 4):
        return [(pinned(int(wanted), given), "")]
    return [(given[0], "")]


def pinned(major: int, given: list[Path]) -> Path:
    for binary in given:
        if version(binary).lstrip("v").startswith(f"{major}."):
            return binary
    return tools.helm3() if major == 3 else tools.helm4()


def version(binary: Path) -> str:
    result = subprocess.run(
        [str(binary), "version", "--template", "{{.Version}}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return result.stdout.strip() or binary.name
