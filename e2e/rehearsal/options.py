"""What a rehearsal is asked to do: one options object, the same for the command line and for a
script that calls :class:`e2e.rehearsal.rehearse.Rehearsal` itself."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
ACTIONS = ROOT.parent / "shared" / "github-actions"


@dataclass(frozen=True)
class Options:
    workflow: str = "e2e"  # ci, e2e, release, or a path
    job: str | None = None  # default: every job of the workflow
    matrix: tuple[
        str, ...
    ] = ()  # KEY:VALUE, as act's --matrix; default: the cells a stand-in covers
    make_fail: bool = False  # add a scenario that fails: the job must go red, with its diagnostics
    worktree: bool = False  # the working tree's changes too, not only the commit HEAD
    commit: str = "HEAD"  # the commit rehearsed
    tag: str | None = None  # the tag a release rehearsal pushes (default: v<chart version>)
    keep: bool = False  # leave the runner, its daemon and its workspace for inspection
    down: bool = False  # only undo what an interrupted rehearsal left
    actions: Path = field(default=ACTIONS)
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
            default=ACTIONS,
            help=f"the local copies of the pinned actions (default: {ACTIONS})",
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
        return cls(
            workflow=args.workflow,
            job=args.job,
            matrix=tuple(args.matrix),
            make_fail=args.make_fail,
            worktree=args.worktree,
            commit=args.commit,
            tag=args.tag,
            keep=args.keep,
            down=args.down,
            actions=args.actions,
            results=args.results,
        )

    def workflow_path(self) -> Path:
        given = Path(self.workflow)
        if given.suffix in (".yml", ".yaml"):
            return given if given.is_absolute() else ROOT / given
        return ROOT / ".github" / "workflows" / f"{self.workflow}.yml"
