"""Play a scenario file on a cluster: the one engine behind pytest and ``python -m e2e.reproduce``.

The file's steps (``spec.upgrade`` and ``spec.events``) are dispatched by action
through :data:`STEPS` to functions that call :class:`~e2e.stage.Stage`'s
methods; the work (``spec.work``) arrives from its own thread; each helm command
is watched by a thread that marks its end. Then the expectations
(:data:`~e2e.playbook.checks.EXPECTATIONS`) judge what the run recorded.

Times are seconds from t0, the moment the recording starts (the release is
installed by then). Steps run one after another: at the same time, in file
order, after the work due by then; a step that waits delays the ones after it.
One line per state change goes to the ``e2e.playbook`` logger.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e.helm import BackgroundHelm, Helm
from e2e.kube import AppAnswer, is_ready, wait_for
from e2e.playbook.checks import (
    CONDITIONS,
    EXPECTATIONS,
    MISSING,
    Arrival,
    Outcome,
    Row,
    object_key,
    value_at,
)
from e2e.playbook.collectors import collect
from e2e.playbook.load import Play, Step, Work
from e2e.stage import Stage, gate_gave_up, gate_opened
from e2e.timeline import Operation

log = logging.getLogger("e2e.playbook")

# How long a step may wait for what it needs, per action; a step's `timeout` wins.
DEFAULT_TIMEOUTS: dict[str, float] = {
    "check": 30.0,
    "deleteHookPod": 60.0,
    "deletePod": 30.0,
    "killApp": 30.0,
    "scale": 30.0,
    "killHelm": 10.0,
    "restartApiServer": 300.0,
    "drainNode": 60.0,  # evictions a PodDisruptionBudget refuses are retried until then
    "uncordonNode": 10.0,
    "startNode": 180.0,  # until the node is Ready again
}
EVICTION_RETRY = 5.0  # s between tries of an eviction a budget refused, as kubectl drain
CONTROL_PLANE = "node-role.kubernetes.io/control-plane"  # the control-plane node's label
PROBE_SECONDS = 0.1  # the operation acceptsWorkWithin starts on each pod
SETTLE_SECONDS = 90.0  # after the run: terminating pods gone, operations over
VERDICT_FILE = "verdict.json"


@dataclass
class Verdict:
    """Every check step's conditions and every expectation, with what was seen."""

    scenario: str
    file: str
    helm: str
    directory: str
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    # What became of the work: each operation's and arrival's fate (Outcome.fates).
    fates: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def held(self) -> bool:
        return bool(self.rows) and all(row.held for row in self.rows)

    def failures(self) -> list[Row]:
        return [row for row in self.rows if not row.held]

    def table(self) -> str:
        width = max(len(row.name) for row in self.rows)
        wide = max(len(row.expected) for row in self.rows)
        lines = [
            f"{'PASS' if row.held else 'FAIL'}  {row.name:<{width}}  "
            f"{row.expected:<{wide}}  {row.observed}"
            for row in self.rows
        ]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "file": self.file,
            "helm": self.helm,
            "directory": self.directory,
            "held": self.held,
            "rows": [row.to_json() for row in self.rows],
            "notes": self.notes,
            "fates": self.fates,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Verdict:
        return cls(
            scenario=data["scenario"],
            file=data["file"],
            helm=data["helm"],
            directory=data["directory"],
            rows=[Row(**row) for row in data["rows"]],
            notes=list(data.get("notes", [])),
            fates=dict(data.get("fates", {})),
        )


def play(scenario_file: Play, stage: Stage, helm_binary: Path | None, workdir: Path) -> Verdict:
    """Play the file in the scenario's namespace; the verdict also goes to verdict.json."""
    if helm_binary is not None and helm_binary != stage.helm.binary:
        stage.helm = Helm(helm_binary, stage.kube.kubeconfig, workdir)
    verdict = Run(scenario_file, stage).go()
    (stage.artifacts / VERDICT_FILE).write_text(json.dumps(verdict.to_json(), indent=2))
    return verdict


