"""The expectations judge what a run recorded, not what the file itself did.

Each test gives an expectation what a real run would record: the real hook
against real app processes on loopback where the hook's words matter, and a
timeline of the moments a cluster showed where only the order matters.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from e2e.loopback import AppProcess
from e2e.playbook.checks import EXPECTATIONS, Arrival, Outcome
from e2e.stage import gate_gave_up
from e2e.timeline import Operation, PodLife, Timeline, epoch
from tests.unit.conftest import AppFactory, Hook, app_server, hooks, make_app, run_hook
from upgrade_gate.hook import Exit

__all__ = ["app_server", "hooks", "make_app"]  # fixtures, used by name


def _operation(app: AppProcess, op_id: str, seconds: float) -> Operation:
    record = app.operation(op_id)
    return Operation(
        pod=app.endpoint, id=op_id, seconds=seconds, started=epoch(record["started_at"])
    )


def outcome(timeline: Timeline, output: str, ended: float, **more: object) -> Outcome:
    return Outcome(
        timeline=timeline,
        main_code=1,
        main_output=output,
        main_started=timeline.started,
        main_ended=ended,
        originals={},
        gate=None,
        accepts_after=None,
        release=None,
        **more,  # type: ignore[arg-type]
    )


def test_work_that_arrives_after_the_deadline_released_the_fences_is_not_the_hooks_to_name(
    make_app: AppFactory, hooks: list[Hook]
) -> None:
    app = make_app()
    started = datetime.now().timestamp()
    long = app.start_operation(60)
    hook = run_hook(hooks, "--endpoints", app.endpoint, "--timeout", "2")
    assert hook.wait() == Exit.NOT_IDLE, hook.output
    # The fences are released: work arrives, as it does on a cluster while helm is still
    # reporting the failed hook.
    late = app.start_operation(60)
    helm_ended = datetime.now().timestamp()

    timeline = Timeline(started=started)
    for op_id in (long, late):
        timeline.operations[op_id] = _operation(app, op_id, 60)
    gave_up = gate_gave_up(hook.output)
    assert gave_up is not None, hook.output
    assert timeline.operations[late].started > gave_up  # the arrival came after the hook's word

    row = EXPECTATIONS["failureNamesBusyOperations"](
        outcome(timeline, hook.output, helm_ended, gave_up=gave_up), True
    )
    assert row.held, row
    assert row.observed == f"names {long}"


def test_without_the_hooks_word_the_busy_work_is_judged_at_helms_end() -> None:
    timeline = Timeline(started=0.0)
    timeline.operations["a"] = Operation(pod="p", id="op-a", seconds=60, started=1.0)
    row = EXPECTATIONS["failureNamesBusyOperations"](outcome(timeline, "no words", 30.0), True)
    assert not row.held
    assert row.observed == "does not name op-a"


def _pod(name: str, terminating: float) -> PodLife:
    return PodLife(
        name=name, uid=name, role="app", image="v1", created=0.0, terminating=terminating
    )


def _hook(finished: float) -> PodLife:
    return PodLife(
        name="hook",
        uid="hook",
        role="hook",
        image="v2",
        created=2.0,
        exited=finished,
        exit_code=0,
        finished=finished,
    )


def rollout(deleted: set[str]) -> Outcome:
    """Two pods when the run began; app-0 deleted at 5 s, the gate open at 10 s, the hook's
    bare Pod done at 11 s, app-1 (helm's rollout) terminating at 12 s."""
    timeline = Timeline(started=0.0)
    for life in (_pod("app-0", 5.0), _pod("app-1", 12.0), _hook(11.0)):
        timeline.pods[life.uid] = life
    o = outcome(timeline, "", 20.0, deleted=deleted)
    o.main_started = 1.0
    o.originals = {"app-0": "app-0", "app-1": "app-1"}
    o.gate = (1, 10.0, 8.0)
    return o


def test_a_pod_the_file_deleted_before_the_gate_is_not_an_early_rollout() -> None:
    row = EXPECTATIONS["rolloutAfterGate"](rollout(deleted={"app-0"}), True)
    assert row.held, row
    assert "deleted by the file, not counted: app-0" in row.observed


def test_an_old_pod_terminating_before_the_hook_is_done_is_still_an_early_rollout() -> None:
    row = EXPECTATIONS["rolloutAfterGate"](rollout(deleted=set()), True)
    assert not row.held
    assert "terminating before: ['app-0']" in row.observed


def fates() -> Outcome:
    """app-0 began terminating at 10 s and was gone at 12 s; helm ran from 5 s to 20 s.
    Operations: one done before the delete, one done while app-0 drained, one lost with
    app-0, one on app-1 still running at the end. Arrivals before, during and after helm."""
    timeline = Timeline(started=0.0)
    timeline.pods["app-0"] = PodLife(
        name="app-0", uid="app-0", role="app", image="v1", created=0.0, terminating=10.0, gone=12.0
    )
    timeline.pods["app-1"] = PodLife(
        name="app-1", uid="app-1", role="app", image="v2", created=13.0
    )
    for op in (
        Operation("app-0", "done", 3, 1.0, finished=4.0, state="succeeded"),
        Operation("app-0", "drained", 10, 1.0, finished=11.0, state="succeeded"),
        Operation("app-0", "lost", 30, 2.0, finished=12.0, cut_off=True),
        Operation("app-1", "late", 60, 21.0),
    ):
        timeline.operations[f"{op.pod}/{op.id}"] = op
    arrivals = [
        Arrival(1.0, "app-0", 3, "accepted", "done"),
        Arrival(6.0, "app-0", 3, "refused", "503 draining"),
        Arrival(7.0, "app-0", 3, "refused", "503 draining"),
        Arrival(12.5, "", 3, "unanswered", "no pod to take it"),
        Arrival(21.0, "app-1", 60, "accepted", "late"),
    ]
    o = outcome(timeline, "", 20.0, arrivals=arrivals)
    o.main_started = 5.0
    return o


def test_each_operation_has_its_fate() -> None:
    o = fates()
    assert {op.id: o.fate(op) for op in o.work()} == {
        "done": "succeeded",
        "drained": "drained",
        "lost": "cutOff",
        "late": "running",
    }
    row = EXPECTATIONS["operations"](o, {"cutOff": 1, "drained": 1, "succeeded": {"atLeast": 1}})
    assert row.held, row
    assert row.observed == "succeeded 1, drained 1, cutOff 1, running 1"


def test_an_operation_drained_by_a_graceful_delete_is_not_cut_off() -> None:
    row = EXPECTATIONS["operations"](fates(), {"cutOff": 0})
    assert not row.held  # one was lost with its pod: the drained one alone would pass
    assert row.expected == "cutOff 0"
    assert EXPECTATIONS["noOperationCutOff"](fates(), True).held is False


def test_arrivals_are_counted_by_fate_in_each_phase_of_the_upgrade() -> None:
    wanted = {
        "before": {"accepted": 1, "refused": 0},
        "during": {"refused": 2, "unanswered": {"atMost": 1}},
        "after": {"refused": 0, "accepted": {"atLeast": 1}},
        "all": {"accepted": 2},
    }
    row = EXPECTATIONS["arrivals"](fates(), wanted)
    assert row.held, row
    assert "refused: 503 draining" in row.observed


def test_an_arrival_count_that_does_not_hold_says_what_was_seen() -> None:
    row = EXPECTATIONS["arrivals"](fates(), {"during": {"refused": 0}})
    assert not row.held
    assert row.expected == "during: refused 0"
    assert row.observed == "during: refused 2, unanswered 1 (refused: 503 draining)"


def test_the_fates_are_recorded_for_verdict_json() -> None:
    fates_ = fates().fates()
    assert [(op["id"], op["phase"], op["fate"]) for op in fates_["operations"]] == [
        ("done", "before", "succeeded"),
        ("drained", "before", "drained"),
        ("lost", "before", "cutOff"),
        ("late", "after", "running"),
    ]
    assert [(a["at"], a["phase"], a["fate"], a["said"]) for a in fates_["arrivals"]] == [
        (1.0, "before", "accepted", "done"),
        (6.0, "during", "refused", "503 draining"),
        (7.0, "during", "refused", "503 draining"),
        (12.5, "during", "unanswered", "no pod to take it"),
        (21.0, "after", "accepted", "late"),
    ]


class LoopbackRun:
    """What a check step sees (checks.RunView), over real app processes on loopback: the
    fence and the work are the app's own answers, as through the API server's proxy."""

    def __init__(self, **apps: AppProcess) -> None:
        self.apps = apps
        self.accepted: dict[str, str] = {}
        self.probes: set[str] = set()

    def pods(self, which: object) -> list[str]:
        names = list(self.apps)
        return names if which == "all" else [names[i] for i in which]  # type: ignore[attr-defined]

    def is_fenced(self, pod: str) -> bool:
        return bool(self.apps[pod].status()["draining"])

    def probe_work(self, pod: str) -> tuple[int, str]:
        answer = self.apps[pod].post("/operations", json={"seconds": 1})
        body = answer.json()
        if answer.status_code == 202:
            self.probes.add(body["id"])
        return answer.status_code, str(body.get("error", body.get("id", "")))


def test_not_fenced_and_accepts_work_hold_at_a_moment(make_app: AppFactory) -> None:
    from e2e.loopback import TOKEN
    from e2e.playbook.checks import CONDITIONS

    run = LoopbackRun(a=make_app(), b=make_app())
    assert run.apps["a"].drain(60).status_code == 200

    assert CONDITIONS["notFenced"](run, [1]) == (True, "b not fenced")  # type: ignore[arg-type]
    assert CONDITIONS["notFenced"](run, "all") == (  # type: ignore[arg-type]
        False,
        "a fenced, b not fenced",
    )
    held, seen = CONDITIONS["acceptsWork"](run, "all")  # type: ignore[arg-type]
    assert (held, seen) == (False, "a: 503 draining, b: accepts")
    assert len(run.probes) == 1  # b's second of work, a probe, not the file's work

    lifted = run.apps["a"].delete("/drain", headers={"Authorization": f"Bearer {TOKEN}"})
    assert lifted.status_code == 200, lifted.text
    assert CONDITIONS["notFenced"](run, "all") == (  # type: ignore[arg-type]
        True,
        "a not fenced, b not fenced",
    )
    assert CONDITIONS["acceptsWork"](run, [0])[0]  # type: ignore[arg-type]


# Object assertions: the matching itself, on an object as the API server returns it.
DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "demo-upgrade-gate", "labels": {"app.kubernetes.io/instance": "demo"}},
    "spec": {
        "replicas": 2,
        "template": {
            "metadata": {"annotations": {"upgrade-gate/template-hash": "84cb73ce7c9edee0"}},
            "spec": {"containers": [{"name": "app", "image": "upgrade-gate-app:v1"}]},
        },
    },
    "status": {"readyReplicas": 2, "conditions": None},
}


