"""The named checks of scenario files: conditions during a run and expectations at its end.

A ``check`` step's conditions (:data:`CONDITIONS`) look at the cluster as it is
now; ``spec.expect`` (:data:`EXPECTATIONS`) judges what the whole run recorded
(:class:`Outcome`). Each is a plain Python function, looked up by the file's key:
no expression language. A new check is a new function in one of the two dicts
(and a property in scenario.schema.json).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from e2e.timeline import Operation, PodLife, Timeline


@dataclass
class Row:
    """One line of the verdict table."""

    name: str
    expected: str
    observed: str
    held: bool
    figure: float | None = None  # a delay in seconds, for --repeat's spread

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Arrival:
    """One arrival of the file's work at one pod, and how the pod answered."""

    at: float  # wall-clock seconds, as the timeline's
    pod: str  # "" when no pod was there to take it
    seconds: float
    fate: str  # accepted, refused (the app said no), unanswered (no pod, or not the app)
    said: str  # the operation's id, the app's status and error, or what answered instead


# What became of an operation of the file's work, and of an arrival; the keys of
# ``expect.operations`` and ``expect.arrivals``.
OPERATION_FATES = ("succeeded", "drained", "cutOff", "failed", "running")
ARRIVAL_FATES = ("accepted", "refused", "unanswered")


@dataclass
class Outcome:
    """What a run saw, for the expectations."""

    timeline: Timeline
    main_code: int | None  # None: still running at the end of the run
    main_output: str
    main_started: float
    main_ended: float | None
    originals: dict[str, str]  # uid -> name: the app pods when the run began
    gate: tuple[int, float, float] | None  # (pods, moment, the hook's own wait) from helm's output
    accepts_after: float | None  # None: never measured; inf: never accepted
    release: tuple[str, int] | None  # (status, revision) at the end
    served: set[str] = field(default_factory=set)
    probes: set[str] = field(default_factory=set)  # ids of the operations acceptsWork started
    deleted: set[str] = field(default_factory=set)  # pods deletePod deleted, drainNode evicted
    gave_up: float | None = None  # when the hook said its deadline passed (fences released)
    arrivals: list[Arrival] = field(default_factory=list)  # of the file's work, in order

    def work(self) -> list[Operation]:
        return [o for o in self.timeline.operations.values() if o.id not in self.probes]

    def last_end(self) -> float | None:
        """When the last operation running under the gate ended (None: none ran)."""
        if self.gate is None:
            return None
        _, opened, _ = self.gate
        ends = [o.finished or opened for o in self.work() if o.started < opened]
        return max(ends) if ends else None

    def fate(self, op: Operation) -> str:
        """succeeded (before its pod began terminating), drained (ended while it was),
        cutOff (its pod went away first), failed, or running (at the run's end)."""
        if op.cut_off:
            return "cutOff"
        if op.state != "succeeded":
            return op.state
        life = next((p for p in self.timeline.pods.values() if p.name == op.pod), None)
        if life and life.terminating and op.finished and op.finished >= life.terminating:
            return "drained"
        return "succeeded"

    def fates(self) -> dict[str, list[dict[str, Any]]]:
        """Every operation of the file's work and every arrival, each with its fate and the
        phase of the upgrade it began in: verdict.json's record of what became of the work."""
        t0 = self.timeline.started
        return {
            "operations": [
                {
                    "pod": op.pod,
                    "id": op.id,
                    "seconds": op.seconds,
                    "started": round(op.started - t0, 3),
                    "finished": None if op.finished is None else round(op.finished - t0, 3),
                    "phase": self.phase(op.started),
                    "fate": self.fate(op),
                }
                for op in sorted(self.work(), key=lambda op: op.started)
            ],
            "arrivals": [
                {
                    "at": round(a.at - t0, 3),
                    "pod": a.pod,
                    "seconds": a.seconds,
                    "phase": self.phase(a.at),
                    "fate": a.fate,
                    "said": a.said,
                }
                for a in self.arrivals
            ],
        }

    def phase(self, moment: float) -> str:
        """Of the upgrade's helm command: before it started, during, after it ended."""
        if moment < self.main_started:
            return "before"
        return "during" if self.main_ended is None or moment < self.main_ended else "after"

    def hook_pods(self) -> list[PodLife]:
        return sorted(
            (p for p in self.timeline.pods.values() if p.role == "hook"), key=lambda p: p.created
        )