class Run:
    """One play of one file: the steps, the work, the helm commands, and what they saw."""

    def __init__(self, file: Play, stage: Stage) -> None:
        self.file = file
        self.stage = stage
        self.rows: list[Row] = []
        self.notes: list[str] = []
        self.commands: dict[str, BackgroundHelm] = {}
        self.ended: dict[str, float] = {}  # name -> seconds from t0
        self.main_command: BackgroundHelm | None = None
        self.originals: dict[str, str] = {}  # uid -> name of the app pods at t0
        self.accepted: dict[str, str] = {}  # pod -> operation started by a refusesWork try
        self.probes: set[str] = set()  # operations started by checks, not by the file's work
        self.deleted: set[str] = set()  # pods deleted by the file's deletePod and drainNode steps
        self.cordoned: set[str] = set()  # nodes cordoned by drainNode, not yet uncordoned
        self.stopped: set[str] = set()  # nodes stopped by stopNode, not yet started again
        # restartApiServer stopped the API server and has not seen it answer again.
        self.api_stopped = False
        self.arrivals: list[Arrival] = []  # of the file's work, as they came
        self.named: dict[str, str] = {}  # work `as` -> the pod that accepted its first operation
        self._at_start: dict[tuple[Any, ...], Any] = {}  # object paths' values at the start
        self.accepts_after: float | None = None
        self.t0 = time.monotonic()
        self._changed = threading.Event()  # a helm command ended
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._work_done = 0
        self._work_progress = threading.Condition(self._lock)
        self._spread = 0
        self._watchers: list[threading.Thread] = []

    # -- the run --------------------------------------------------------------------------

    def go(self) -> Verdict:
        refused = self.file.refused_on("kind" if self.stage.api_server else "given")
        assert refused is None, f"{refused}; nothing was run"
        self._set_up()
        with self.stage.recording(f"{self.file.name} ({self.stage.helm.name})") as recorder:
            self.t0 = time.monotonic() - (time.time() - recorder.timeline.started)
            self.say(
                f"run starts: {len(self.originals)} pod(s) of {self.file.image}, "
                f"{self.stage.helm.name} {self.stage.helm.version}"
            )
            worker = threading.Thread(target=self._work, name="playbook-work", daemon=True)
            worker.start()
            try:
                try:
                    self._steps()
                except Exception as exc:  # a step could not do its part: skip the rest, judge
                    log.exception("step failed")
                    self.rows.append(
                        Row("steps", "all done", f"{type(exc).__name__}: {exc}", False)
                    )
                self._wait_for_commands()
                self._finish_work(worker)
                self._settle()
                release, served = self._final_state()
            finally:
                self._restore_nodes()
        main = self.main_command
        outcome = Outcome(
            timeline=self.stage.timeline(),
            main_code=main.proc.returncode if main and not main.running() else None,
            main_output=main.output if main else "",
            main_started=main.started if main else 0.0,
            main_ended=main.ended if main else None,
            originals=self.originals,
            gate=gate_opened(main.output) if main else None,
            accepts_after=self.accepts_after,
            release=release,
            served=served,
            probes=self.probes,
            deleted=self.deleted,
            gave_up=gate_gave_up(main.output) if main else None,
            arrivals=list(self.arrivals),
        )
        expect = self.file.expect_for(self.stage.helm.major)
        rows = [EXPECTATIONS[key](outcome, value) for key, value in expect.items()]
        if main and main.ended:
            for row in rows:
                if row.name == "helm":
                    row.figure = main.ended - main.started
        self._collect(failed=not all(row.held for row in self.rows + rows))
        return Verdict(
            scenario=self.file.name,
            file=str(self.file.path),
            helm=f"{self.stage.helm.name} {self.stage.helm.version}",
            directory=str(self.stage.artifacts),
            rows=self.rows + rows,
            notes=self.notes,
            fates=outcome.fates(),
        )

    def _collect(self, failed: bool) -> None:
        """The file's collectors: spec.catch where something failed, then spec.finally."""
        collectors = (self.file.catch if failed else ()) + self.file.finally_
        if not collectors:
            return
        directory = self.stage.artifacts / "collected"
        written = collect(self.stage, collectors, self.resolve, directory)
        self.notes.append(f"collected: {len(written)} file(s) in {directory}")

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def say(self, text: str) -> None:
        log.info("+%5.1fs %s", self.elapsed(), text)

    def _set_up(self) -> None:
        s, file = self.stage, self.file
        s.install(file.image, replicaCount=file.replicas, **file.values)
        for i, upgrade in enumerate(file.upgrades):
            command = s.upgrade(upgrade.get("image", self.tag()), **upgrade.get("values", {}))
            code = s.finish(command, label=f"set-up upgrade {i + 1}")
            assert code == 0, f"spec.release.upgrades[{i}] failed:\n{command.output}"
        self.originals = {p.metadata.uid: p.metadata.name for p in s.app_pods()}
        # What each object assertion with `sameAs: start` compares with, seen now.
        for step in self.file.steps:
            for assertion in step.args.get("objects", []) if step.action == "check" else []:
                if assertion.get("sameAs") == "start":
                    found = self.object(*object_key(assertion), assertion.get("in", "cluster"))
                    seen = MISSING if found is None else value_at(found, list(assertion["path"]))
                    self._at_start[_start_key(assertion)] = seen

    def tag(self) -> str:
        return str(self.stage.values["image"]["tag"])

    # -- steps ------------------------------------------------------------------------------

    def _steps(self) -> None:
        pending = list(enumerate(self.file.steps))
        while pending:
            ready = [(self._due(step), i, step) for i, step in pending]
            due = [(moment, i, step) for moment, i, step in ready if moment is not None]
            now = self.elapsed()
            runnable = [entry for entry in due if entry[0] <= now]
            if runnable:
                _, i, step = min(runnable, key=lambda entry: (entry[0], entry[1]))
                pending.remove((i, step))
                if step.at is not None:
                    self._await_work(step.at)
                self._do(step)
                continue
            if now > self.file.duration and not due:
                waiting = ", ".join(step.describe() for _, step in pending)
                raise AssertionError(f"the run ended with steps never run: {waiting}")
            future = [moment for moment, _, _ in due]
            wait = min(future) - now if future else self.file.duration + 1 - now
            self._changed.wait(max(0.0, min(wait, 5.0)))
            self._changed.clear()

    def _due(self, step: Step) -> float | None:
        if step.after is None:
            return step.at
        return self.ended.get(step.after)

    def _do(self, step: Step) -> None:
        timeout = step.timeout or DEFAULT_TIMEOUTS.get(step.action, 0.0)
        STEPS[step.action](self, step, timeout)

    # -- helm commands ---------------------------------------------------------------------

    def start_command(self, step: Step, command: BackgroundHelm, what: str) -> None:
        name = step.name or step.action
        self.commands[name] = command
        if step.main:
            self.main_command = command
        self.say(f"{what} started ({self.stage.helm.name}, '{name}')")
        watcher = threading.Thread(
            target=self._watch, args=(name, command, step), name=f"helm-{name}", daemon=True
        )
        watcher.start()
        self._watchers.append(watcher)

    def _watch(self, name: str, command: BackgroundHelm, step: Step) -> None:
        while True:
            try:
                command.wait(1.0)  # returns the moment helm exits
                break
            except TimeoutError:
                if self._stop.is_set():
                    return
        code = self.stage.finish(command, timeout=5, label=name)
        ended = command.ended or time.time()
        self.say(f"helm '{name}' exited {code} after {ended - command.started:.1f}s")
        if step.main:
            gate = gate_opened(command.output)
            if gate and self.stage.recorder:
                self.stage.recorder.mark_at("hook: upgrade may proceed", gate[1])
            expect = self.file.expect_for(self.stage.helm.major)
            if "acceptsWorkWithin" in expect:
                self._measure_accepts(ended, float(expect["acceptsWorkWithin"]))
        with self._lock:
            self.ended[name] = self.elapsed()
        self._changed.set()

    def _wait_for_commands(self) -> None:
        for name, command in self.commands.items():
            left = self.file.duration - self.elapsed()
            try:
                command.wait(max(left, 1.0))
            except TimeoutError:
                self.rows.append(
                    Row(
                        f"helm '{name}' ended",
                        f"within the run ({self.file.duration:g}s)",
                        "still running: stopped",
                        False,
                    )
                )
                command.stop()
        for watcher in self._watchers:
            watcher.join(timeout=30 + 2 * SETTLE_SECONDS)

    def _measure_accepts(self, ended: float, limit: float) -> None:
        """Until every live Ready app pod has accepted an operation (bounded: limit + 30 s)."""
        kube, ns = self.stage.kube, self.stage.namespace
        accepted: dict[str, float] = {}

        def all_accept() -> bool:
            pods = [p.metadata.name for p in self.stage.app_pods() if is_ready(p)]
            for pod in pods:
                if pod in accepted:
                    continue
                answer = kube.call(ns, pod, "POST", "/operations", {"seconds": PROBE_SECONDS})
                if answer.status == 202:
                    accepted[pod] = time.time()
                    self.probes.add(str(answer.body.get("id")))
            return bool(pods) and all(pod in accepted for pod in pods)

        try:
            wait_for(all_accept, timeout=limit + 30, what="every app pod accepting work")
            self.accepts_after = max(accepted.values()) - ended
            self.say(f"every app pod accepts work, {self.accepts_after:.2f}s after helm ended")
        except AssertionError:
            self.accepts_after = float("inf")
            self.say("some app pod still refuses work")

    # -- work -----------------------------------------------------------------------------------

    def _arrivals(self) -> list[tuple[float, int, Work]]:
        return sorted(
            (
                (moment, i, work)
                for i, work in enumerate(self.file.work)
                for moment in work.arrivals()
            ),
            key=lambda a: (a[0], a[1]),
        )

    def _await_work(self, moment: float) -> None:
        """Work due by ``moment`` comes before a step at that moment."""
        due = sum(1 for t, _, _ in self._arrivals() if t <= moment)
        with self._work_progress:
            self._work_progress.wait_for(lambda: self._work_done >= due, timeout=30)

    def _finish_work(self, worker: threading.Thread) -> None:
        """Every arrival the file schedules is made, also after the last step and helm
        command: the run lasts until its last arrival, within spec.duration."""
        last = max((moment for moment, _, _ in self._arrivals()), default=0.0)
        worker.join(timeout=max(0.0, last - self.elapsed()) + 30)
        self._stop.set()
        worker.join(timeout=15)

    def _work(self) -> None:
        last: dict[str, str] = {}
        counts: dict[str, int] = {}
        for moment, _, work in self._arrivals():
            if self._stop.wait(max(0.0, moment - self.elapsed())):
                break
            pods = self.resolve(work.pods)
            if not pods:
                self.arrivals.append(
                    Arrival(time.time(), "", work.seconds, "unanswered", "no pod to take it")
                )
            for pod in pods:
                arrived = time.time()
                answer = self.stage.kube.call(
                    self.stage.namespace, pod, "POST", "/operations", {"seconds": work.seconds}
                )
                arrival = Arrival(arrived, pod, work.seconds, *_fate(answer))
                self.arrivals.append(arrival)
                if work.name and work.name not in self.named and arrival.fate == "accepted":
                    self.named[work.name] = pod
                    self.say(f"pod {pod} is {work.name!r}")
                outcome = (
                    "accepted" if arrival.fate == "accepted" else f"{arrival.fate} ({arrival.said})"
                )
                counts[outcome] = counts.get(outcome, 0) + 1
                if last.get(pod) != outcome:
                    detail = f" {answer.body.get('id')}" if answer.status == 202 else ""
                    self.say(f"work ({work.seconds:g}s) on {pod}: {outcome}{detail}")
                    last[pod] = outcome
            with self._work_progress:
                self._work_done += 1
                self._work_progress.notify_all()
        if counts:
            self.notes.append(
                "work: " + ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
            )

    def resolve(self, pods: Any) -> list[str]:
        """Pod indexes (the n-th live app pod now, oldest first), `all`, `spread` or a role."""
        live = self._live_pods()
        if isinstance(pods, dict):
            return self._role(pods, live)
        names = [p.metadata.name for p in live]
        if pods == "all":
            return names
        if pods == "spread":
            ready = [p.metadata.name for p in live if is_ready(p)]
            if not ready:
                return []
            self._spread += 1
            return [ready[(self._spread - 1) % len(ready)]]
        indexes = [pods] if isinstance(pods, int) else list(pods)
        missing = [i for i in indexes if i >= len(names)]
        if missing:
            self.say(f"no pod {missing} now: {len(names)} live app pod(s)")
        return [names[i] for i in indexes if i < len(names)]

    def _live_pods(self) -> list[Any]:
        """The live app pods, oldest first: in the order the recording saw them made (to the
        tenth of a second; the API server's creationTimestamp has whole seconds), then by
        creationTimestamp for pods made before it began, then by name."""
        seen = {p.uid: p.created for p in self.stage.timeline().pods.values()}

        def made(pod: Any) -> tuple[float, str]:
            created = seen.get(pod.metadata.uid, pod.metadata.creation_timestamp.timestamp())
            return round(created, 1), pod.metadata.name

        return sorted(self.stage.app_pods(), key=made)

    def _role(self, role: dict[str, Any], live: list[Any]) -> list[str]:
        """The live pods that play ``role`` now (podRole in the schema); none, said why."""
        names = [p.metadata.name for p in live]
        if "named" in role:
            found = [self.named[role["named"]]] if role["named"] in self.named else []
        elif "onNode" in role:
            node = role["onNode"]
            found = [
                p.metadata.name
                for p in live
                if p.spec.node_name == node or (p.spec.node_name or "").endswith(f"-{node}")
            ]
        elif "busiest" in role:
            running = [o for o in self.work() if o.state == "running" and o.pod in names]
            found = [max(running, key=lambda o: o.planned_end).pod] if running else []
        else:
            found = self._replacement(int(role["replacementOf"]), names)
        found = [name for name in found if name in names]
        if not found:
            self.say(f"no pod plays {role} now: {len(names)} live app pod(s)")
        return found

    def node(self, which: str | dict[str, Any]) -> str:
        """The node a step names: a node's name, or its end after the cluster's name (worker2
        for upgrade-gate-worker2), or ``{nodeOf: pod}``, the node that pod runs on now."""
        if isinstance(which, dict):
            pod = _pod(self, which["nodeOf"])
            found = self.pod(pod)
            node = found.spec.node_name if found is not None else None
            assert node, f"pod {pod} runs on no node at +{self.elapsed():.1f}s"
            return str(node)
        names = [str(n.metadata.name) for n in self.stage.kube.core.list_node().items]
        found_names = [n for n in names if n == which] or [
            n for n in names if n.endswith(f"-{which}")
        ]
        assert len(found_names) == 1, (
            f"no node {which!r}: the cluster's nodes are {', '.join(sorted(names))}"
            if not found_names
            else f"{which!r} names several nodes: {', '.join(found_names)}"
        )
        return found_names[0]

    def is_control_plane(self, node: str) -> bool:
        found = self.stage.kube.core.read_node(node)
        return CONTROL_PLANE in (found.metadata.labels or {})

    def _replacement(self, index: int, names: list[str]) -> list[str]:
        """The pod made in place of the ``index``-th original pod: the k-th pod made since the
        run began for the k-th original to begin terminating."""
        timeline = self.stage.timeline()
        originals = list(self.originals)  # uids, oldest first
        ended = sorted(
            (life.terminating, uid)
            for uid in originals
            if (life := timeline.pods.get(uid)) and life.terminating is not None
        )
        order = [uid for _, uid in ended]
        if originals[index] not in order:
            return []
        made = [
            life.name
            for life in sorted(timeline.pods.values(), key=lambda life: (life.created, life.name))
            if life.role == "app"
            and life.uid not in self.originals
            and life.created >= timeline.started
        ]
        k = order.index(originals[index])
        return [made[k]] if k < len(made) else []

    # -- what a check step sees of the run (checks.RunView) -------------------------------------

    def pods(self, which: Any) -> list[str]:
        return self.resolve(which)

    def release_status(self) -> str:
        return self.stage.status()

    def hook_running(self) -> bool:
        return self.stage.hook_running()

    def helm_running(self) -> bool:
        return self.main_command.running() if self.main_command else False

    def is_fenced(self, pod: str) -> bool:
        return self.stage.kube.is_fenced(self.stage.namespace, pod)

    def accepted_on(self, pod: str) -> str | None:
        return self.accepted.get(pod)

    def try_work(self, pod: str) -> tuple[int, str]:
        """One second of work on the pod; what it accepts is a probe, never the file's work."""
        status, said = self.probe_work(pod)
        if status == 202:
            self.accepted[pod] = said
        return status, said

    def probe_work(self, pod: str) -> tuple[int, str]:
        s = self.stage
        answer = s.kube.call(s.namespace, pod, "POST", "/operations", {"seconds": 1})
        if answer.status == 202:
            self.probes.add(str(answer.body.get("id")))
        return answer.status, str(answer.body.get("error", answer.body.get("id", "")))

    def original_pods(self) -> dict[str, str]:
        return dict(self.originals)

    def pod(self, name: str) -> Any:
        return self.stage.kube.pod(self.stage.namespace, name)

    def work(self) -> list[Operation]:
        operations = self.stage.timeline().operations.values()
        return [o for o in operations if o.id not in self.probes]

    def object(
        self, api_version: str, kind: str, name: str, source: str = "cluster"
    ) -> dict[str, Any] | None:
        s = self.stage
        name = name.replace("{release}", s.release)
        if source == "manifest":
            return next(
                (
                    o
                    for o in s.helm.manifest(s.release, s.namespace)
                    if (o.get("apiVersion"), o.get("kind")) == (api_version, kind)
                    and (o.get("metadata") or {}).get("name") == name
                ),
                None,
            )
        found: dict[str, Any] | None = s.kube.object(s.namespace, api_version, kind, name)
        return found

    def revisions(self) -> list[dict[str, Any]]:
        return self.stage.helm.revisions(self.stage.release, self.stage.namespace)

    def at_start(self, assertion: Mapping[str, Any]) -> Any:
        return self._at_start.get(_start_key(assertion), MISSING)

    def hook_job_failures(self) -> tuple[int, int]:
        jobs = self.stage.kube.hook_jobs(self.stage.namespace, self.stage.release)
        return sum(int(job.status.failed or 0) for job in jobs), len(jobs)

    def versions_served(self) -> set[str]:
        return self.stage.version_served()

    # -- after the run ------------------------------------------------------------------------

    def _settle(self) -> None:
        """The rollout over, terminating pods gone and operations over, so that the
        end (pods replaced, the version served, cut-offs) can be judged."""
        s = self.stage

        def settled() -> bool:
            if not s.kube.rollout_done(s.namespace, s.release):
                return False
            timeline = s.timeline()
            now = time.time()
            gone = {p.name for p in timeline.pods.values() if p.gone}
            going = [p for p in timeline.pods.values() if p.terminating and not p.gone]
            running = [
                o
                for o in timeline.operations.values()
                if o.state == "running" and o.pod not in gone and now < o.planned_end + 5
            ]
            # Work accepted a moment ago that the recorder has not seen yet.
            unseen = [
                a
                for a in self.arrivals
                if a.fate == "accepted" and a.pod not in gone and now < a.at + a.seconds + 1
            ]
            return not going and not running and not unseen

        try:
            what = "rollout done, terminating pods gone, work over"
            wait_for(settled, timeout=SETTLE_SECONDS, what=what)
        except AssertionError as exc:
            self.notes.append(f"not settled: {exc}")

    def _restore_nodes(self) -> None:
        """The cluster as the run found it, whatever happened: the API server the file stopped
        answering again, every node it stopped started again, every node it cordoned
        uncordoned (the scenarios after it need them all). What had to be done is noted;
        what could not be fails the verdict."""
        if self.api_stopped:
            try:
                assert self.stage.api_server is not None, "this cluster cannot start its API server"
                self.stage.api_server.start_api_server()
                self.api_stopped = False
                self.say("API server started again: the file left it stopped")
                self.notes.append("API server started again at the end of the run")
            except Exception as exc:
                log.exception("starting the API server at the end of the run")
                self.rows.append(
                    Row(
                        "cluster restored",
                        "API server answering",
                        f"{type(exc).__name__}: {exc}",
                        False,
                    )
                )
        power = self.stage.node_power
        for node in sorted(self.stopped):
            try:
                assert power is not None, "this cluster cannot start a node"
                power.start_node(node, DEFAULT_TIMEOUTS["startNode"])
                self.stopped.discard(node)
                self.stage.mark(f"node {node} started")
                self.say(f"node {node} started again: the file left it stopped")
                self.notes.append(f"node {node} started again at the end of the run")
            except Exception as exc:
                log.exception("starting node %s at the end of the run", node)
                self.rows.append(
                    Row("nodes restored", "started", f"{node}: {type(exc).__name__}: {exc}", False)
                )
        for node in sorted(self.cordoned):
            try:
                self.stage.cordon(node, unschedulable=False)
                self.cordoned.discard(node)
                self.say(f"node {node} uncordoned: the file left it cordoned")
                self.notes.append(f"node {node} uncordoned at the end of the run")
            except Exception as exc:
                log.exception("uncordoning node %s at the end of the run", node)
                self.rows.append(
                    Row(
                        "nodes restored",
                        "uncordoned",
                        f"{node}: {type(exc).__name__}: {exc}",
                        False,
                    )
                )

    def _final_state(self) -> tuple[tuple[str, int] | None, set[str]]:
        s = self.stage
        try:
            current = s.helm.current(s.release, s.namespace)
            release: tuple[str, int] | None = (str(current.status.value), int(current.revision))
        except Exception as exc:  # no release: the expectation says so
            log.info("no release: %s", exc)
            release = None
        return release, s.version_served()


