"""The promise under ordinary cluster events: pods that appear, restart or starve,
and upgrades that replace nothing.

Each of these broke the promise before the hook's membership rule and the
app's long-poll cap (issue 11): the replacement of a deleted pod took work
unfenced and was cut off, a restarted app process took work and was cut off,
a long-poll flood starved the probes, and a config-only or failed upgrade
left every pod refusing work for the hold lease.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from e2e.kube import wait_for
from e2e.stage import Stage

pytestmark = pytest.mark.e2e

TWO_PODS = {"replicaCount": 2}


def _try_start(stage: Stage, pod: str, seconds: float) -> str | None:
    """Start an operation: its id, "fenced" if the gate refused it, None if no answer yet."""
    answer = stage.kube.call(
        stage.namespace, pod, "POST", "/operations", {"seconds": seconds}, timeout=5
    )
    if answer.status == 202:
        return str(answer.body["id"])
    if answer.status == 503 and answer.body.get("error") == "draining":
        return "fenced"
    return None


def _accepts_work(stage: Stage, pod: str) -> bool:
    return _try_start(stage, pod, 0.1) not in (None, "fenced")


def _take_work_again(stage: Stage, pods: dict[str, str]) -> None:
    """Every pod takes work again once helm is done (whether the hook lifted its fence or it
    ran out is asked of the app's log: no clock)."""
    for name in pods:
        wait_for(
            lambda name=name: _accepts_work(stage, name),  # type: ignore[misc]
            timeout=180,
            what=f"{name} taking work after helm's exit",
        )


def _app_log(stage: Stage, pod: str) -> str:
    text: str | None = stage.kube.core.read_namespaced_pod_log(
        pod, stage.namespace, container="app"
    )
    return text or ""


@pytest.mark.parametrize("force", [True, False], ids=["force", "graceful"])
def test_the_replacement_of_the_last_busy_pod_is_gated(stage: Stage, force: bool) -> None:
    stage.install("v1", **TWO_PODS)
    busy, idle = sorted(p.metadata.name for p in stage.app_pods())
    stage.start_operation(busy, 120)

    with stage.recording(f"the last busy pod deleted ({'force' if force else 'graceful'})"):
        upgrade = stage.upgrade("v2")
        wait_for(
            lambda: (
                stage.kube.is_fenced(stage.namespace, busy, timeout=5)
                and stage.kube.is_fenced(stage.namespace, idle, timeout=5)
            ),
            timeout=60,
            what="both pods fenced by the hook",
        )
        if force:
            stage.delete_pod(busy, force=True)
        else:
            stage.kube.core.delete_namespaced_pod(busy, stage.namespace, grace_period_seconds=1)
            stage.mark(f"pod {busy} deleted (grace 1 s)")
        replacement = wait_for(
            lambda: next(
                (
                    p
                    for p in stage.app_pods()
                    if p.metadata.name not in (busy, idle) and p.metadata.deletion_timestamp is None
                ),
                None,
            ),
            timeout=60,
            what="the replacement pod of the old ReplicaSet",
        )
        name, uid = replacement.metadata.name, replacement.metadata.uid
        # Give the replacement work the moment it answers; the gate may have
        # fenced it first, which is the promise too.
        started = wait_for(
            lambda: _try_start(stage, name, 15), timeout=120, what=f"{name} answering"
        )
        assert stage.finish(upgrade, timeout=240) == 0, upgrade.output
        _, gate_opened = stage.hook_verdict(upgrade)
        stage.wait_gone(uid, timeout=120)

    timeline = stage.timeline()
    replacement_life = timeline.pods[uid]
    assert replacement_life.ready is not None
    # The gate waited for the replacement to be gated, whatever it did.
    assert gate_opened > replacement_life.created
    # The hook counted the replacement: as not yet gated if it listed it before
    # it had an address, or gating it straight away if it already had one.
    assert f"gating pod {name}" in upgrade.output or (
        f"pod {name}: not yet gated" in upgrade.output
    ), upgrade.output
    if started != "fenced":
        op, _ = stage.survived(started, uid)
        assert op.finished is not None
        assert op.finished <= gate_opened
    assert not any(o.cut_off for o in timeline.operations.values() if o.pod == name)


def test_a_restarted_app_process_is_gated_again(stage: Stage) -> None:
    stage.install("v1", **TWO_PODS)
    restarted, busy = sorted(p.metadata.name for p in stage.app_pods())
    restarted_uid = next(p.metadata.uid for p in stage.app_pods() if p.metadata.name == restarted)
    stage.start_operation(busy, 20)

    with stage.recording("the app process restarted mid-wait"):
        upgrade = stage.upgrade("v2")
        wait_for(
            lambda: stage.kube.is_fenced(stage.namespace, restarted, timeout=5),
            timeout=60,
            what=f"{restarted} fenced",
        )
        # The worker dies and gunicorn starts a new one: same pod, same IP, a
        # new process without the hook's fence, which takes new work unless the
        # hook fenced it first (its watch breaks with the old process, so it
        # often has: the promise too).
        stage.kill_app(restarted)
        started = wait_for(
            lambda: _try_start(stage, restarted, 30),
            timeout=60,
            what=f"the new process in {restarted} answering",
        )
        assert stage.finish(upgrade, timeout=240) == 0, upgrade.output
        _, gate_opened = stage.hook_verdict(upgrade)
        stage.wait_gone(restarted_uid, timeout=120)

    assert f"pod {restarted}: restarted (new app process)" in upgrade.output, upgrade.output
    if started != "fenced":
        op, _ = stage.survived(started, restarted_uid)
        assert op.finished is not None
        assert op.finished <= gate_opened


@contextmanager
def _long_poll_flood(stage: Stage, pod: str, clients: int) -> Iterator[list[int]]:
    """``clients`` anonymous ``GET /upgradeable?wait=60`` loops; yields their status codes."""
    stop = threading.Event()
    statuses: list[int] = []

    def poll() -> None:
        deadline = time.monotonic() + 300  # bounded, whatever the test does
        while not stop.is_set() and time.monotonic() < deadline:
            answer = stage.kube.call(
                stage.namespace, pod, "GET", "/upgradeable?wait=60", timeout=70
            )
            statuses.append(answer.status)
            if answer.status == 429:
                stop.wait(1.0)  # Retry-After

    threads = [threading.Thread(target=poll, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        yield statuses
    finally:
        stop.set()


def test_a_long_poll_flood_does_not_starve_the_pod(stage: Stage) -> None:
    stage.install("v1")
    pod = stage.only_pod()
    name, uid = pod.metadata.name, pod.metadata.uid
    op_id = stage.start_operation(name, 25)

    with stage.recording("a flood of anonymous long-polls during the wait"):
        with _long_poll_flood(stage, name, clients=48) as statuses:
            upgrade = stage.upgrade("v2")
            wait_for(
                lambda: stage.kube.is_fenced(stage.namespace, name, timeout=5),
                timeout=60,
                what="fenced despite the flood",
            )
            # Probes go on answering while the flood and the work go on (how fast is the
            # benchmark's: tox -e bench); starved, the kubelet would restart the app (below).
            for _ in range(10):
                answer = stage.kube.call(stage.namespace, name, "GET", "/healthz", timeout=5)
                assert answer.status == 200, answer
                ready = stage.kube.call(stage.namespace, name, "GET", "/readyz", timeout=5)
                assert ready.status == 200, ready
            assert 429 in statuses, "the cap never answered"
            assert stage.finish(upgrade, timeout=240) == 0, upgrade.output
        stage.wait_gone(uid, timeout=120)

    stage.survived(op_id, uid)
    timeline = stage.timeline()
    assert timeline.pods[uid].exited is None or timeline.pods[uid].exit_code == 0
    live = stage.kube.pod(stage.namespace, name)
    assert live is None or all(c.restart_count == 0 for c in live.status.container_statuses)


def test_a_config_only_upgrade_fences_no_pod(stage: Stage, each_helm: object) -> None:
    stage.install("v1", **TWO_PODS)
    before = {p.metadata.name: p.metadata.uid for p in stage.app_pods()}

    with stage.recording(f"config-only upgrade ({stage.helm.name})"):
        # Only the gate's own settings and a PodDisruptionBudget change.
        upgrade = stage.upgrade(
            "v1", gate={"timeoutSeconds": 80}, podDisruptionBudget={"enabled": True}
        )
        assert stage.finish(upgrade, timeout=180, label="config-only upgrade") == 0, upgrade.output
        _take_work_again(stage, before)

    assert {p.metadata.name: p.metadata.uid for p in stage.app_pods()} == before
    assert "runs the new pod template already" in upgrade.output, upgrade.output
    for name in before:  # no pod was fenced at all
        assert "drain on" not in _app_log(stage, name), name


def test_a_rollout_that_fails_after_the_hook_lifts_the_fences(
    stage: Stage, each_helm: object
) -> None:
    stage.install("v1", **TWO_PODS)
    before = {p.metadata.name: p.metadata.uid for p in stage.app_pods()}
    rollback_flag = "--atomic" if stage.helm.major == 3 else "--rollback-on-failure"

    with stage.recording(f"a rollout that fails after the hook ({stage.helm.name})"):
        # An image that does not exist: the hook lets the upgrade go (nothing
        # runs), the new pod never starts, helm gives up and rolls back.
        # The hook runs from the v2 hook image, as in an upgrade to v2 that works.
        hook_image = {"repository": stage.images.hook_repository, "tag": "v2"}
        upgrade = stage.upgrade(
            "missing-tag", rollback_flag, "--timeout", "40s", gate={"image": hook_image}
        )
        code = stage.finish(upgrade, timeout=240, label="failed rollout, rolled back")
        assert code != 0, upgrade.output
        _take_work_again(stage, before)

    assert "upgrade may proceed" in upgrade.output, upgrade.output
    wait_for(
        lambda: {p.metadata.name: p.metadata.uid for p in stage.app_pods()} == before,
        timeout=60,
        what="only the old pods left after the rollback",
    )
    assert stage.version_served() == {"v1"}
    for name in before:  # the fences were lifted, not left to run out
        log = _app_log(stage, name)
        assert "drain off" in log, log[-2000:]
        assert "drain lease expired" not in log, log[-2000:]