def at(outcome: Outcome, moment: float | None) -> str:
    return "never" if moment is None else f"+{moment - outcome.timeline.started:.1f}s"


# -- conditions of check steps: (view, expected) -> (held, observed) ----------------------------


class RunView(Protocol):
    """What a check step sees of a run in progress (the engine's ``Run`` is one). Checks only
    look: the one thing they may ask for, one second of work on a fenced pod to see it refused,
    the run starts and records itself (as a probe, not the file's work)."""

    def pods(self, which: Any) -> list[str]:
        """Pod names now: an index, a list of them, ``all`` or ``spread``."""

    def release_status(self) -> str: ...

    def hook_running(self) -> bool: ...

    def helm_running(self) -> bool: ...

    def is_fenced(self, pod: str) -> bool: ...

    def accepted_on(self, pod: str) -> str | None:
        """The probe operation the pod once accepted, if one did."""

    def try_work(self, pod: str) -> tuple[int, str]:
        """(HTTP status, the operation's id or the error) of one second of work started;
        a pod that accepts it is remembered (``accepted_on``)."""

    def probe_work(self, pod: str) -> tuple[int, str]:
        """The same, remembered only as a probe: for a pod expected to take work."""

    def original_pods(self) -> Mapping[str, str]:
        """uid -> name of the app pods when the run began."""

    def pod(self, name: str) -> Any: ...

    def work(self) -> list[Operation]:
        """The file's operations (not the probes) as recorded now."""

    def hook_job_failures(self) -> tuple[int, int]:
        """(failed pods, Jobs) of the release's hook Jobs."""

    def versions_served(self) -> set[str]: ...

    def object(
        self, api_version: str, kind: str, name: str, source: str = "cluster"
    ) -> dict[str, Any] | None:
        """An object of the release's namespace as a plain dict; None if there is none.
        ``source``: ``cluster``, what the API server holds (LookupError for a kind it does not
        serve), or ``manifest``, what the release's current revision rendered for it."""

    def revisions(self) -> list[dict[str, Any]]:
        """``helm history``: revision, status and description of each, oldest first."""

    def at_start(self, assertion: Mapping[str, Any]) -> Any:
        """What an object assertion's ``path`` held when the run began."""


def _release(run: RunView, expected: str) -> tuple[bool, str]:
    status = run.release_status()
    return status == expected, status


def _hook_running(run: RunView, expected: bool) -> tuple[bool, str]:
    running = run.hook_running()
    return running == expected, "running" if running else "not running"


def _helm_running(run: RunView, expected: bool) -> tuple[bool, str]:
    running = run.helm_running()
    return running == expected, "running" if running else "ended"


def _fenced(run: RunView, expected: Any) -> tuple[bool, str]:
    seen = {pod: run.is_fenced(pod) for pod in run.pods(expected)}
    return bool(seen) and all(seen.values()), _names(seen, "fenced", "not fenced")


def _refuses_work(run: RunView, expected: Any) -> tuple[bool, str]:
    seen: dict[str, str] = {}
    for pod in run.pods(expected):
        accepted = run.accepted_on(pod)
        if accepted is not None:  # work was started on it once: never try again
            seen[pod] = f"accepted {accepted}"
        elif not run.is_fenced(pod):
            seen[pod] = "not fenced yet"
        else:
            status, said = run.try_work(pod)
            seen[pod] = f"{status} {said}"
    held = bool(seen) and all(v == "503 draining" for v in seen.values())
    return held, ", ".join(f"{pod}: {v}" for pod, v in seen.items())


def _not_fenced(run: RunView, expected: Any) -> tuple[bool, str]:
    seen = {pod: not run.is_fenced(pod) for pod in run.pods(expected)}
    return bool(seen) and all(seen.values()), _names(seen, "not fenced", "fenced")


def _accepts_work(run: RunView, expected: Any) -> tuple[bool, str]:
    seen: dict[str, str] = {}
    for pod in run.pods(expected):
        status, said = run.probe_work(pod)
        seen[pod] = "accepts" if status == 202 else f"{status} {said}"
    held = bool(seen) and all(v == "accepts" for v in seen.values())
    return held, ", ".join(f"{pod}: {v}" for pod, v in seen.items()) or "no pod"