# -- the actions ------------------------------------------------------------------------------


def _upgrade(run: Run, step: Step, timeout: float) -> None:
    args = step.args
    tag = args.get("image") or run.tag()
    extra = [*args.get("flags", [])]
    if step.timeout:
        extra += ["--timeout", f"{step.timeout:g}s"]
    command = run.stage.upgrade(tag, *extra, **args.get("values", {}))
    what = f"helm upgrade to {tag}" + (" (values only)" if "image" not in args else "")
    run.start_command(step, command, what + (f" {' '.join(extra)}" if extra else ""))


def _rollback(run: Run, step: Step, timeout: float) -> None:
    extra = [*step.args.get("flags", [])]
    if step.timeout:
        extra += ["--timeout", f"{step.timeout:g}s"]
    command = run.stage.rollback(int(step.args["revision"]), *extra)
    run.start_command(step, command, f"helm rollback to revision {step.args['revision']}")


def _pod(run: Run, which: int | dict[str, Any]) -> str:
    names = run.resolve(which if isinstance(which, dict) else [which])
    assert names, f"no pod {which} at +{run.elapsed():.1f}s"
    return names[0]


def _delete_pod(run: Run, step: Step, timeout: float) -> None:
    name, force = _pod(run, step.args["pod"]), bool(step.args.get("force"))
    run.deleted.add(name)
    run.stage.delete_pod(name, force=force)
    run.say(f"pod {name} deleted{' (force)' if force else ''}")
    kube, ns = run.stage.kube, run.stage.namespace
    wait_for(
        lambda: (pod := kube.pod(ns, name)) is None or pod.metadata.deletion_timestamp,
        timeout=timeout,
        what=f"pod {name} terminating",
    )


