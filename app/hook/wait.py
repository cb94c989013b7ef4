"""Hold an upgrade until every pod of the release is idle, or fail safe.

One thread per pod fences it (a drain lease, renewed well before it expires)
and long-polls ``/upgradeable``; the main thread lists the pods again and
again, so pods that appear are gated and pods that are gone stop counting, and
decides. The upgrade may proceed only when a fresh listing shows every pod
fenced and idle. On the deadline, or SIGTERM, every fence is released so the
old pods take work again, and the hook fails: Helm then changes nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TypeVar

from app.hook.client import Answer, PodClient
from app.hook.pods import Pod, PodSource, SourceError

log = logging.getLogger("upgrade_gate.hook")
T = TypeVar("T")


class Exit(IntEnum):
    OK = 0
    NOT_IDLE = 1  # deadline, SIGTERM or an API failure: the upgrade must not proceed
    USAGE = 2
    FORBIDDEN = 3


@dataclass(frozen=True)
class Options:
    timeout: float = 300.0
    lease: float = 30.0
    hold: float = 120.0  # the lease left after success, to cover the rollout
    fence: bool = True
    poll: float = 10.0  # longest single long-poll
    discovery_interval: float = 1.0
    holder: str = "upgrade-gate-hook"
    token: str | None = None


@dataclass(frozen=True)
class Outcome:
    code: Exit
    summary: str


@dataclass
class _PodState:
    pod: Pod
    client: PodClient
    first_seen: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    fenced: bool = False
    idle: bool = False
    idle_at: float | None = None
    last: Answer | None = None
    fence_refusal: str | None = None
    held: bool = False  # the confirmation's hold lease is set: no more renewals

    def describe_busy(self) -> str:
        pod = self.pod.name
        if self.fence_refusal:
            return f"{pod} (refused the fence: {self.fence_refusal})"
        if self.last is None:
            return f"{pod} (no answer yet)"
        if not self.last.reachable:
            return f"{pod} ({self.last.error})"
        running = self.last.running
        if running:
            return f"{pod} ({len(running)} active: {', '.join(running)})"
        return f"{pod} ({self.last.describe()})"


class Waiter:
    def __init__(
        self,
        source: PodSource,
        options: Options,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.options = options
        self.clock = clock
        self._cond = threading.Condition()
        self._pods: dict[str, _PodState] = {}
        self._terminated: str | None = None
        self._confirmed: list[_PodState] = []

    def terminate(self, reason: str) -> None:
        """Ask the wait to end now, releasing fences (safe from a signal handler)."""
        self._terminated = reason

    # -- the decision loop ---------------------------------------------------

    def run(self) -> Outcome:
        self.started = self.clock()
        deadline = self.started + self.options.timeout
        log.info(
            "waiting for %s to be idle (deadline %gs, fence %s)",
            self.source.description,
            self.options.timeout,
            f"lease {self.options.lease:g}s" if self.options.fence else "off",
        )
        first_listing = True
        listing_error: str | None = None
        try:
            while True:
                try:
                    pods = self.source.list_pods()
                    listing_error = None
                except SourceError as exc:
                    if exc.exit_code != Exit.NOT_IDLE:
                        self._release_all()
                        return Outcome(Exit(exc.exit_code), str(exc))
                    if listing_error != str(exc):
                        log.warning("%s; retrying", exc)
                    listing_error = str(exc)
                    pods = None
                if pods is not None:
                    self._reconcile(pods)
                    if not pods:
                        return Outcome(Exit.OK, self._no_pods_summary(first_listing))
                    first_listing = False
                    if self._all_idle() and self._confirm():
                        return self._succeed()
                if self._terminated:
                    self._release_all()
                    return Outcome(
                        Exit.NOT_IDLE,
                        f"{self._terminated}: fences released, the upgrade must not proceed; "
                        f"{self._busy_summary()}",
                    )
                if self.clock() >= deadline:
                    self._release_all()
                    reason = f"listing failed: {listing_error}" if listing_error else None
                    return Outcome(
                        Exit.NOT_IDLE,
                        f"deadline of {self.options.timeout:g}s reached, fences released: "
                        f"{reason or self._busy_summary()}",
                    )
                with self._cond:
                    if not self._all_idle_locked():
                        self._cond.wait(
                            min(self.options.discovery_interval, max(0.0, deadline - self.clock()))
                        )
        finally:
            self._stop_all()

    def _reconcile(self, pods: Iterable[Pod]) -> None:
        current = {pod.name: pod for pod in pods}
        with self._cond:
            for name in list(self._pods):
                if name not in current or current[name] != self._pods[name].pod:
                    state = self._pods.pop(name)
                    state.stop.set()
                    log.info("pod %s is gone: no longer counted", name)
            for name, pod in current.items():
                if name not in self._pods:
                    state = _PodState(
                        pod, PodClient(pod.base_url, self.options.token), self.clock()
                    )
                    self._pods[name] = state
                    where = f"{pod.host}:{pod.port}"
                    log.info("gating pod %s%s", name, "" if where == name else f" at {where}")
                    threading.Thread(
                        target=self._watch, args=(state,), name=f"pod-{name}", daemon=True
                    ).start()

    def _all_idle(self) -> bool:
        with self._cond:
            return self._all_idle_locked()

    def _all_idle_locked(self) -> bool:
        return bool(self._pods) and all(
            s.idle and (s.fenced or not self.options.fence) for s in self._pods.values()
        )

    def _confirm(self) -> bool:
        """Ask every pod once more, at the same moment, whether it is idle.

        With fencing on, the question is a last ``POST /drain`` with the
        ``hold`` lease, which keeps the old pods fenced while Helm replaces
        them (if the rollout stalls, the lease runs out and they take work
        again) and answers with the pod's status in the same round trip.
        """
        with self._cond:
            states = sorted(self._pods.values(), key=lambda s: s.pod.name)
        options = self.options

        def ask(state: _PodState) -> Answer:
            if not options.fence:
                return PodClient(state.pod.base_url, None).upgradeable()
            with state.lock:
                if state.stop.is_set():
                    return Answer(error="gone")
                state.held = True
                return state.client.fence(options.hold or options.lease, options.holder)

        answers = self._for_each(states, ask)
        not_idle = [(s, a) for s, a in zip(states, answers, strict=True) if not a.upgradeable]
        if not_idle:
            log.info(
                "confirmation round: not idle after all: %s",
                ", ".join(s.pod.name for s, _ in not_idle),
            )
            with self._cond:
                for state in states:
                    state.held = False
                for state, answer in not_idle:
                    state.idle = False
                    state.last = answer
            return False
        for state in states:
            state.stop.set()
        self._confirmed = states
        return True

    def _succeed(self) -> Outcome:
        states = self._confirmed
        waited = ", ".join(
            f"{s.pod.name} {((s.idle_at or self.started) - self.started):.1f}s" for s in states
        )
        return Outcome(
            Exit.OK,
            f"all {len(states)} pod(s) idle after {self.clock() - self.started:.1f}s; "
            f"upgrade may proceed (waited per pod: {waited})",
        )

    def _no_pods_summary(self, first_listing: bool) -> str:
        if first_listing:
            return f"no pods found ({self.source.description}): nothing to wait for"
        return f"every pod is gone after {self.clock() - self.started:.1f}s: nothing to wait for"

    def _busy_summary(self) -> str:
        with self._cond:
            busy = [
                s
                for s in self._pods.values()
                if not s.idle or (self.options.fence and not s.fenced)
            ]
        if not busy:
            return "no pod was busy"
        return f"{len(busy)} pod(s) not idle: " + "; ".join(
            s.describe_busy() for s in sorted(busy, key=lambda s: s.pod.name)
        )

    # -- one thread per pod --------------------------------------------------

    def _watch(self, state: _PodState) -> None:
        options = self.options
        backoff = _Backoff()
        renew_at = 0.0
        while not state.stop.is_set():
            now = self.clock()
            if options.fence and now >= renew_at:
                answer = self._with_lock(
                    state, lambda: state.client.fence(options.lease, options.holder)
                )
                if answer is None:  # stopped, or the confirmation round holds the pod
                    if state.stop.wait(0.05):
                        return
                    continue
                if answer.reachable and answer.status == 200:
                    if not state.fenced:
                        log.info("pod %s: fenced (lease %gs)", state.pod.name, options.lease)
                    self._update(state, fenced=True, refusal=None)
                    renew_at = now + options.lease / 3
                    backoff.reset()
                    if answer.understood:  # /drain answers with the pod's status
                        self._observe(state, answer)
                else:
                    refusal = None if not answer.reachable else answer.describe()
                    self._record_failure(state, answer, refusal)
                    state.stop.wait(backoff.next())
                    continue
            if state.idle and options.fence:
                # Fenced and idle stays idle: sleep until the next renewal.
                state.stop.wait(max(0.0, renew_at - self.clock()))
                continue
            wait = options.poll
            if options.fence:
                wait = min(wait, max(0.05, renew_at - self.clock()))
            answer = state.client.upgradeable(wait if not state.idle else 0.0)
            if state.stop.is_set():
                return
            if not answer.understood:
                self._record_failure(state, answer, None)
                state.stop.wait(backoff.next())
                continue
            backoff.reset()
            self._observe(state, answer)
            if state.idle and not options.fence:
                state.stop.wait(options.discovery_interval)

    def _observe(self, state: _PodState, answer: Answer) -> None:
        with self._cond:
            was_idle, previous = state.idle, state.last
            state.last = answer
            state.idle = answer.upgradeable
            if state.idle and not was_idle:
                state.idle_at = self.clock()
                log.info("pod %s: idle after %.1fs", state.pod.name, state.idle_at - self.started)
                self._cond.notify_all()
            elif not state.idle and (
                was_idle
                or previous is None
                or previous.running != answer.running
                or not previous.reachable
            ):
                log.info(
                    "pod %s: busy, %s",
                    state.pod.name,
                    f"{len(answer.running)} operation(s) running: {', '.join(answer.running)}"
                    if answer.running
                    else answer.describe(),
                )

    def _record_failure(self, state: _PodState, answer: Answer, refusal: str | None) -> None:
        with self._cond:
            previous = state.last
            state.last = answer
            state.idle = False
            state.fence_refusal = refusal
            if previous is None or previous.describe() != answer.describe():
                if refusal:
                    log.warning(
                        "pod %s: refused the fence (%s); it cannot count as idle",
                        state.pod.name,
                        refusal,
                    )
                else:
                    log.warning(
                        "pod %s: %s; retrying with backoff", state.pod.name, answer.describe()
                    )

    def _update(self, state: _PodState, *, fenced: bool, refusal: str | None) -> None:
        with self._cond:
            state.fenced = fenced
            state.fence_refusal = refusal
            self._cond.notify_all()

    @staticmethod
    def _with_lock(state: _PodState, call: Callable[[], Answer]) -> Answer | None:
        # Fencing and releasing share a lock, so a renewal already on the wire
        # cannot land after the release and fence the pod again.
        with state.lock:
            if state.stop.is_set() or state.held:
                return None
            return call()

    # -- endings -------------------------------------------------------------

    def _release_all(self) -> None:
        with self._cond:
            states = list(self._pods.values())
        for state in states:
            state.stop.set()
        fenced = [s for s in states if s.fenced or s.fence_refusal is None]
        if not self.options.fence or not fenced:
            return

        def release(state: _PodState) -> None:
            with state.lock:
                answer = PodClient(state.pod.base_url, self.options.token).release(
                    self.options.holder
                )
            if answer.reachable and answer.status == 200:
                log.info("pod %s: fence released", state.pod.name)
            elif state.fenced:
                log.warning(
                    "pod %s: could not release the fence (%s); its lease expires on its own",
                    state.pod.name,
                    answer.describe(),
                )

        self._for_each(fenced, release)

    def _stop_all(self) -> None:
        with self._cond:
            for state in self._pods.values():
                state.stop.set()

    @staticmethod
    def _for_each(states: list[_PodState], call: Callable[[_PodState], T]) -> list[T]:
        if not states:
            return []
        with ThreadPoolExecutor(max_workers=min(64, len(states))) as pool:
            return list(pool.map(call, states))


class _Backoff:
    def __init__(self, first: float = 0.2, cap: float = 5.0) -> None:
        self.first, self.cap, self.current = first, cap, first

    def next(self) -> float:
        value, self.current = self.current, min(self.cap, self.current * 2)
        return value

    def reset(self) -> None:
        self.current = self.first