def test_a_partial_object_matches_what_it_names_and_nothing_else() -> None:
    from e2e.playbook.checks import mismatch

    assert mismatch({"spec": {"replicas": 2}}, DEPLOYMENT) is None
    wanted = {"spec": {"template": {"spec": {"containers": [{"image": "upgrade-gate-app:v1"}]}}}}
    assert mismatch(wanted, DEPLOYMENT) is None
    assert mismatch({"spec": {"replicas": 3}}, DEPLOYMENT) == ".spec.replicas: 2"
    assert mismatch({"status": {"conditions": [{"type": "Available"}]}}, DEPLOYMENT) == (
        ".status.conditions: absent"
    )
    two: dict[str, Any] = {"spec": {"template": {"spec": {"containers": [{}, {}]}}}}
    assert mismatch(two, DEPLOYMENT) == (
        ".spec.template.spec.containers: [{'name': 'app', 'image': 'upgrade-gate-app:v1'}], "
        "not a list of 2"
    )


def test_a_path_leads_to_one_value_or_to_nothing() -> None:
    from e2e.playbook.checks import MISSING, value_at

    hash_path = ["spec", "template", "metadata", "annotations", "upgrade-gate/template-hash"]
    assert value_at(DEPLOYMENT, hash_path) == "84cb73ce7c9edee0"
    assert value_at(DEPLOYMENT, ["spec", "template", "spec", "containers", 0, "name"]) == "app"
    assert value_at(DEPLOYMENT, ["spec", "template", "spec", "containers", 1]) is MISSING
    assert value_at(DEPLOYMENT, ["spec", "paused"]) is MISSING