# The apiVersion of kinds a file may name without one.
API_VERSIONS = {
    "Pod": "v1",
    "ConfigMap": "v1",
    "Secret": "v1",
    "Service": "v1",
    "ServiceAccount": "v1",
    "Event": "v1",
    "Deployment": "apps/v1",
    "ReplicaSet": "apps/v1",
    "Job": "batch/v1",
    "PodDisruptionBudget": "policy/v1",
    "Role": "rbac.authorization.k8s.io/v1",
    "RoleBinding": "rbac.authorization.k8s.io/v1",
}
MISSING = object()  # a path that leads nowhere in the object


def value_at(tree: Any, path: list[Any]) -> Any:
    """The value at ``path`` (keys and list indexes) in ``tree``, or MISSING."""
    for step in path:
        in_map = isinstance(tree, dict) and step in tree
        in_list = (
            isinstance(tree, list) and isinstance(step, int) and -len(tree) <= step < len(tree)
        )
        if not (in_map or in_list):
            return MISSING
        tree = tree[step]
    return tree


def mismatch(wanted: Any, seen: Any, where: str = "") -> str | None:
    """Where ``seen`` differs from the partial tree ``wanted`` (None: it matches): every key
    given must be there with a matching value; a list matches item by item, of the same length."""
    if isinstance(wanted, dict):
        if not isinstance(seen, dict):
            return f"{where or '.'}: {_shown_value(seen)}, not a mapping"
        for key, value in wanted.items():
            if key not in seen or (seen[key] is None and value is not None):
                return f"{where}.{key}: absent"
            found = mismatch(value, seen[key], f"{where}.{key}")
            if found:
                return found
        return None
    if isinstance(wanted, list):
        if not isinstance(seen, list) or len(seen) != len(wanted):
            return f"{where}: {_shown_value(seen)}, not a list of {len(wanted)}"
        for i, (w, v) in enumerate(zip(wanted, seen, strict=True)):
            found = mismatch(w, v, f"{where}[{i}]")
            if found:
                return found
        return None
    return None if wanted == seen else f"{where or '.'}: {_shown_value(seen)}"


def _shown_value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def object_key(assertion: Mapping[str, Any]) -> tuple[str, str, str]:
    """(apiVersion, kind, name) of an object assertion, the kind's own apiVersion where it
    gives none; ``{release}`` in the name is the run's to put in."""
    kind = str(assertion["kind"])
    return str(assertion.get("apiVersion") or API_VERSIONS[kind]), kind, str(assertion["name"])


def _object(run: RunView, assertion: Mapping[str, Any]) -> tuple[bool, str]:
    api_version, kind, name = object_key(assertion)
    source = str(assertion.get("in", "cluster"))
    shown = f"{kind} {name}" + (" in the manifest" if source == "manifest" else "")
    try:
        found = run.object(api_version, kind, name, source)
    except LookupError as exc:
        return False, str(exc)
    if assertion.get("absent"):
        return found is None, f"{shown} {'absent' if found is None else 'exists'}"
    if found is None:
        return False, f"{shown} does not exist"
    if "matches" in assertion:
        differs = mismatch(assertion["matches"], found)
        return (
            differs is None,
            f"{shown} {'matches' if differs is None else 'differs at ' + differs}",
        )
    path = list(assertion["path"])
    seen = value_at(found, path)
    shown_path = ".".join(map(str, path))
    if seen is MISSING:
        return False, f"{shown}: nothing at {shown_path}"
    if "equals" in assertion:
        held = seen == assertion["equals"]
        return held, f"{shown} {shown_path} = {_shown_value(seen)}"
    start = run.at_start(assertion)
    held = seen == start
    was = "" if held else f" (at the start: {_shown_value(start)})"
    return held, f"{shown} {shown_path} = {_shown_value(seen)}{was}"


def _objects(run: RunView, expected: list[dict[str, Any]]) -> tuple[bool, str]:
    seen = [_object(run, assertion) for assertion in expected]
    return all(held for held, _ in seen), "; ".join(said for _, said in seen)