def _kill_app(run: Run, step: Step, timeout: float) -> None:
    name, signal_name = _pod(run, step.args["pod"]), step.args.get("signal", "KILL")
    said = run.stage.kill_app(name, signal_name)
    run.say(f"app in {name}: SIG{signal_name} ({said})")


def _delete_hook_pod(run: Run, step: Step, timeout: float) -> None:
    s = run.stage
    once = step.args.get("once", "running")

    def ready() -> str | None:
        pod = s.running_hook_pod()
        if pod is None or once == "running":
            return pod
        live = [p.metadata.name for p in s.app_pods()]
        fenced = all(
            s.kube.call(s.namespace, name, "GET", "/upgradeable").body.get("draining")
            for name in live
        )
        return pod if live and fenced else None

    first = wait_for(ready, timeout=timeout, what=f"a hook pod {once}")
    s.delete_pod(first, force=bool(step.args.get("force")))
    run.say(f"hook pod {first} deleted")
    if step.args.get("waitForReplacement"):
        second = wait_for(
            lambda: (name := s.running_hook_pod()) and name != first and name,
            timeout=timeout,
            what="the Job's next hook pod running",
        )
        run.say(f"hook pod {second} runs in its place")


def _kill_helm(run: Run, step: Step, timeout: float) -> None:
    name = str(step.args.get("command") or run.file.main.name)
    command = run.commands.get(name)
    assert command is not None, f"helm command {name!r} has not started"
    signal_name = step.args.get("signal", "TERM")
    run.stage.kill_helm(command, signal_name)
    run.say(f"helm '{name}' sent SIG{signal_name}")


