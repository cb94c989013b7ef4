"""A rehearsal: the named steps from a host as found to the jobs' verdicts and the host as found
again. Works without pytest; ``python -m e2e.rehearsal`` and ``ci/rehearse`` are its command.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from e2e.cluster import gotools
from e2e.cluster.base import Progress, cache_root, free_port
from e2e.cluster.host import packages
from e2e.cluster.host.commands import run
from e2e.cluster.host.dockerd import DefaultSocketDaemon
from e2e.cluster.host.locks import exclusive
from e2e.cluster.options import ENVIRONMENT
from e2e.cluster.providers.kind.cluster import PACKAGES as KIND_PACKAGES
from e2e.cluster.providers.kind.settings import KindSettings
from e2e.cluster.providers.registry import LocalRegistry
from e2e.cluster.wait import eventually
from e2e.rehearsal import act, actions, artifacts, results, runner, standins, toolcache
from e2e.rehearsal.actions import LocalCopy, local_copies
from e2e.rehearsal.ledger import Ledger, docker_proxies
from e2e.rehearsal.options import LAPTOP, ROOT, Options
from e2e.rehearsal.workflows import Cell, Pin, Workflow, WorkflowError, label

# What the rehearsal needs on the host (Debian bookworm): the runner's daemon, its sudo,
# patchelf for the tool cache's Pythons, and what the kind provider builds its node image with.
PACKAGES = ("sudo", "patchelf", "git", "procps", "python3-venv", *KIND_PACKAGES)
# Not under /run/upgrade-gate: a runner has no such directory, and the providers must make it.
RUN_DIR = Path("/run/upgrade-gate-rehearsal")
# The pinned helms by the names the e2e matrix and the harness's --helm-bin give them.
EVERY_HELM = ("helm3", "helm4")
# Kept, as a lock file is, so that it stays a lock for the next comer.
LOCK = Path("/run/lock/upgrade-gate-rehearsal.lock")


class RehearsalError(RuntimeError):
    """The rehearsal could not run, or its jobs did not end as they must; says which."""


@dataclass
class Paths:
    cache: Path = field(default_factory=lambda: cache_root() / "rehearsal")
    run_dir: Path = RUN_DIR

    @property
    def ledger(self) -> Path:
        return self.cache / "ledger.json"

    @property
    def staged(self) -> Path:
        """The commit rehearsed, cloned here before it moves into the runner's workspace."""
        return self.cache / "source"

    @property
    def logs(self) -> Path:
        return self.cache / "logs"

    @property
    def tool_cache(self) -> Path:
        return self.cache / "toolcache"

    @property
    def daemon(self) -> DefaultSocketDaemon:
        """The runner's daemon; its data root is the kind provider's (one node image build)."""
        return DefaultSocketDaemon(
            KindSettings(cache=self.cache.parent).docker_data_root,
            self.run_dir,
            self.logs / "dockerd.log",
            cgroup_parent="upgrade-gate-rehearsal",
            who="the rehearsal's",
        )