def _history(run: RunView, expected: list[dict[str, Any]]) -> tuple[bool, str]:
    """``helm history`` revision by revision, oldest first: as many as expected, each with
    the revision and status given and a description that contains the one given."""
    seen = run.revisions()
    shown = ", ".join(f"{r['revision']} {r['status']} ({r['description']})" for r in seen)
    if len(seen) != len(expected):
        return False, f"{len(seen)} revision(s): {shown}"
    for wanted, revision in zip(expected, seen, strict=True):
        if any(revision[k] != wanted[k] for k in ("revision", "status") if k in wanted):
            return False, shown
        if str(wanted.get("description", "")) not in str(revision["description"]):
            return False, shown
    return True, shown


def _pods_untouched(run: RunView, expected: bool) -> tuple[bool, str]:
    changed = []
    originals = run.original_pods()
    for uid, name in originals.items():
        pod = run.pod(name)
        if pod is None or pod.metadata.uid != uid:
            changed.append(f"{name} gone")
        elif pod.metadata.deletion_timestamp is not None:
            changed.append(f"{name} terminating")
    untouched = not changed
    return untouched == expected, ", ".join(changed) or f"{len(originals)} untouched"


def _operations_running(run: RunView, expected: bool) -> tuple[bool, str]:
    now = time.time()
    due = [o for o in run.work() if o.planned_end > now + 0.5]
    stopped = [f"{o.id} {o.state}" for o in due if o.state != "running"]
    running = bool(due) and not stopped
    return running == expected, ", ".join(stopped) or f"{len(due)} running"


def _hook_job_failures(run: RunView, expected: int) -> tuple[bool, str]:
    failed, jobs = run.hook_job_failures()
    return bool(jobs) and failed == expected, f"{failed} failed pod(s) in {jobs} Job(s)"


def _serves_now(run: RunView, expected: str) -> tuple[bool, str]:
    served = run.versions_served()
    return served == {expected}, ", ".join(sorted(served)) or "no pod"


def _names(seen: dict[str, bool], yes: str, no: str) -> str:
    return ", ".join(f"{pod} {yes if ok else no}" for pod, ok in seen.items()) or "no pod"


Condition = Callable[[RunView, Any], tuple[bool, str]]
CONDITIONS: dict[str, Condition] = {
    "release": _release,
    "hookRunning": _hook_running,
    "helmRunning": _helm_running,
    "fenced": _fenced,
    "refusesWork": _refuses_work,
    "notFenced": _not_fenced,
    "acceptsWork": _accepts_work,
    "podsUntouched": _pods_untouched,
    "operationsRunning": _operations_running,
    "hookJobFailures": _hook_job_failures,
    "serves": _serves_now,
    "objects": _objects,
    "history": _history,
}


# -- expectations: (outcome, expected) -> Row ------------------------------------------------------


def _helm(o: Outcome, expected: str) -> Row:
    if o.main_code is None:
        observed = "still running at the end of the run"
    else:
        observed = "succeeded" if o.main_code == 0 else f"failed (exit {o.main_code})"
    return Row("helm", expected, observed, observed.split()[0] == expected)


def _helm_output(o: Outcome, expected: list[str]) -> Row:
    missing = [text for text in expected if text not in o.main_output]
    observed = "all found" if not missing else "missing: " + "; ".join(map(repr, missing))
    return Row("helmOutput", "; ".join(map(repr, expected)), observed, not missing)


def _failure_names_busy(o: Outcome, expected: bool) -> Row:
    # The hook names what was busy when it gave up; work that arrived after it released its
    # fences (and before helm ended) is not the hook's to name.
    end = o.gave_up or o.main_ended or o.timeline.started
    busy = [
        op.id for op in o.work() if op.started < end and (op.finished is None or op.finished > end)
    ]
    unnamed = [op for op in busy if op not in o.main_output]
    named = not unnamed
    observed = (
        f"names {', '.join(busy)}"
        if busy and named
        else f"does not name {', '.join(unnamed)}"
        if unnamed
        else "no operation was running"
    )
    return Row("failureNamesBusyOperations", str(expected).lower(), observed, named == expected)


