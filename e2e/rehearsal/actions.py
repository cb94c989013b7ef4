"""The actions the workflows pin, from local copies: `act --local-repository` reads each from
a folder instead of cloning it from github.com, which this machine cannot reach.

The copies are a folder per action (``checkout/``, ``setup-python/`` ...) in
``../shared/github-actions`` beside the repository, or ``--actions DIR``: each that action's
own repository at a release, with its ``dist/``. Where a copy's version is not the pinned
one, it stands in for it, and the rehearsal says so.

Where no copy is at hand, an action this repository keeps a stand-in for (``BUILT_HERE``:
upload-artifact, a few lines on @actions/artifact, the library the action itself is built
on, which npm serves here) is built from ``e2e/rehearsal/<name>/`` with ``npm ci``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from e2e.cluster.host.commands import run
from e2e.rehearsal.workflows import Pin, WorkflowError

# Actions that no local copy may hold, with the stand-in this repository keeps for each.
BUILT_HERE = {"actions/upload-artifact": Path(__file__).with_name("upload-artifact")}


@dataclass(frozen=True)
class LocalCopy:
    pin: Pin
    folder: Path
    version: str  # the copy's own, from its package.json
    built_here: str = ""  # what a stand-in built from this repository is made of

    @property
    def stands_in(self) -> bool:
        return bool(self.built_here) or self.pin.version.lstrip("v") != self.version.lstrip("v")

    def line(self) -> str:
        what = f"{self.pin.repo} {self.pin.version} ({self.pin.sha[:7]})"
        if self.built_here:
            return f"{what}: stand-in, {self.built_here}, in {self.folder}"
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


def local_copies(pins: list[Pin], actions_dir: Path) -> tuple[list[LocalCopy], list[Pin]]:
    """A local copy for every pin, and the pins without one that ``build`` makes a stand-in
    for; an error naming every other action that has none."""
    copies, to_build, missing = [], [], []
    for pin in pins:
        folder = actions_dir / pin.repo.split("/", 1)[1]
        if (folder / "action.yml").is_file() or (folder / "action.yaml").is_file():
            copies.append(LocalCopy(pin, folder, copy_version(folder)))
        elif pin.repo in BUILT_HERE:
            to_build.append(pin)
        else:
            missing.append(f"{pin.repo}@{pin.sha} ({pin.version}): no {folder}/action.yml")
    if missing:
        raise WorkflowError(
            "no local copy of these actions (act cannot clone them here):\n  "
            + "\n  ".join(missing)
            + f"\nPut each action's repository at a release, with its dist/, in {actions_dir}"
            " (see its README.md), or name another folder with --actions DIR."
        )
    return copies, to_build


def build(pin: Pin, cache: Path, log_file: Path) -> LocalCopy:
    """The stand-in this repository keeps for ``pin``, with its npm dependencies as its
    package-lock.json pins them, under ``cache`` (built again when its sources change)."""
    source = BUILT_HERE[pin.repo]
    files = sorted(p for p in source.iterdir() if p.is_file())
    digest = hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in files))
    folder = cache / f"{source.name}-{digest.hexdigest()[:12]}"
    if not (folder / "node_modules").is_dir():
        shutil.rmtree(folder, ignore_errors=True)
        scratch = folder.with_name(folder.name + ".partial")
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        for file in files:
            shutil.copy2(file, scratch / file.name)
        run(
            ["npm", "ci", "--omit=dev", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=scratch,
            log_file=log_file,
        )
        scratch.rename(folder)
    lock = json.loads((folder / "package-lock.json").read_text())
    library = lock["packages"]["node_modules/@actions/artifact"]["version"]
    return LocalCopy(
        pin,
        folder,
        "",
        built_here=f"e2e/rehearsal/{source.name}/ on @actions/artifact {library} (npm)",
    )
