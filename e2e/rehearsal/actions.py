"""The actions the workflows pin, from local copies: `act --local-repository` reads each from
a folder instead of cloning it from github.com, which this machine cannot reach.

The copies are a folder per action (``checkout/``, ``setup-python/`` ...) in
``../shared/github-actions`` beside the repository, or ``--actions DIR``: each that action's
own repository at a release, with its ``dist/``. Where a copy's version is not the pinned
one, it stands in for it, and the rehearsal says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from e2e.rehearsal.workflows import Pin, WorkflowError


@dataclass(frozen=True)
class LocalCopy:
    pin: Pin
    folder: Path
    version: str  # the copy's own, from its package.json

    @property
    def stands_in(self) -> bool:
        return self.pin.version.lstrip("v") != self.version.lstrip("v")

    def line(self) -> str:
        what = f"{self.pin.repo} {self.pin.version} ({self.pin.sha[:7]})"
        if self.stands_in:
            return f"{what}: stand-in, the local copy of {self.version} in {self.folder}"
        return f"{what}: the local copy in {self.folder}"

    def act_flag(self) -> str:
        return f"{self.pin.ref}={self.folder}"


def copy_version(folder: Path) -> str:
    try:
        version = json.loads((folder / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return "(unknown version)"
    return str(version)


def local_copies(pins: list[Pin], actions_dir: Path) -> list[LocalCopy]:
    """A local copy for every pin, or an error naming every action that has none."""
    copies, missing = [], []
    for pin in pins:
        folder = actions_dir / pin.repo.split("/", 1)[1]
        if (folder / "action.yml").is_file() or (folder / "action.yaml").is_file():
            copies.append(LocalCopy(pin, folder, copy_version(folder)))
        else:
            missing.append(f"{pin.repo}@{pin.sha} ({pin.version}): no {folder}/action.yml")
    if missing:
        raise WorkflowError(
            "no local copy of these actions (act cannot clone them here):\n  "
            + "\n  ".join(missing)
            + f"\nPut each action's repository at a release, with its dist/, in {actions_dir}"
            " (see its README.md), or name another folder with --actions DIR."
        )
    return copies
