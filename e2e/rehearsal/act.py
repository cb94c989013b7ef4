"""One job of one workflow, one matrix cell, run by `act` as the runner, on the host
(self-hosted mode: ``-P ubuntu-24.04=-self-hosted``), from the workspace's clone.

act's artifact and cache servers listen on loopback; their storage lives in the runner's home.
Its output goes to the terminal as it comes and to a log; the steps' outcomes are read from
it, so that the rehearsal can say which ran, which failed, and whether the job did.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from e2e.rehearsal.actions import LocalCopy
from e2e.rehearsal.runner import Runner
from e2e.rehearsal.workflows import Cell, Workflow

PLATFORM = "ubuntu-24.04=-self-hosted"
# The repository as the jobs see it (github.repository): the clone's origin says so.
REPOSITORY = "rehearsal/helm-upgrade-gate"
JOB_PREFIX = re.compile(r"^\[(?P<job>[^\]]+)\]")
STEP_LINE = re.compile(
    r"(?:✅|❌)\s+(?P<outcome>Success|Failure) - (?P<stage>Pre|Main|Post) (?P<step>.+?) \["
)
JOB_LINE = re.compile(r"🏁\s+Job (?P<result>succeeded|failed)")


@dataclass(frozen=True)
class RunnerPaths:
    """Where act keeps its things, in the runner's home."""

    home: Path

    @property
    def bin(self) -> Path:
        return self.home / "bin"

    @property
    def workspace(self) -> Path:
        return self.home / "work" / REPOSITORY.split("/", 1)[1]

    @property
    def act_cache(self) -> Path:
        return self.home / ".cache" / "act"

    @property
    def tool_cache(self) -> Path:
        """RUNNER_TOOL_CACHE of act's host mode: `<action cache>/tool_cache`."""
        return self.act_cache / "tool_cache"

    @property
    def artifacts(self) -> Path:
        return self.home / "act-artifacts"

    @property
    def cache_server(self) -> Path:
        return self.home / ".cache" / "actcache"


@dataclass(frozen=True)
class Event:
    name: str  # push
    ref: str  # refs/heads/main, refs/tags/v1.2.3

    def payload(self, sha: str) -> dict[str, object]:
        owner, name = REPOSITORY.split("/", 1)
        return {
            "ref": self.ref,
            "after": sha,
            "head_commit": {"id": sha},
            "repository": {
                "full_name": REPOSITORY,
                "name": name,
                "owner": {"login": owner, "name": owner},
                "default_branch": "main",
            },
        }


@dataclass
class JobRun:
    """What act did with one job (or job and matrix cell)."""

    title: str
    exit_code: int = -1
    seconds: float = 0.0
    # (job as act names it, "Main tox ...") -> Success | Failure
    steps: dict[tuple[str, str], str] = field(default_factory=dict)
    jobs: list[str] = field(default_factory=list)  # "succeeded" | "failed", one per job act ran
    log: Path | None = None

    @property
    def passed(self) -> bool:
        """act exited 0 and said of every job it ran that it succeeded, and ran one at least:
        a job skipped by its `if:`, or a --matrix that matches no cell, passes nothing."""
        return self.exit_code == 0 and bool(self.jobs) and "failed" not in self.jobs

    def ran(self, step: str, job: str | None = None) -> str | None:
        """The outcome of the Main step whose name starts with `step` (of `job`), if it ran."""
        for (name_of_job, name), outcome in self.steps.items():
            if name.startswith(f"Main {step}") and job in (None, name_of_job):
                return outcome
        return None


def command(
    act: Path,
    workflow: Workflow,
    job: str,
    cell: Cell,
    event_file: Path,
    event: Event,
    copies: Sequence[LocalCopy],
    paths: RunnerPaths,
    variables: dict[str, str],
    artifact_port: int,
) -> list[str]:
    argv = [
        str(act),
        event.name,
        *("-W", str(workflow.path.relative_to(paths.workspace))),
        *("-j", job),
        *("-e", str(event_file)),
        *("-P", PLATFORM),
        *("--defaultbranch", "main"),
        "--action-offline-mode",
        "--pull=false",
        *("--concurrent-jobs", "1"),
        *("--action-cache-path", str(paths.act_cache)),
        *("--artifact-server-path", str(paths.artifacts)),
        *("--artifact-server-addr", "127.0.0.1"),
        *("--artifact-server-port", str(artifact_port)),
        *("--cache-server-path", str(paths.cache_server)),
        *("--cache-server-addr", "127.0.0.1"),
        *("--cache-server-port", "0"),
    ]
    for key, value in cell.items():
        argv += ["--matrix", f"{key}:{value}"]
    for copy in copies:
        argv += ["--local-repository", copy.act_flag()]
    for key, value in variables.items():
        argv += ["--var", f"{key}={value}"]
    return argv


def run_job(
    runner: Runner,
    argv: list[str],
    paths: RunnerPaths,
    title: str,
    log: Path,
    event: Event,
    sha: str,
    env: dict[str, str],
) -> JobRun:
    """Run act as the runner in the workspace, with `env` added to the runner's; its lines go
    to the terminal and to `log`."""
    event_file = Path(argv[argv.index("-e") + 1])
    event_file.write_text(json.dumps(event.payload(sha), indent=2) + "\n")
    runner.chown(event_file)
    result = JobRun(title, log=log)
    started = time.monotonic()

    def read(line: str) -> None:
        if (step := STEP_LINE.search(line)) is not None:
            prefix = JOB_PREFIX.match(line)
            key = (prefix["job"] if prefix else "", f"{step['stage']} {step['step']}")
            result.steps[key] = step["outcome"]
        if (job := JOB_LINE.search(line)) is not None:
            result.jobs.append(job["result"])

    result.exit_code = runner.stream(argv, runner.env(env), paths.workspace, log, read)
    result.seconds = time.monotonic() - started
    return result