def _no_cut_off(o: Outcome, expected: bool) -> Row:
    problems = []
    for op in o.work():
        pod = next((p for p in o.timeline.pods.values() if p.name == op.pod), None)
        if op.cut_off:
            problems.append(f"{op.id} on {op.pod} cut off at {at(o, op.finished)}")
        elif op.state != "succeeded":
            problems.append(f"{op.id} on {op.pod} {op.state}")
        elif pod and pod.terminating and op.finished and op.finished >= pod.terminating:
            problems.append(f"{op.id} ended after {op.pod} began terminating")
    none_cut = not problems
    observed = (
        f"{len(o.work())} operation(s), each ended before its pod was replaced"
        if none_cut
        else "; ".join(problems)
    )
    return Row("noOperationCutOff", str(expected).lower(), observed, none_cut == expected)


def _count_holds(count: int, wanted: Any) -> bool:
    if isinstance(wanted, int):
        return count == wanted
    least, most = int(wanted.get("atLeast", 0)), int(wanted.get("atMost", count))
    return least <= count <= most


def _wanted(wanted: Any) -> str:
    if isinstance(wanted, int):
        return str(wanted)
    bounds = [f">= {wanted['atLeast']}" if "atLeast" in wanted else ""]
    bounds.append(f"<= {wanted['atMost']}" if "atMost" in wanted else "")
    return " and ".join(b for b in bounds if b)


def _by_fate(name: str, counts: dict[str, int], expected: dict[str, Any]) -> tuple[bool, str, str]:
    held = all(_count_holds(counts.get(fate, 0), n) for fate, n in expected.items())
    wanted = ", ".join(f"{fate} {_wanted(n)}" for fate, n in expected.items())
    seen = ", ".join(f"{fate} {n}" for fate, n in counts.items() if n) or f"no {name}"
    return held, wanted, seen


def _operations(o: Outcome, expected: dict[str, Any]) -> Row:
    counts = dict.fromkeys(OPERATION_FATES, 0)
    for op in o.work():
        fate = o.fate(op)
        counts[fate] = counts.get(fate, 0) + 1
    held, wanted, seen = _by_fate("operation", counts, expected)
    return Row("operations", wanted, seen, held)


def _arrivals(o: Outcome, expected: dict[str, dict[str, Any]]) -> Row:
    held, wanted, seen = True, [], []
    for phase, fates in expected.items():
        counts = dict.fromkeys(ARRIVAL_FATES, 0)
        for arrival in o.arrivals:
            if phase == "all" or o.phase(arrival.at) == phase:
                counts[arrival.fate] += 1
        ok, want, saw = _by_fate("arrival", counts, fates)
        held = held and ok
        wanted.append(f"{phase}: {want}")
        seen.append(f"{phase}: {saw}")
    refusals = sorted({a.said for a in o.arrivals if a.fate == "refused"})
    said = f" (refused: {', '.join(refusals)})" if refusals else ""
    return Row("arrivals", "; ".join(wanted), "; ".join(seen) + said, held)


def _pods_replaced(o: Outcome, expected: bool) -> Row:
    kept = [
        name
        for uid, name in o.originals.items()
        if (life := o.timeline.pods.get(uid)) is None or life.terminating is None
    ]
    replaced = not kept
    observed = f"all {len(o.originals)} replaced" if replaced else f"kept: {', '.join(kept)}"
    return Row("podsReplaced", str(expected).lower(), observed, replaced == expected)


def _gated_pods(o: Outcome, expected: int) -> Row:
    observed = "no verdict in helm's output" if o.gate is None else f"{o.gate[0]} pod(s)"
    return Row("gatedPods", str(expected), observed, o.gate is not None and o.gate[0] == expected)


def _gate_opened_within(o: Outcome, limit: float) -> Row:
    name, expected = "gateOpenedWithin", f"<= {limit:g}s after the last operation's end"
    if o.gate is None:
        return Row(name, expected, "no verdict in helm's output", False)
    _, opened, waited = o.gate
    running = [op.id for op in o.work() if op.started < opened and (op.finished or 1e18) > opened]
    if running:
        return Row(name, expected, f"opened at {at(o, opened)} while {running} ran", False)
    last = o.last_end()
    if last is None:
        return Row(
            name, expected, f"no operation; the hook waited {waited:.2f}s", waited <= limit, waited
        )
    delay = opened - last
    return Row(name, expected, f"{delay:.3f}s after (at {at(o, opened)})", delay <= limit, delay)