@dataclass
class Rehearsal:
    options: Options
    paths: Paths = field(default_factory=Paths)
    progress: Progress = field(default_factory=lambda: Progress("rehearse"))
    # Filled in by the steps.
    workflow: Workflow | None = None
    jobs: list[str] = field(default_factory=list)
    cells: dict[str, list[Cell]] = field(default_factory=dict)
    copies: list[LocalCopy] = field(default_factory=list)
    to_build: list[Pin] = field(default_factory=list)  # stand-ins of actions, built here
    runner: runner.Runner | None = None
    variables: dict[str, str] = field(default_factory=dict)
    sha: str = ""
    runs: list[act.JobRun] = field(default_factory=list)
    registry: LocalRegistry | None = None
    tag: str = ""
    called_matrix: Cell = field(default_factory=dict)

    # --- the steps ---------------------------------------------------------------------------
    @property
    def laptop(self) -> bool:
        """`ci/rehearse laptop`: not a workflow but `ci/test` run by the runner, as by a
        developer with Docker and Go and no root."""
        return self.options.workflow == LAPTOP

    def steps(self) -> list[tuple[str, Callable[[], str]]]:
        steps = [
            ("source", self._source),
            ("workflow", self._read_workflow),
            ("prerequisites", self._prerequisites),
            ("ledger", self._record_host),
            ("runner", self._make_runner),
            ("tool cache", self._tool_cache),
            ("docker daemon", self._start_daemon),
            ("stand-ins", self._stand_ins),
            ("workspace", self._workspace),
            ("stand-in actions", self._stand_in_actions),
        ]
        if self.laptop:  # no workflow, and the machine's own python3 and Go
            steps = [s for s in steps if s[0] not in ("workflow", "tool cache", "stand-in actions")]
        return steps

    def run(self) -> list[act.JobRun]:
        """Every step, the jobs, and the teardown whatever happened before it (SIGTERM and
        SIGHUP included)."""
        self.paths.cache.mkdir(parents=True, exist_ok=True)
        # One lock for the host, whoever's HOME runs it: the user, the socket and the run
        # directory are the host's.
        with exclusive(LOCK, "another rehearsal on this machine"), _signals_interrupt():
            if self.options.down:
                self._teardown()
                return []
            try:
                for name, step in self.steps():
                    with self.progress.phase(name) as note:
                        note.detail = step()
                if self.laptop:
                    self._run_laptop()
                else:
                    self._run_jobs()
            finally:
                if self.options.keep:
                    self.progress.line("kept: the runner, its daemon and workspace (--down undoes)")
                else:
                    self._teardown()
            self._verdict()
        return self.runs

    def _source(self) -> str:
        """The commit (with the working tree's changes, if asked) cloned aside, as the runner's
        workspace will hold it: what the workflows are read from and what act runs."""
        staged = self.paths.staged
        shutil.rmtree(staged, ignore_errors=True)
        staged.parent.mkdir(parents=True, exist_ok=True)
        commit = f"{self.options.commit}^{{commit}}"
        self.sha = run(["git", "-C", ROOT, "rev-parse", "--verify", commit]).stdout.strip()
        run(["git", "clone", "--quiet", "--no-hardlinks", ROOT, staged])
        git = ["git", "-C", str(staged)]
        run([*git, "checkout", "--quiet", "-B", "main", self.sha])
        run([*git, "remote", "set-url", "origin", f"https://github.com/{act.REPOSITORY}.git"])
        what = f"the commit {self.sha[:12]}"
        if self.options.worktree:
            changed = _copy_worktree(ROOT, staged)
            what += f" with the working tree's {changed} changed file(s)"
        if self.options.make_fail:
            (staged / "e2e" / "scenarios" / "files" / results.MUST_FAIL).write_text(
                results.MUST_FAIL_TEXT
            )
            what += f", and e2e/scenarios/files/{results.MUST_FAIL}, made to fail"
        return what

    def _read_workflow(self) -> str:
        path = self.paths.staged / self.options.workflow_path().relative_to(ROOT)
        workflow = Workflow.load(path)
        self.workflow = workflow
        # act runs a job with every job it needs: by default, the jobs no other job needs.
        self.jobs = [self.options.job] if self.options.job else workflow.last_jobs()
        for job in self.jobs:
            self.cells[job] = self._chosen_cells(workflow, job)
        loose = workflow.unpinned()
        if loose:
            raise WorkflowError("actions not pinned to a commit: " + ", ".join(loose))
        if self._is_release():
            self.tag = self.options.tag or _chart_tag(self.paths.staged)
        self.called_matrix = self._called_defaults(workflow)
        self.copies, self.to_build = local_copies(workflow.pins(), self.options.actions)
        for copy in self.copies:
            self.progress.line(copy.line())
        count = sum(len(c) for c in self.cells.values())
        return f"{path.name}: {', '.join(self.jobs)}; {count} job run(s)"

    def _called_defaults(self, workflow: Workflow) -> Cell:
        """For the workflows a job calls, which act expands itself: where their matrix has a
        kubernetes key and no --matrix names it, the oldest minor (as for a job of its own)."""
        given = {item.split(":", 1)[0] for item in self.options.matrix}
        minors: set[str] = set()
        for job in self.jobs:
            for called in [c for c in [workflow.called(n) for n in workflow.needed(job)] if c]:
                for called_job in called.jobs:
                    minors |= {
                        c["kubernetes"] for c in called.cells(called_job) if "kubernetes" in c
                    }
        if not minors or "kubernetes" in given:
            return {}
        oldest = min(minors, key=toolcache._key)
        self.progress.line(f"the workflows it calls: the cells of Kubernetes {oldest}, the oldest")
        return {"kubernetes": oldest}

    def _chosen_cells(self, workflow: Workflow, job: str) -> list[Cell]:
        if workflow.called(job) is not None:
            return [{}]  # act expands the called workflow's own jobs
        cells = workflow.cells(job)
        wanted = [item.split(":", 1) for item in self.options.matrix]
        cells = [c for c in cells if all(c.get(k, v) == v for k, v in wanted)]
        if "kubernetes" not in dict(wanted) and cells and "kubernetes" in cells[0]:
            oldest = min({c["kubernetes"] for c in cells}, key=toolcache._key)
            cells = [c for c in cells if c["kubernetes"] == oldest]
            self.progress.line(
                f"{job}: the cells of Kubernetes {oldest}, the oldest minor in the matrix, the "
                "one the node image built here (an older Kubernetes) stands in for best"
            )
        if not cells:
            raise WorkflowError(f"{job}: no matrix cell matches {list(self.options.matrix)}")
        return cells

    def _prerequisites(self) -> str:
        packages.ensure_packages(PACKAGES, self.progress, self.paths.logs / "apt.log")
        binary = gotools.path("act")
        return f"act {gotools.ACT.version} at {binary}"

    def _record_host(self) -> str:
        left = Ledger.load(self.paths.ledger)
        if left is not None:
            self.progress.line("an earlier rehearsal left the host changed: undoing that first")
            self._teardown()
        ledger = Ledger.record()
        if ledger.runner_existed:
            raise RehearsalError(
                f"a user {runner.NAME} exists that no rehearsal made (a GitHub runner's own?): "
                "the rehearsal makes its own and removes it, and will not touch that one"
            )
        ledger.save(self.paths.ledger)
        return f"recorded in {self.paths.ledger}"

    def _make_runner(self) -> str:
        # A laptop's developer has no root: no sudo for the runner then.
        self.runner = runner.ensure(sudo=not self.laptop)
        r = self.runner
        ledger = Ledger.load(self.paths.ledger)
        if ledger is not None:
            ledger.runner_uid = r.uid
            ledger.runner_scratch = [str(p) for p in runner.scratch_of(r.uid)]
            ledger.save(self.paths.ledger)
        sudo = "no sudo" if self.laptop else "passwordless sudo"
        return f"{r.name} (UID {r.uid}), home {r.home}, docker group, {sudo}"

    def _tool_cache(self) -> str:
        assert self.workflow is not None
        assert self.runner is not None
        log_file = self.paths.logs / "toolcache.log"
        tools = [
            toolcache.python(v, self.paths.tool_cache, log_file)
            for v in sorted(self.workflow.asked_versions("actions/setup-python", "python-version"))
        ]
        tools += [
            toolcache.go(v, self.paths.tool_cache, log_file)
            for v in sorted(self.workflow.asked_versions("actions/setup-go", "go-version"))
        ]
        paths = act.RunnerPaths(self.runner.home)
        toolcache.install(tools, self.paths.tool_cache, paths.tool_cache, self.runner.owner)
        for tool in tools:
            self.progress.line(f"tool cache: {tool.name} {tool.version} from {tool.source}")
        return ", ".join(f"{t.name} {t.version}" for t in tools) or "nothing asked for"

    def _start_daemon(self) -> str:
        started = self.paths.daemon.start()
        # Its data root outlives it: a rehearsal killed with its daemon (a session's end) left
        # kind's nodes there, which a runner would take for a cluster of its own.
        left = self.paths.daemon.remove_containers()
        return started + (
            f"; {len(left)} container(s) of an earlier rehearsal removed" if left else ""
        )

    def _stand_ins(self) -> str:
        """What this machine cannot pull, built here and named as the jobs ask for it."""
        texts = [w.text() for w in self.workflow._with_called()] if self.workflow else []
        node, base, registry = (True, True, False) if self.laptop else standins.needed(texts)
        if not (node or base or registry):
            return "none needed: no job builds an image or makes a cluster"
        made = standins.build(
            self.paths.daemon.client,
            self.progress,
            self.paths.run_dir,
            node=node,
            base=base,
            registry=registry,
            node_named_by=f"${ENVIRONMENT['kind_image']}"
            if self.laptop
            else f"vars.{standins.NODE_IMAGE_VAR}",
        )
        self.variables |= made.variables
        self.registry = made.registry
        for line in made.lines:
            self.progress.line(f"stand-in: {line}")
        return f"{len(made.lines)} stand-in(s)"

    def _workspace(self) -> str:
        assert self.runner is not None
        paths = act.RunnerPaths(self.runner.home)
        workspace = paths.workspace
        shutil.rmtree(workspace, ignore_errors=True)
        workspace.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(self.paths.staged, workspace)
        what = ""
        if self.tag:
            run(["git", "-C", str(workspace), "tag", "--force", self.tag])
            what = f"; tagged {self.tag}"
        for directory in (paths.act_cache, paths.artifacts, paths.cache_server):
            directory.mkdir(parents=True, exist_ok=True)
        self.runner.chown(paths.home)
        return f"{workspace}{what}"

    def _stand_in_actions(self) -> str:
        """The actions no copy holds, built from this repository into the runner's home."""
        assert self.runner is not None
        if not self.to_build:
            return "none needed: a local copy of every action"
        if shutil.which("npm") is None:
            raise RehearsalError(
                "npm is needed to build the stand-ins of "
                + ", ".join(p.repo for p in self.to_build)
                + " (no local copy of them)"
            )
        home = act.RunnerPaths(self.runner.home).home / "actions"
        for pin in self.to_build:
            built = actions.build(pin, self.paths.cache / "actions", self.paths.logs / "npm.log")
            placed = home / built.folder.name
            shutil.rmtree(placed, ignore_errors=True)
            shutil.copytree(built.folder, placed, symlinks=True)
            copy = dataclasses.replace(built, folder=placed)
            self.copies.append(copy)
            self.progress.line(copy.line())
        self.runner.chown(home)
        return f"{len(self.to_build)} built"

    def _is_release(self) -> bool:
        if self.workflow is None:
            return False
        on = self.workflow.data.get("on") or {}
        push = on.get("push") if isinstance(on, dict) else None
        return isinstance(push, dict) and "tags" in push and "branches" not in push

    # --- the jobs --------------------------------------------------------------------------------
    def _run_jobs(self) -> None:
        assert self.workflow is not None
        assert self.runner is not None
        paths = act.RunnerPaths(self.runner.home)
        binary = paths.bin / "act"
        binary.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(gotools.path("act"), binary)
        self.runner.chown(paths.bin)
        event = act.Event("push", f"refs/tags/{self.tag}" if self.tag else "refs/heads/main")
        workflow = Workflow.load(paths.workspace / self.options.workflow_path().relative_to(ROOT))
        for job in self.jobs:
            keys = self.workflow.matrix_keys(job)
            for cell in self.cells[job]:
                title = f"{workflow.name} / {job} / {label(cell, keys)}"
                slug = re.sub(
                    r"[^A-Za-z0-9_.-]+", "-", f"{workflow.name}-{job}-{label(cell, keys)}"
                )
                results_dir = self.options.results / slug
                shutil.rmtree(results_dir, ignore_errors=True)
                self._clear(paths.artifacts)
                port = free_port()
                argv = act.command(
                    binary,
                    workflow,
                    job,
                    self._act_matrix(cell, keys),
                    paths.home / "event.json",
                    event,
                    self.copies,
                    paths,
                    self.variables,
                    port,
                )
                with (
                    self.progress.phase(f"job {title}") as note,
                    artifacts.proxy(port) as artifact_service,
                ):
                    result = act.run_job(
                        self.runner,
                        argv,
                        paths,
                        title,
                        results_dir / "act.log",
                        event,
                        self.sha,
                        {"ACTIONS_RUNTIME_URL": artifact_service, **self._helms(cell)},
                    )
                    note.detail = (
                        f"act exited {result.exit_code}; job "
                        f"{', '.join(result.jobs) or 'did not end'}"
                    )
                self.runs.append(result)
                results.keep_artifacts(paths.artifacts, results_dir / "artifacts", self.progress)

    def _helms(self, cell: Cell) -> dict[str, str]:
        """--every-helm: $PYTEST_ADDOPTS naming the cell's helm first, then the other pinned
        one (tox passes it on; the harness keeps each helm once, in that order)."""
        if not self.options.every_helm:
            return {}
        helm = cell.get("helm")
        if helm not in EVERY_HELM:
            raise RehearsalError(f"--every-helm: the cell has no helm of {EVERY_HELM}: {cell}")
        order = [helm, *(h for h in EVERY_HELM if h != helm)]
        return {"PYTEST_ADDOPTS": " ".join(f"--helm-bin {h}" for h in order)}

    def _run_laptop(self) -> None:
        """`ci/test` in the workspace as the runner: Go on PATH (kind is built from its
        module), the node image built here named by $UPGRADE_GATE_KIND_IMAGE."""
        assert self.runner is not None
        paths = act.RunnerPaths(self.runner.home)
        go = shutil.which("go")
        if go is None:
            raise RehearsalError("laptop: Go is not on PATH (kind is built from its module)")
        env = self.runner.env(
            {
                "PATH": f"{Path(go).resolve().parent}:{runner.PATH}",
                ENVIRONMENT["kind_image"]: self.variables[standins.NODE_IMAGE_VAR],
            }
        )
        title = "laptop / ci/test as runner"
        log = self.options.results / "laptop-ci-test" / "ci-test.log"
        result = act.JobRun(title, log=log)
        with self.progress.phase(f"job {title}") as note:
            started = time.monotonic()
            result.exit_code = self.runner.stream(["ci/test"], env, paths.workspace, log)
            result.seconds = time.monotonic() - started
            result.jobs = ["succeeded" if result.exit_code == 0 else "failed"]
            note.detail = f"ci/test exited {result.exit_code}"
        self.runs.append(result)

    def _act_matrix(self, cell: Cell, keys: list[str]) -> Cell:
        """act's --matrix: the cell's own values, and the --matrix given for the jobs it
        needs (a called workflow's cells, which act expands)."""
        chosen = {k: v for k, v in cell.items() if k in keys}
        for key, value in self.called_matrix.items():
            chosen.setdefault(key, value)
        for item in self.options.matrix:
            key, value = item.split(":", 1)
            chosen.setdefault(key, value)
        return chosen

    def _clear(self, directory: Path) -> None:
        for entry in directory.iterdir() if directory.is_dir() else []:
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    # --- the end ---------------------------------------------------------------------------------
    def _teardown(self) -> None:
        """Stop what the rehearsal started and put the host back as its ledger says; each part
        is tried whatever the others did, and the host is checked at the end."""
        daemon = self.paths.daemon
        ledger = Ledger.load(self.paths.ledger)  # unreadable: an error, nothing undone
        errors: list[str] = []

        def attempt(what: str, action: Callable[[], object]) -> object:
            try:
                return action()
            except Exception as exc:  # every part is tried; each error is said
                errors.append(f"{what}: {exc}")
                return None

        with self.progress.phase("teardown") as note:
            ours = runner.Runner.find() if ledger is not None else None
            if ours is not None:
                attempt("sudoers", lambda: runner.SUDOERS.unlink(missing_ok=True))
                attempt("the runner's processes", lambda: _stop_processes(ours))
            if self.registry is not None:
                attempt("the registry", self.registry.stop)
            removed = attempt("containers", daemon.remove_containers) or []
            before = set(ledger.docker_proxies) if ledger is not None else set()
            proxies = {pid for pid, _argv in docker_proxies()} - before
            if daemon.run_dir.exists() or daemon.ours():
                attempt("the daemon", lambda: daemon.stop(proxies))
            if ledger is not None:
                undone = attempt("undo", ledger.undo)
                errors += undone if isinstance(undone, list) else []
            left = daemon.leftovers() + (ledger.leftovers() if ledger is not None else [])
            if errors or left:
                raise RehearsalError(
                    "the host is not as the rehearsal found it:\n  "
                    + "\n  ".join(errors + left)
                    + f"\n(the ledger {self.paths.ledger} is kept; ci/rehearse --down tries again)"
                )
            self.paths.ledger.unlink(missing_ok=True)
            count = len(removed) if isinstance(removed, list) else 0
            note.detail = f"{count} container(s) removed; nothing of ours left"
        results.give_back(self.options.results)

    def _verdict(self) -> None:
        if not self.runs:
            return
        self.progress.line("verdict:")
        for result in self.runs:
            steps = ", ".join(
                f"{n}: {o}" for (_job, n), o in result.steps.items() if not n.startswith("Pre ")
            )
            self.progress.line(
                f"  {result.title}: {'passed' if result.passed else 'FAILED'} "
                f"in {result.seconds:.0f}s (log {result.log})"
            )
            self.progress.line(f"    {steps}")
        if self.options.make_fail:
            wrong = [r.title + ": " + why for r in self.runs if (why := results.not_red_enough(r))]
            if wrong:
                raise RehearsalError("made to fail, but:\n  " + "\n  ".join(wrong))
            self.progress.line(
                "made to fail: every job went red, ran its diagnostics, "
                "uploaded its artifacts and wrote its summary"
            )
            return
        failed = [r.title for r in self.runs if not r.passed]
        if failed:
            raise RehearsalError("jobs failed: " + ", ".join(failed))


