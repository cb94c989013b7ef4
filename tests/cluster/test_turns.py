"""Turns on the cluster (e2e/cluster/host/locks.py): scenarios share it, and one that stops
the API server has it to itself, neither beside another nor kept waiting by those after it."""

from __future__ import annotations

import fcntl
import threading
from pathlib import Path

from e2e.cluster.host.locks import turn
from e2e.cluster.wait import eventually


def _held(path: Path) -> bool:
    """Whether another holds ``path`` locked."""
    if not path.exists():
        return False
    with path.open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(lock, fcntl.LOCK_UN)
        return False


class Holder(threading.Thread):
    """Takes a turn, says when it has it, and keeps it until told to give it back."""

    def __init__(self, lock: Path, name: str, events: list[str], *, alone: bool) -> None:
        super().__init__(name=name, daemon=True)
        self.lock, self.events, self.alone = lock, events, alone
        self.holding = threading.Event()
        self.leave = threading.Event()

    def run(self) -> None:
        with turn(self.lock, alone=self.alone, waiting_for="a turn"):
            self.events.append(f"{self.name} in")
            self.holding.set()
            self.leave.wait(60)
            self.events.append(f"{self.name} out")

    def done(self) -> None:
        self.leave.set()
        self.join(60)
        assert not self.is_alive()


def test_shared_turns_run_side_by_side(tmp_path: Path) -> None:
    events: list[str] = []
    a, b = (Holder(tmp_path / "t.lock", n, events, alone=False) for n in "ab")
    a.start()
    b.start()
    assert a.holding.wait(30)
    assert b.holding.wait(30)
    a.done()
    b.done()


def test_a_turn_alone_waits_for_those_running_and_none_starts_meanwhile(tmp_path: Path) -> None:
    lock, events = tmp_path / "t.lock", list[str]()
    first = Holder(lock, "first", events, alone=False)
    first.start()
    assert first.holding.wait(30)

    alone = Holder(lock, "alone", events, alone=True)
    alone.start()
    gate = lock.with_name("t.lock.gate")
    eventually(lambda: _held(gate), timeout=30, what="the one alone waiting at the gate")
    later = Holder(lock, "later", events, alone=False)
    later.start()
    assert not alone.holding.wait(1), "alone beside a shared turn"
    assert not later.holding.wait(1), "a shared turn taken while one waits to be alone"

    first.done()
    assert alone.holding.wait(30)
    assert not later.holding.wait(1), "a shared turn beside the one alone"
    alone.done()
    assert later.holding.wait(30)
    later.done()
    assert events == ["first in", "first out", "alone in", "alone out", "later in", "later out"]
