"""Hold an upgrade until every pod of the release is idle, or fail safe.

One thread per pod fences it (a drain lease, renewed every third of its
length) and long-polls ``/upgradeable``. A fenced pod that is idle cannot take
new work, so it stays idle while its lease holds; its thread then swaps the
short lease for the ``hold`` lease that covers Helm's rollout, and the pod is
*ready*. The main thread lists the pods again and again, so pods that appear
are gated too and pods that are gone stop counting, and lets the upgrade
proceed when a fresh listing shows every pod ready.

On the deadline, or SIGTERM, every fence is released so the old pods take
work again, and the hook fails: Helm then changes nothing. If the hook itself
dies, the leases run out on their own.
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
    NOT_IDLE = 1  # the deadline passed: the upgrade must not proceed
    USAGE = 2
    FORBIDDEN = 3
    # Killed from outside (pod deleted or evicted): 128 + SIGTERM, as a shell
    # reports it, so that the chart's podFailurePolicy retries this one
    # without counting it, and fails the Job at once on the others.
    TERMINATED = 143


@dataclass(frozen=True)
class Options:
    timeout: float = 300.0
    lease: float = 30.0
    hold: float = 120.0  # the lease an idle pod keeps, to cover Helm's rollout
    fence: bool = True
    poll: float = 10.0  # longest single long-poll
    discovery_interval: float = 1.0
    holder: str = "upgrade-gate-hook"
    token: str | None = None

    @property
    def final_lease(self) -> float:
        return max(self.lease, self.hold)


@dataclass(frozen=True)
class Outcome:
    code: Exit
    summary: str


@dataclass
class _PodState:
    pod: Pod
    client: PodClient
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    lease: float = 0.0  # of the last fence that held; 0 while not fenced
    idle: bool = False
    idle_at: float | None = None
    last: Answer | None = None
    fence_refusal: str | None = None

    def describe_busy(self) -> str:
        pod = self.pod.name
        if self.fence_refusal:
            return f"{pod} (refused the fence: {self.fence_refusal})"
        if self.last is None:
            return f"{pod} (no answer yet)"
        if not self.last.reachable:
            return f"{pod} ({self.last.error})"
        if running := self.last.running:
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
        self.started = clock()
        self._cond = threading.Condition()
        self._pods: dict[str, _PodState] = {}
        self._terminated: str | None = None

    def terminate(self, reason: str) -> None:
        """Ask the wait to end now, releasing fences (safe from a signal handler)."""
        self._terminated = reason

    # -- the decision loop ---------------------------------------------------

    def run(self) -> Outcome:
        options = self.options
        self.started = self.clock()
        deadline = self.started + options.timeout
        log.info(
            "waiting for %s to be idle (deadline %gs, %s)",
            self.source.description,
            options.timeout,
            f"fence lease {options.lease:g}s, hold {options.final_lease:g}s"
            if options.fence
            else "no fence",
        )
        first_listing = True
        listing_error: str | None = None
        try:
            while True:
                try:
                    pods: list[Pod] | None = self.source.list_pods()
                    listing_error = None
                except SourceError as exc:
                    if exc.exit_code != Exit.NOT_IDLE:
                        self._release_all()
                        return Outcome(Exit(exc.exit_code), str(exc))
                    if listing_error != str(exc):
                        log.warning("%s; retrying", exc)
                    listing_error, pods = str(exc), None
                if pods is not None:
                    self._reconcile(pods)
                    if not pods:
                        return Outcome(Exit.OK, self._no_pods_summary(first_listing))
                    first_listing = False
                    if self._all_ready() and (options.fence or self._confirm_idle()):
                        return self._success()
                if self._terminated:
                    self._release_all()
                    return Outcome(
                        Exit.TERMINATED,
                        f"{self._terminated}: fences released, the upgrade must not proceed; "
                        f"{self._busy_summary()}",
                    )
                if self.clock() >= deadline:
                    self._release_all()
                    reason = f"listing pods failed: {listing_error}" if listing_error else None
                    return Outcome(
                        Exit.NOT_IDLE,
                        f"deadline of {options.timeout:g}s reached, fences released: "
                        f"{reason or self._busy_summary()}",
                    )
                with self._cond:
                    if not self._all_ready_locked():
                        remaining = max(0.0, deadline - self.clock())
                        self._cond.wait(min(options.discovery_interval, remaining))
        finally:
            self._stop_all()

    def _reconcile(self, pods: Iterable[Pod]) -> None:
        current = {pod.name: pod for pod in pods}
        with self._cond:
            for name in list(self._pods):
                if current.get(name) != self._pods[name].pod:
                    self._pods.pop(name).stop.set()
                    log.info("pod %s is gone: no longer counted", name)
            for name, pod in current.items():
                if name in self._pods:
                    continue
                state = _PodState(pod, self._client(pod))
                self._pods[name] = state
                where = f"{pod.host}:{pod.port}"
                log.info("gating pod %s%s", name, "" if where == name else f" at {where}")
                threading.Thread(
                    target=self._watch, args=(state,), name=f"pod-{name}", daemon=True
                ).start()

    def _ready(self, state: _PodState) -> bool:
        if not self.options.fence:
            return state.idle
        return state.idle and state.lease >= self.options.final_lease

    def _all_ready(self) -> bool:
        with self._cond:
            return self._all_ready_locked()

    def _all_ready_locked(self) -> bool:
        return bool(self._pods) and all(self._ready(s) for s in self._pods.values())

    def _confirm_idle(self) -> bool:
        """Without fences a pod can take new work at any moment: ask all at once."""
        with self._cond:
            states = list(self._pods.values())
        answers = self._for_each(states, lambda s: PodClient(s.pod.base_url, None).upgradeable())
        busy = [(s, a) for s, a in zip(states, answers, strict=True) if not a.upgradeable]
        with self._cond:
            for state, answer in busy:
                state.idle, state.last = False, answer
        if busy:
            log.info("confirmation round: busy again: %s", ", ".join(s.pod.name for s, _ in busy))
        return not busy

    def _success(self) -> Outcome:
        with self._cond:
            states = sorted(self._pods.values(), key=lambda s: s.pod.name)
        waited = ", ".join(
            f"{s.pod.name} {(s.idle_at or self.started) - self.started:.1f}s" for s in states
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
            busy = sorted(
                (s for s in self._pods.values() if not self._ready(s)), key=lambda s: s.pod.name
            )
        if not busy:
            return "no pod was busy"
        return f"{len(busy)} pod(s) not idle: " + "; ".join(s.describe_busy() for s in busy)

    # -- one thread per pod --------------------------------------------------

    def _watch(self, state: _PodState) -> None:
        options = self.options
        backoff = _Backoff()
        renew_at = 0.0
        while not state.stop.is_set():
            if options.fence and (self.clock() >= renew_at or self._wants_hold(state)):
                ttl = options.final_lease if state.idle else options.lease
                answer = self._fence(state, ttl)
                if answer is None:
                    return
                if not (answer.status == 200 and answer.understood):
                    refusal = answer.describe() if answer.reachable else None
                    self._record_failure(state, answer, refusal)
                    state.stop.wait(backoff.next())
                    continue
                renew_at = self.clock() + options.lease / 3
                backoff.reset()
                # /drain answers with the pod's status as of the fence: fresh.
                self._observe(state, answer, lease=ttl)
                continue
            if state.idle and options.fence:
                # Fenced and idle stays idle: nothing to ask until the renewal.
                state.stop.wait(max(0.0, renew_at - self.clock()))
                continue
            wait = options.poll
            if options.fence:
                wait = min(wait, max(0.05, renew_at - self.clock()))
            answer = state.client.upgradeable(0.0 if state.idle else wait)
            if state.stop.is_set():
                return
            if not answer.understood:
                self._record_failure(state, answer, None)
                state.stop.wait(backoff.next())
                continue
            backoff.reset()
            self._observe(state, answer, lease=state.lease)
            if state.idle and not options.fence:
                state.stop.wait(options.discovery_interval)

    def _wants_hold(self, state: _PodState) -> bool:
        return state.idle and state.lease < self.options.final_lease

    @staticmethod
    def _fence(state: _PodState, ttl: float) -> Answer | None:
        # Fencing and releasing share a lock, so a renewal already on the wire
        # cannot land after the release and fence the pod again.
        with state.lock:
            if state.stop.is_set():
                return None
            return state.client.fence(ttl)

    def _observe(self, state: _PodState, answer: Answer, lease: float) -> None:
        with self._cond:
            was_idle, previous = state.idle, state.last
            if lease and not state.lease:
                log.info("pod %s: fenced (lease %gs)", state.pod.name, lease)
            state.last, state.idle, state.lease, state.fence_refusal = (
                answer,
                answer.upgradeable,
                lease,
                None,
            )
            if state.idle and not was_idle:
                state.idle_at = self.clock()
                log.info("pod %s: idle after %.1fs", state.pod.name, state.idle_at - self.started)
            elif not state.idle and (
                was_idle
                or previous is None
                or not previous.reachable
                or previous.running != answer.running
            ):
                running = answer.running
                log.info(
                    "pod %s: busy, %s",
                    state.pod.name,
                    f"{len(running)} operation(s) running: {', '.join(running)}"
                    if running
                    else answer.describe(),
                )
            self._cond.notify_all()

    def _record_failure(self, state: _PodState, answer: Answer, refusal: str | None) -> None:
        with self._cond:
            previous = state.last
            # A pod that cannot be fenced or asked might have taken work since
            # its last answer: it is not idle, whatever it said before.
            state.last, state.idle, state.lease, state.fence_refusal = (answer, False, 0.0, refusal)
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
            self._cond.notify_all()

    # -- endings -------------------------------------------------------------

    def _release_all(self) -> None:
        with self._cond:
            states = list(self._pods.values())
        for state in states:
            state.stop.set()
        if not self.options.fence:
            return

        def release(state: _PodState) -> None:
            if state.fence_refusal:
                return
            with state.lock:  # a fresh client: the pod's own may sit in a long-poll
                answer = self._client(state.pod).release()
            if answer.status == 200:
                log.info("pod %s: fence released", state.pod.name)
            elif state.lease:
                log.warning(
                    "pod %s: could not release the fence (%s); its lease runs out on its own",
                    state.pod.name,
                    answer.describe(),
                )

        self._for_each(states, release)

    def _client(self, pod: Pod) -> PodClient:
        return PodClient(pod.base_url, self.options.token, self.options.holder)

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