def _stop_processes(found: runner.Runner) -> None:
    """Every process of the runner's, killed, and waited for (a job act left running)."""
    if not found.processes():
        return
    subprocess.run(["pkill", "-KILL", "-u", str(found.uid)], check=False)
    eventually(lambda: not found.processes(), timeout=30, what=f"{found.name}'s processes gone")


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP raise KeyboardInterrupt in the block, so its teardown runs."""

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    saved = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _chart_tag(source: Path) -> str:
    """v<the chart's version>: what a release of this tree would be tagged."""
    chart = (source / "chart" / "Chart.yaml").read_text()
    version = re.search(r"^version:\s*(\S+)", chart, re.MULTILINE)
    return f"v{version[1] if version else '0.0.0'}"


def _copy_worktree(source: Path, workspace: Path) -> int:
    """The working tree's changes since HEAD onto the clone: staged or not, added, modified,
    renamed or deleted, and untracked files that git does not ignore."""

    def names(*args: str) -> list[str]:
        return [n for n in run(["git", "-C", source, *args]).stdout.split("\0") if n]

    # --no-renames: a rename is the old name deleted and the new one added.
    diff = ("diff", "--name-only", "-z", "--no-renames")
    deleted = set(names(*diff, "--diff-filter=D", "HEAD"))
    changed = names(*diff, "--diff-filter=d", "HEAD")
    changed += names("ls-files", "-z", "--others", "--exclude-standard")
    for name in changed:
        target = workspace / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, target)
    for name in deleted:
        with contextlib.suppress(FileNotFoundError):
            (workspace / name).unlink()
    return len(changed) + len(deleted)