def _exited_hook(exited: float, code: int) -> PodLife:
    return PodLife(
        name="hook", uid="hook", role="hook", image="v2", created=0.0, exited=exited,
        exit_code=code,
    )  # fmt: skip


def test_a_hook_that_gives_up_is_timed_from_its_deadline_whatever_its_exit(
    make_app: AppFactory, hooks: list[Hook]
) -> None:
    """hookExitedWithin asked for exit 0 and an operation's end: a hook that failed at its
    deadline could not be timed at all."""
    app = make_app()
    started = datetime.now().timestamp()
    app.start_operation(60)
    hook = run_hook(hooks, "--endpoints", app.endpoint, "--timeout", "2")
    assert hook.wait() == Exit.NOT_IDLE, hook.output
    gave_up = gate_gave_up(hook.output)
    assert gave_up is not None, hook.output

    timeline = Timeline(started=started)
    timeline.pods["hook"] = _exited_hook(gave_up + 0.4, int(Exit.NOT_IDLE))
    o = outcome(timeline, hook.output, gave_up + 1, gave_up=gave_up)
    row = EXPECTATIONS["hookExitedWithin"](o, 2)
    assert row.held, row
    assert (row.expected, row.observed) == (
        "<= 2s after the hook's deadline",
        "0.40s after, exit 1",
    )
    assert not EXPECTATIONS["hookExitedWithin"](o, 0.1).held