def _hook_exits(o: Outcome, expected: list[int]) -> Row:
    exits = [p.exit_code for p in o.hook_pods()]
    observed = str(exits) if exits else "no hook pod"
    return Row("hookExits", str(expected), observed, exits == expected)


def _hook_exited_within(o: Outcome, limit: float) -> Row:
    """How soon the last hook pod exited after its verdict: the last operation's end where
    the gate opened, the deadline where it gave up. Its exit code is hookExits' to judge."""
    name = "hookExitedWithin"
    reference: float | None
    if o.gate is None and o.gave_up is not None:
        reference, expected = o.gave_up, f"<= {limit:g}s after the hook's deadline"
    else:
        reference = o.last_end() or (o.gate[1] if o.gate else None)
        expected = f"<= {limit:g}s after the last operation's end"
    pods = [p for p in o.hook_pods() if p.exited is not None]
    if not pods or reference is None:
        return Row(name, expected, "no hook exit or no verdict seen", False)
    delay = pods[-1].exited - reference  # type: ignore[operator]
    observed = f"{delay:.2f}s after, exit {pods[-1].exit_code}"
    return Row(name, expected, observed, delay <= limit, delay)


def _rollout_after_gate(o: Outcome, expected: bool) -> Row:
    name = "rolloutAfterGate"
    done_at = o.timeline.hook_done(o.main_started - 1)
    if o.gate is None or done_at is None:
        return Row(name, str(expected).lower(), "no verdict or no finished hook", not expected)
    what, done = done_at
    early = [
        life.name
        for uid in o.originals
        if (life := o.timeline.pods.get(uid)) and life.terminating and life.terminating < done
    ]
    # A pod the file itself deleted was not rolled out by helm, whenever it went.
    deleted = [name for name in early if name in o.deleted]
    early = [name for name in early if name not in o.deleted]
    ordered = o.gate[1] <= done and not early
    observed = (
        f"gate {at(o, o.gate[1])}, {what} {at(o, done)}, then the old pods"
        if ordered
        else f"gate {at(o, o.gate[1])}, {what} {at(o, done)}, terminating before: {early}"
    )
    if deleted:
        observed += f" (deleted by the file, not counted: {', '.join(deleted)})"
    return Row(name, str(expected).lower(), observed, ordered == expected)


def _release_at_end(o: Outcome, expected: dict[str, Any]) -> Row:
    if o.release is None:
        return Row("release", str(expected), "no release", False)
    status, revision = o.release
    held = (
        expected.get("status", status) == status and expected.get("revision", revision) == revision
    )
    wanted = ", ".join(f"{k} {v}" for k, v in expected.items())
    return Row("release", wanted, f"status {status}, revision {revision}", held)


def _accepts_work_within(o: Outcome, limit: float) -> Row:
    name, expected = "acceptsWorkWithin", f"<= {limit:g}s after helm ended"
    if o.accepts_after is None:
        return Row(name, expected, "not measured (helm did not end)", False)
    if o.accepts_after == float("inf"):
        return Row(name, expected, "some pod still refused work", False)
    held = o.accepts_after <= limit
    return Row(name, expected, f"{o.accepts_after:.2f}s after", held, o.accepts_after)


def _serves(o: Outcome, expected: str) -> Row:
    observed = ", ".join(sorted(o.served)) or "no pod answered"
    return Row("serves", expected, observed, o.served == {expected})


Expectation = Callable[[Outcome, Any], Row]
EXPECTATIONS: dict[str, Expectation] = {
    "helm": _helm,
    "helmOutput": _helm_output,
    "failureNamesBusyOperations": _failure_names_busy,
    "noOperationCutOff": _no_cut_off,
    "operations": _operations,
    "arrivals": _arrivals,
    "podsReplaced": _pods_replaced,
    "gatedPods": _gated_pods,
    "gateOpenedWithin": _gate_opened_within,
    "hookExits": _hook_exits,
    "hookExitedWithin": _hook_exited_within,
    "rolloutAfterGate": _rollout_after_gate,
    "release": _release_at_end,
    "acceptsWorkWithin": _accepts_work_within,
    "serves": _serves,
}