def _restart_api_server(run: Run, step: Step, timeout: float) -> None:
    cluster = run.stage.api_server
    assert cluster is not None, f"{step.where}: this cluster cannot restart its API server"
    down = float(step.args.get("downSeconds", 0))
    # Set first: a stop that fails half way (the manifests moved, the API server still
    # answering at the timeout) is put back at the end of the run too.
    run.api_stopped = True
    cluster.stop_api_server()
    run.say("API server stopped")
    time.sleep(down)
    started = run.elapsed()
    cluster.start_api_server()
    run.api_stopped = False
    run.say(
        f"API server answering again, the control plane whole {run.elapsed() - started:.0f}s "
        f"after its start (down {down:g}s once it stopped answering)"
    )


def _drain_node(run: Run, step: Step, timeout: float) -> None:
    """``kubectl drain --pod-selector`` of the release's app pods: the node cordoned, each
    app pod on it evicted through the Eviction API (which honours PodDisruptionBudgets: a
    refusal, 429, is tried again every 5 s until the step's timeout); the step ends once
    each is terminating (drain would also wait for them to be gone)."""
    s, started = run.stage, time.monotonic()
    node = run.node(step.args["node"])
    run.cordoned.add(node)
    s.cordon(node)
    pods = [p.metadata.name for p in s.app_pods() if p.spec.node_name == node]
    run.say(f"node {node} cordoned; its app pods: {', '.join(pods) or 'none'}")
    left, refused = list(pods), dict[str, str]()
    while left:
        for pod in list(left):
            why = s.evict(pod)
            if why is None:
                left.remove(pod)
                run.deleted.add(pod)
                run.say(f"pod {pod} evicted")
            elif refused.get(pod) != why:
                refused[pod] = why
                run.say(f"eviction of {pod} refused for now: {why}")
        if left:
            assert time.monotonic() - started < timeout, (
                f"eviction still refused after {timeout:g}s: "
                + "; ".join(f"{pod}: {refused[pod]}" for pod in left)
            )
            time.sleep(EVICTION_RETRY)
    kube, ns = s.kube, s.namespace
    wait_for(
        lambda: all(
            (pod := kube.pod(ns, name)) is None or pod.metadata.deletion_timestamp for name in pods
        ),
        timeout=max(1.0, timeout - (time.monotonic() - started)),
        what=f"the app pods of {node} terminating",
    )


