"""The gate without HTTP: counting, fencing, leases, waiting."""

from __future__ import annotations

import threading

import pytest

from e2e.cluster.wait import eventually
from e2e.thread_limited_app import UnstartableThread
from upgrade_gate import Gate, State, Status, WorkRefusedError


def test_upgradeable_only_when_the_last_of_overlapping_operations_ends() -> None:
    gate = Gate()
    first, second = gate.begin("a"), gate.begin("b")
    gate.finish(first.id)
    # The original demo's shared boolean said "upgradeable" here.
    assert not gate.status().upgradeable
    assert gate.status().running == (second.id,)
    gate.finish(second.id)
    assert gate.status().upgradeable


def test_failed_work_is_recorded_and_counted() -> None:
    gate = Gate()
    with pytest.raises(RuntimeError), gate.operation("boom"):
        raise RuntimeError("disk full")
    (record,) = gate.operations()
    assert record.state is State.FAILED
    assert record.error == "disk full"
    assert gate.counters.failed == 1
    assert gate.status().upgradeable


def test_drain_refuses_new_work_but_lets_running_work_finish() -> None:
    gate = Gate()
    running = gate.begin("long")
    gate.drain(ttl=60, holder="hook")
    with pytest.raises(WorkRefusedError) as refused:
        gate.begin("new")
    assert refused.value.reason == "draining"
    assert gate.counters.refused == 1
    gate.finish(running.id)
    assert gate.status().upgradeable
    assert gate.status().draining


def test_lease_expires_on_its_own_and_work_is_accepted_again() -> None:
    now = [100.0]
    gate = Gate(clock=lambda: now[0])
    gate.drain(ttl=5)
    now[0] += 4.9
    assert gate.status().draining
    now[0] += 0.2
    assert not gate.status().draining
    gate.begin("after expiry")


def test_renewal_extends_the_lease() -> None:
    now = [0.0]
    gate = Gate(clock=lambda: now[0])
    gate.drain(ttl=5)
    now[0] += 4
    gate.drain(ttl=5)
    now[0] += 4
    assert gate.status().draining
    assert gate.status().lease_expires_in == pytest.approx(1.0)


def test_lease_timer_expires_without_any_request() -> None:
    gate = Gate()
    gate.drain(ttl=0.05)
    eventually(lambda: not gate._lease, what="the timer clears the lease")


def test_undrain_is_idempotent() -> None:
    gate = Gate()
    gate.undrain()
    gate.drain(ttl=60)
    gate.undrain()
    gate.undrain()
    assert gate.status().accepting


def test_wait_upgradeable_wakes_when_the_last_operation_ends() -> None:
    gate = Gate()
    op = gate.begin("x")
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(gate.wait_upgradeable(30).upgradeable))
    waiter.start()
    gate.finish(op.id)
    waiter.join(10)
    assert result == [True]


def test_wait_upgradeable_gives_up_after_its_timeout() -> None:
    gate = Gate()
    gate.begin("x")
    assert not gate.wait_upgradeable(0.05).upgradeable


def _watch_in_background(gate: Gate) -> tuple[threading.Thread, list[bool]]:
    """A hook's watch on ``gate``; the list gets whether it still saw the fence."""
    seen: list[bool] = []
    watcher = threading.Thread(target=lambda: seen.append(gate.watch_fence(30).draining))
    watcher.start()
    eventually(lambda: gate.long_polls == 1, what="the watch holding")
    return watcher, seen


@pytest.mark.parametrize("end", ["undrain", "lease runs out", "shutdown"])
def test_a_watch_holds_while_fenced_and_idle_and_answers_when_that_ends(end: str) -> None:
    gate = Gate()
    gate.drain(ttl=0.5 if end == "lease runs out" else 60, holder="hook")
    watcher, seen = _watch_in_background(gate)
    assert watcher.is_alive()
    if end == "undrain":
        gate.undrain("someone")
    elif end == "shutdown":
        gate.begin_shutdown()
    watcher.join(10)
    assert not watcher.is_alive()
    assert seen == [end == "shutdown"]
    assert gate.long_polls == 0


