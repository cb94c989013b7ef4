"""The upgrade gate: what is running, whether it is safe to upgrade, and fencing.

This module knows nothing of HTTP or Flask. One :class:`Gate` per process holds
every unit of work the process runs; its answers are consistent because all
state lives behind one condition variable, and every waiter (long-poll,
shutdown) is woken by the same ``notify_all``.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

log = logging.getLogger("upgrade_gate")

CONTRACT = "upgrade-gate/v1"  # the HTTP contract's name and version (docs/http-contract.md)


class State(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class WorkRefusedError(Exception):
    """New work was refused; ``reason`` says why: "draining", "shutting down" or
    "cannot start" (the system refused a thread for it)."""

    def __init__(self, reason: str, status: Status, detail: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Operation:
    """The record of one unit of work. Immutable: the gate swaps records."""

    id: str
    name: str
    started_at: datetime
    state: State = State.RUNNING
    finished_at: datetime | None = None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    started_monotonic: float = field(default=0.0, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "state": str(self.state),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at) if self.finished_at else None,
            "error": self.error,
            **self.details,
        }


@dataclass(frozen=True)
class Lease:
    holder: str
    ttl: float
    expires_monotonic: float

    def remaining(self, now: float) -> float:
        return max(0.0, self.expires_monotonic - now)


@dataclass(frozen=True)
class Status:
    """A consistent snapshot of the gate, taken under its lock."""

    active: int
    draining: bool
    shutting_down: bool
    lease_holder: str | None = None
    lease_expires_in: float | None = None
    running: tuple[str, ...] = ()
    instance: str = ""

    @property
    def upgradeable(self) -> bool:
        return self.active == 0

    @property
    def accepting(self) -> bool:
        return not (self.draining or self.shutting_down)


@dataclass
class _Counters:
    succeeded: int = 0
    failed: int = 0
    refused: int = 0


class Startable(Protocol):
    def start(self) -> None: ...


ThreadFactory = Callable[..., Startable]


def _is_set(event: threading.Event | None) -> bool:
    return event is not None and event.is_set()


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


class Gate:
    """Tracks units of work and fences new ones while an upgrade waits.

    ``history`` bounds how many finished records are kept, so a long-lived pod
    does not grow without limit; running records are never dropped.
    ``instance`` names this gate, and so the process holding it: a restarted
    process answers with a new one. ``thread_factory`` makes the threads of
    :meth:`run_in_background` (``threading.Thread``'s signature), and
    ``max_background`` bounds how many of them run at once.
    """

    def __init__(
        self,
        *,
        history: int = 1000,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        thread_factory: ThreadFactory = threading.Thread,
        max_background: int | None = None,
    ) -> None:
        self.instance: str = uuid.uuid4().hex
        self._thread_factory = thread_factory
        self._max_background = max_background
        self._background = 0
        self._cond = threading.Condition()
        self._clock = clock
        self._wall_clock = wall_clock
        self._history = history
        self._records: OrderedDict[str, Operation] = OrderedDict()
        self._running: dict[str, Operation] = {}
        self._lease: Lease | None = None
        self._lease_timer: threading.Timer | None = None
        self._lease_generation = itertools.count()
        self._current_generation = -1
        self._shutting_down = False
        self._long_polls = 0
        self.counters = _Counters()

    # -- work ---------------------------------------------------------------

    def begin(self, name: str, **details: Any) -> Operation:
        """Register a unit of work, or raise :class:`WorkRefusedError` while fenced."""
        with self._cond:
            self._expire_lease_locked()
            if self._shutting_down or self._lease is not None:
                reason = "shutting down" if self._shutting_down else "draining"
                self.counters.refused += 1
                raise WorkRefusedError(reason, self._status_locked())
            op = Operation(
                id=uuid.uuid4().hex[:12],
                name=name,
                started_at=self._wall_clock(),
                details=dict(details),
                started_monotonic=self._clock(),
            )
            self._running[op.id] = op
            self._records[op.id] = op
            self._trim_locked()
            log.info(
                "operation started id=%s name=%s active=%d%s",
                op.id,
                name,
                len(self._running),
                _kv(details),
            )
            return op

    def finish(self, op_id: str, error: BaseException | str | None = None) -> Operation:
        """Mark a unit of work finished; ``error`` makes it failed."""
        with self._cond:
            op = self._running.pop(op_id)
            state = State.FAILED if error is not None else State.SUCCEEDED
            done = replace(
                op,
                state=state,
                finished_at=self._wall_clock(),
                error=None if error is None else (str(error) or type(error).__name__),
            )
            self._records[op_id] = done
            if state is State.SUCCEEDED:
                self.counters.succeeded += 1
            else:
                self.counters.failed += 1
            active = len(self._running)
            log.info(
                "operation %s id=%s name=%s after=%.3fs active=%d%s",
                state,
                op_id,
                op.name,
                self._clock() - op.started_monotonic,
                active,
                f" error={done.error!r}" if done.error else "",
            )
            if active == 0:
                log.info("upgradeable: no operation running")
            self._cond.notify_all()
            return done

    @contextmanager
    def operation(self, name: str, **details: Any) -> Iterator[Operation]:
        """Run a block as one unit of work: failed if it raises, else succeeded."""
        op = self.begin(name, **details)
        try:
            yield op
        except BaseException as exc:
            self.finish(op.id, exc)
            raise
        else:
            self.finish(op.id)

    def run_in_background(
        self, name: str, work: Callable[[Operation], object], **details: Any
    ) -> Operation:
        """Register a unit of work and run it in its own thread.

        Registration happens before the thread starts, so the caller's answer
        ("accepted") and the gate's state can never disagree. A thread that
        cannot start (the system's thread limit) ends the record as failed and
        raises :class:`WorkRefusedError` ("cannot start"), as does one more than
        ``max_background`` operations running in the background at once.
        """
        with self._cond:
            self._expire_lease_locked()
            fenced = self._shutting_down or self._lease is not None
            limit = self._max_background
            if not fenced and limit is not None and self._background >= limit:
                self.counters.refused += 1
                raise WorkRefusedError(
                    "cannot start",
                    self._status_locked(),
                    detail=f"{self._background} operations are running, the most it runs at once",
                )
            op = self.begin(name, **details)  # refused while fenced
            self._background += 1

        def runner() -> None:
            try:
                work(op)
            except Exception as exc:
                self._finish_background(op.id, exc)
            else:
                self._finish_background(op.id)

        thread = self._thread_factory(target=runner, name=f"operation-{op.id}", daemon=True)
        try:
            thread.start()
        except RuntimeError as exc:  # "can't start new thread"
            self._finish_background(op.id, f"cannot start: {exc}")
            raise WorkRefusedError("cannot start", self.status(), detail=str(exc)) from exc
        return op

    def _finish_background(self, op_id: str, error: BaseException | str | None = None) -> None:
        with self._cond:
            self._background -= 1
            self.finish(op_id, error)

    # -- queries ------------------------------------------------------------

    def status(self) -> Status:
        with self._cond:
            self._expire_lease_locked()
            return self._status_locked()

    @property
    def long_polls(self) -> int:
        """Callers blocked in :meth:`wait_upgradeable` or :meth:`watch_fence` now (hooks)."""
        with self._cond:
            return self._long_polls

    def operations(self) -> list[Operation]:
        with self._cond:
            return list(self._records.values())

    def get(self, op_id: str) -> Operation | None:
        with self._cond:
            return self._records.get(op_id)

    def wait_upgradeable(self, timeout: float, gone: threading.Event | None = None) -> Status:
        """Block until nothing runs (or shutdown begins), at most ``timeout`` s.

        ``gone``: set through :meth:`release` when the caller's client went
        away, which ends the wait at once.
        """
        deadline = self._clock() + timeout
        with self._cond:
            self._long_polls += 1
            try:
                while self._running and not self._shutting_down and not _is_set(gone):
                    remaining = deadline - self._clock()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            finally:
                self._long_polls -= 1
            self._expire_lease_locked()
            return self._status_locked()

    def watch_fence(self, timeout: float, gone: threading.Event | None = None) -> Status:
        """Block while the gate is fenced and idle, at most ``timeout`` s.

        The long-poll of a hook that found this pod ready (fenced, nothing
        running): it answers the moment that stops holding (the fence lifted
        or run out, shutdown begun), so the hook knows the pod is still ready
        for as long as the call is open, without asking again. A restarted
        process breaks the connection instead, which the hook sees as well.
        ``gone`` ends it early, as for :meth:`wait_upgradeable`.
        """
        deadline = self._clock() + timeout
        with self._cond:
            self._long_polls += 1
            try:
                while True:
                    self._expire_lease_locked()
                    now = self._clock()
                    if self._lease is None or self._running or self._shutting_down:
                        break
                    if _is_set(gone):
                        break
                    if now >= deadline:
                        break
                    self._cond.wait(min(deadline, self._lease.expires_monotonic) - now)
            finally:
                self._long_polls -= 1
            return self._status_locked()

    def release(self, gone: threading.Event) -> None:
        """End the long-poll waiting with ``gone``: its client went away.

        A server that sees a client leave (an ASGI app, while the wait runs in
        a worker thread) gives the long-poll's thread back at once, rather
        than when the wait would have ended.
        """
        with self._cond:
            gone.set()
            self._cond.notify_all()

    # -- fencing ------------------------------------------------------------

    def drain(self, ttl: float, holder: str = "anonymous") -> Status:
        """Fence new work for ``ttl`` seconds; calling again renews the lease."""
        with self._cond:
            self._expire_lease_locked()
            renewing = self._lease is not None
            self._lease = Lease(holder=holder, ttl=ttl, expires_monotonic=self._clock() + ttl)
            generation = next(self._lease_generation)
            self._current_generation = generation
            self._arm_timer_locked(ttl, generation)
            if renewing:
                log.debug("drain renewed holder=%s ttl=%gs", holder, ttl)
            else:
                log.info("drain on holder=%s ttl=%gs active=%d", holder, ttl, len(self._running))
            return self._status_locked()

    def undrain(self, holder: str = "anonymous") -> Status:
        with self._cond:
            self._expire_lease_locked()
            if self._lease is not None:
                log.info("drain off holder=%s active=%d", holder, len(self._running))
            self._clear_lease_locked()
            return self._status_locked()

    # -- shutdown -----------------------------------------------------------

    def begin_shutdown(self) -> Status:
        """Refuse new work for good and wake every long-poll."""
        with self._cond:
            if not self._shutting_down:
                self._shutting_down = True
                log.info(
                    "shutdown begun: refusing new work, %d operation(s) running%s",
                    len(self._running),
                    _ids(self._running),
                )
                self._cond.notify_all()
            return self._status_locked()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no operation runs; ``False`` if ``timeout`` passed first."""
        deadline = self._clock() + timeout
        with self._cond:
            while self._running:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    log.warning(
                        "shutdown bound of %gs reached with %d operation(s) running%s",
                        timeout,
                        len(self._running),
                        _ids(self._running),
                    )
                    return False
                self._cond.wait(remaining)
            return True

    # -- internals (caller holds the lock) ----------------------------------

    def _status_locked(self) -> Status:
        now = self._clock()
        return Status(
            active=len(self._running),
            draining=self._lease is not None,
            shutting_down=self._shutting_down,
            lease_holder=self._lease.holder if self._lease else None,
            lease_expires_in=round(self._lease.remaining(now), 3) if self._lease else None,
            running=tuple(self._running),
            instance=self.instance,
        )

    def _expire_lease_locked(self) -> None:
        # The timer logs expiry on time; this check makes expiry exact even if
        # the timer thread has not run yet.
        if self._lease is not None and self._clock() >= self._lease.expires_monotonic:
            log.info("drain lease expired holder=%s: accepting work again", self._lease.holder)
            self._clear_lease_locked()

    def _clear_lease_locked(self) -> None:
        self._lease = None
        self._current_generation = -1
        if self._lease_timer is not None:
            self._lease_timer.cancel()
            self._lease_timer = None
        self._cond.notify_all()  # watches of the fence answer now

    def _arm_timer_locked(self, ttl: float, generation: int) -> None:
        if self._lease_timer is not None:
            self._lease_timer.cancel()
        timer = threading.Timer(ttl, self._on_timer, args=(generation,))
        timer.daemon = True
        timer.name = "drain-lease"
        try:
            timer.start()
        except RuntimeError as exc:  # "can't start new thread": a thread limit
            # The fence stands and still ends on time: every answer checks the
            # lease. Only the log line and the watches' wake-up wait for the
            # next request.
            self._lease_timer = None
            log.warning("drain lease timer not started (%s): expiry checked on each request", exc)
            return
        self._lease_timer = timer

    def _on_timer(self, generation: int) -> None:
        with self._cond:
            if generation != self._current_generation or self._lease is None:
                return
            remaining = self._lease.remaining(self._clock())
            if remaining > 0:  # a timer may wake a hair early
                self._arm_timer_locked(remaining, generation)
            else:
                self._expire_lease_locked()

    def _trim_locked(self) -> None:
        excess = len(self._records) - self._history
        if excess <= 0:
            return
        for op_id in [i for i in self._records if i not in self._running][:excess]:
            del self._records[op_id]


def _kv(details: dict[str, Any]) -> str:
    return "".join(f" {k}={v}" for k, v in details.items())


def _ids(running: dict[str, Operation]) -> str:
    return f" ({', '.join(running)})" if running else ""
