"""What a rehearsal is asked to do: one options object, the same for the command line and for a
script that calls :class:`e2e.rehearsal.rehearse.Rehearsal` itself."""

from __future__ import annotations

import argparse
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
ACTIONS_ENV = "UPGRADE_GATE_ACTIONS"
# Not a workflow: ci/test, run as the runner (a laptop's developer without root).
LAPTOP = "laptop"


def default_actions(root: Path = ROOT) -> Path:
    """Where the local copies of the pinned actions are: $UPGRADE_GATE_ACTIONS, else
    ``../shared/github-actions`` beside this checkout, else beside the checkout it was cloned
    from (a fresh clone of a local repository, as CI makes), else the first of those."""
    if os.environ.get(ACTIONS_ENV):
        return Path(os.environ[ACTIONS_ENV])
    candidates = [root.parent / "shared" / "github-actions"]
    origin = subprocess.run(
        ["git", "-C", str(root), "remote", "get-url", "origin"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if origin and Path(origin).is_dir():
        candidates.append(Path(origin).resolve().parent / "shared" / "github-actions")
    return next((c for c in candidates if c.is_dir()), candidates[0])


@dataclass(frozen=True)
class Options:
    workflow: str = "e2e"  # ci, e2e, release, or a path
    job: str | None = None  # default: every job of the workflow
    matrix: tuple[
        str, ...
    ] = ()  # KEY:VALUE, as act's --matrix; default: the cells a stand-in covers
    make_fail: bool = False  # add a scenario that fails: the job must go red, with its diagnostics
    # The cell's scenarios about Helm versions also with the other pinned helm ($PYTEST_ADDOPTS):
    # one cell then runs every scenario once, as ci/test asks.
    every_helm: bool = False
    worktree: bool = False  # the working tree's changes too, not only the commit HEAD
    commit: str = "HEAD"  # the commit rehearsed
    tag: str | None = None  # the tag a release rehearsal pushes (default: v<chart version>)
    keep: bool = False  # leave the runner, its daemon and its workspace for inspection
    down: bool = False  # only undo what an interrupted rehearsal left
    actions: Path = field(default_factory=default_actions)
    results: Path = field(default=ROOT / "artifacts" / "rehearsal")

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "workflow",
            nargs="?",
            default="e2e",
            help="ci, e2e or release (.github/workflows/NAME.yml), or a path (default: e2e); "
            "laptop: not a workflow, ci/test run by the runner, as by a developer without root",
        )
        parser.add_argument("job", nargs="?", help="one job of it (default: every job)")
        parser.add_argument(
            "--matrix",
            action="append",
            default=[],
            metavar="KEY:VALUE",
            help="only the matrix cells with this value, as act's --matrix (repeatable); "
            "default: every cell, or where the matrix has a kubernetes key, the cells of its "
            "oldest minor, the one the node image built here stands in for",
        )
        parser.add_argument(
            "--make-fail",
            action="store_true",
            help="add a scenario file that must fail: the job must go red, run its diagnostics, "
            "upload its artifacts and write its summary (exit 0 only if it does all of that)",
        )
        parser.add_argument(
            "--every-helm",
            action="store_true",
            help="e2e: the cell's scenarios about Helm versions run with the other pinned helm "
            "too (the cell's helm stays the one the others use), so that one cell runs every "
            "scenario once (ci/test); GitHub's other cells do that for it",
        )
        parser.add_argument(
            "--worktree",
            action="store_true",
            help="rehearse the working tree with its uncommitted changes (default: HEAD)",
        )
        parser.add_argument(
            "--commit",
            default="HEAD",
            help="rehearse this commit of the repository (default: HEAD)",
        )
        parser.add_argument("--tag", help="release: the tag pushed (default: v<chart version>)")
        parser.add_argument(
            "--keep",
            action="store_true",
            help="leave the runner user, its daemon and workspace as they are (undo later: --down)",
        )
        parser.add_argument(
            "--down",
            action="store_true",
            help="only undo what a kept or interrupted rehearsal left, and check the host",
        )
        parser.add_argument(
            "--actions",
            type=Path,
            default=None,
            help="the local copies of the pinned actions (default: $UPGRADE_GATE_ACTIONS, else "
            "../shared/github-actions beside this checkout or beside the one it was cloned from)",
        )
        parser.add_argument(
            "--results",
            type=Path,
            default=ROOT / "artifacts" / "rehearsal",
            help="where each job's act log and artifacts are copied (default: artifacts/rehearsal)",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Options:
        for item in args.matrix:
            if ":" not in item:
                raise SystemExit(f"--matrix {item}: KEY:VALUE, as act's --matrix")
        if args.worktree and args.commit != "HEAD":
            raise SystemExit(
                "--worktree rehearses HEAD with the working tree's changes; not --commit"
            )
        given = Path(args.workflow)
        if given.suffix in (".yml", ".yaml"):
            where = given.resolve() if given.is_absolute() else (ROOT / given).resolve()
            if ROOT.resolve() not in where.parents:
                raise SystemExit(
                    f"{args.workflow}: a workflow file of this repository (it runs in a copy of "
                    "the repository, as on GitHub); commit it, or use --worktree"
                )
        return cls(
            workflow=args.workflow,
            job=args.job,
            matrix=tuple(args.matrix),
            make_fail=args.make_fail,
            every_helm=args.every_helm,
            worktree=args.worktree,
            commit=args.commit,
            tag=args.tag,
            keep=args.keep,
            down=args.down,
            actions=args.actions or default_actions(),
            results=args.results,
        )

    def workflow_path(self) -> Path:
        given = Path(self.workflow)
        if given.suffix in (".yml", ".yaml"):
            return given if given.is_absolute() else ROOT / given
        return ROOT / ".github" / "workflows" / f"{self.workflow}.yml"