def _uncordon_node(run: Run, step: Step, timeout: float) -> None:
    node = run.node(step.args["node"])
    run.stage.cordon(node, unschedulable=False)
    run.cordoned.discard(node)
    run.say(f"node {node} uncordoned")


def _stop_node(run: Run, step: Step, timeout: float) -> None:
    power = run.stage.node_power
    assert power is not None, f"{step.where}: this cluster cannot stop a node"
    node = run.node(step.args["node"])
    assert not run.is_control_plane(node), (
        f"{step.where}: {node} is the control-plane node, which is never stopped"
    )
    run.stopped.add(node)
    power.stop_node(node)
    run.stage.mark(f"node {node} stopped")
    run.say(f"node {node} stopped")


def _start_node(run: Run, step: Step, timeout: float) -> None:
    power = run.stage.node_power
    assert power is not None, f"{step.where}: this cluster cannot start a node"
    node = run.node(step.args["node"])
    power.start_node(node, timeout)
    run.stopped.discard(node)
    run.stage.mark(f"node {node} started")
    run.say(f"node {node} started and Ready")


def _scale(run: Run, step: Step, timeout: float) -> None:
    run.stage.scale(int(step.args["replicas"]))
    run.say(f"scaled to {step.args['replicas']}")


def _check(run: Run, step: Step, timeout: float) -> None:
    seen: dict[str, tuple[bool, str]] = {}

    def all_hold() -> bool:
        for key, expected in step.args.items():
            seen[key] = CONDITIONS[key](run, expected)
        return all(held for held, _ in seen.values())

    try:
        wait_for(all_hold, timeout=timeout, what=step.describe())
        when = f" (at +{run.elapsed():.1f}s)"
    except AssertionError:
        when = f" (gave up at +{run.elapsed():.1f}s)"
    for key, expected in step.args.items():
        held, observed = seen[key]
        run.rows.append(Row(f"{step.describe()}: {key}", _shown(expected), observed + when, held))
    run.say(f"{step.describe()}: " + ("held" if all(h for h, _ in seen.values()) else "FAILED"))