def test_a_hook_that_opened_the_gate_is_timed_from_the_last_operations_end() -> None:
    timeline = Timeline(started=0.0)
    timeline.operations["a"] = Operation(pod="p", id="a", seconds=10, started=1.0, finished=11.0)
    timeline.pods["hook"] = _exited_hook(11.5, 0)
    o = outcome(timeline, "", 12.0)
    o.gate = (1, 11.05, 10.0)
    row = EXPECTATIONS["hookExitedWithin"](o, 2)
    assert (row.held, row.observed) == (True, "0.50s after, exit 0")


class History:
    """What a check sees of ``helm history``: revisions as pyhelm3 reads them."""

    def __init__(self, *revisions: tuple[int, str, str]) -> None:
        self.seen = [{"revision": r, "status": s, "description": d} for r, s, d in revisions]

    def revisions(self) -> list[dict[str, Any]]:
        return self.seen


def test_history_holds_revision_by_revision_with_a_part_of_each_description() -> None:
    from e2e.playbook.checks import CONDITIONS

    run = History((1, "superseded", "Install complete"), (2, "deployed", "Rollback to 1"))
    history = CONDITIONS["history"]
    wanted = [{"revision": 1}, {"status": "deployed", "description": "Rollback to"}]
    assert history(run, wanted) == (  # type: ignore[arg-type]
        True,
        "1 superseded (Install complete), 2 deployed (Rollback to 1)",
    )
    assert not history(run, wanted[:1])[0]  # type: ignore[arg-type]
    assert not history(run, [{"revision": 1}, {"status": "failed"}])[0]  # type: ignore[arg-type]
    assert not history(run, [{}, {"description": "Upgrade"}])[0]  # type: ignore[arg-type]