def test_a_watch_answers_at_once_when_the_pod_is_not_fenced_or_busy() -> None:
    gate = Gate()
    assert not gate.watch_fence(30).draining
    gate.begin("x")
    gate.drain(ttl=60)
    assert gate.watch_fence(30).active == 1


def test_a_watch_gives_up_after_its_timeout_still_fenced() -> None:
    gate = Gate()
    gate.drain(ttl=60)
    status = gate.watch_fence(0.05)
    assert status.draining
    assert status.upgradeable


def test_shutdown_refuses_work_and_wait_idle_is_bounded() -> None:
    gate = Gate()
    op = gate.begin("x")
    gate.begin_shutdown()
    with pytest.raises(WorkRefusedError) as refused:
        gate.begin("y")
    assert refused.value.reason == "shutting down"
    assert gate.wait_idle(0.05) is False
    gate.finish(op.id)
    assert gate.wait_idle(0.05) is True


def test_history_is_bounded_but_running_records_are_kept() -> None:
    gate = Gate(history=3)
    keep = gate.begin("long")
    for _ in range(10):
        with gate.operation("short"):
            pass
    records = gate.operations()
    assert len(records) == 3
    assert keep.id in {r.id for r in records}


def test_a_thread_that_cannot_start_ends_its_record_and_refuses() -> None:
    gate = Gate(thread_factory=UnstartableThread)
    with pytest.raises(WorkRefusedError) as refused:
        gate.run_in_background("x", lambda op: None)
    assert refused.value.reason == "cannot start"
    assert refused.value.detail == "can't start new thread"
    (record,) = gate.operations()
    assert (record.state, record.error) == (State.FAILED, "cannot start: can't start new thread")
    assert gate.status().upgradeable
    assert gate.wait_idle(0.05) is True


def test_each_gate_names_itself() -> None:
    first, second = Gate(), Gate()
    assert first.instance != second.instance
    assert first.status().instance == first.instance


def test_background_operations_are_bounded_and_the_bound_frees_as_they_end() -> None:
    gate = Gate(max_background=2)
    release = threading.Event()
    first = gate.run_in_background("a", lambda _op: release.wait(30))
    gate.run_in_background("b", lambda _op: release.wait(30))
    with pytest.raises(WorkRefusedError) as refused:
        gate.run_in_background("c", lambda _op: None)
    assert refused.value.reason == "cannot start"
    assert "2 operations are running" in str(refused.value.detail)
    assert [op.name for op in gate.operations()] == ["a", "b"], "no record of the refused one"
    release.set()
    eventually(lambda: getattr(gate.get(first.id), "state", None) is State.SUCCEEDED, what="a ends")
    eventually(lambda: gate.status().active == 0, what="b ends")
    gate.run_in_background("d", lambda _op: None)


def test_a_fence_is_the_reason_given_even_at_the_bound() -> None:
    gate = Gate(max_background=1)
    release = threading.Event()
    gate.run_in_background("a", lambda _op: release.wait(30))
    gate.drain(ttl=60)
    with pytest.raises(WorkRefusedError) as refused:
        gate.run_in_background("b", lambda _op: None)
    assert refused.value.reason == "draining"
    release.set()


@pytest.mark.parametrize("kind", ["wait", "watch"])
def test_a_long_poll_whose_client_went_away_ends_at_once(kind: str) -> None:
    """An ASGI server sees its client leave while the long-poll waits in a worker thread:
    ``release`` gives the thread (and the long-poll's count) back, not the wait's end."""
    gate = Gate()
    if kind == "wait":
        gate.begin("busy")
    else:
        gate.drain(ttl=600)
    gone = threading.Event()
    answers: list[Status] = []
    wait = gate.wait_upgradeable if kind == "wait" else gate.watch_fence
    waiter = threading.Thread(target=lambda: answers.append(wait(600, gone)))
    waiter.start()
    eventually(lambda: gate.long_polls == 1, what="the long-poll waiting")
    gate.release(gone)
    waiter.join(10)
    assert not waiter.is_alive()
    assert gate.long_polls == 0
    assert (answers[0].active, answers[0].draining) == ((1, False) if kind == "wait" else (0, True))