Action = Callable[[Run, Step, float], None]
STEPS: dict[str, Action] = {
    "upgrade": _upgrade,
    "rollback": _rollback,
    "deletePod": _delete_pod,
    "killApp": _kill_app,
    "deleteHookPod": _delete_hook_pod,
    "killHelm": _kill_helm,
    "restartApiServer": _restart_api_server,
    "drainNode": _drain_node,
    "uncordonNode": _uncordon_node,
    "stopNode": _stop_node,
    "startNode": _start_node,
    "scale": _scale,
    "check": _check,
}


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def _start_key(assertion: Mapping[str, Any]) -> tuple[Any, ...]:
    return (assertion.get("in", "cluster"), *object_key(assertion), *assertion["path"])


def _fate(answer: AppAnswer) -> tuple[str, str]:
    """(fate, what was said) of one arrival: the operation's id; the app's refusal, its
    status and error; or, where the app did not answer, what did instead."""
    if answer.status == 202:
        return "accepted", str(answer.body.get("id"))
    if answer.status and "error" in answer.body:
        return "refused", f"{answer.status} {answer.body['error']}"
    other = answer.body.get("error") or answer.body.get("message") or answer.body.get("raw", "")
    return "unanswered", f"{answer.status} {str(other)[:80]}".strip()
