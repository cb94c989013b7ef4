"""Hold an upgrade until every pod of the release is idle, or fail safe.

The rule (what counts is the pod source's: see ``app/upgrade_gate/hook/pods.py``):

- **Who counts.** Every pod the source lists, keyed by its UID. A pod with no
  address yet is *not yet gated*: it is never idle until it has an address,
  has been fenced and seen idle, or is gone. A pod whose address changes is
  gated again from the start.
- **When a pod is gated.** Its own thread fences it (a drain lease, renewed
  every third of its length) and long-polls ``/upgradeable``. A fenced pod that
  answers idle cannot take new work while the lease holds: it is *ready*, and
  from then on it is fenced with the ``hold`` lease (plus one renewal) and
  *watched*: ``/upgradeable?watch`` stays open while the pod stays fenced and
  idle, and answers the moment that ends (the fence lifted or run out,
  shutdown). The pod's process is part of its identity: an answer from another
  ``instance``, or a watch whose connection breaks (the container restarted),
  drops the pod back to "not fenced" and it is fenced and asked again.
- **What ends the wait.** When a fresh listing shows every counted pod ready,
  a final round fences again, with the ``hold`` lease that covers Helm's
  rollout, every pod whose watch is not open at that moment (the pod that
  just became idle, an app that cannot watch); each must answer idle in that
  very answer. A pod with an open watch has already been asked: any change
  would be on its way. Then one more listing must show the same pods. Only
  then does the hook exit 0. Every pod gone is confirmed by a second listing
  before it counts as "nothing to wait for".
- **An app that lacks a part.** A ``404`` or ``405`` to ``POST /drain`` or
  ``GET /upgradeable`` is not a busy pod: the app may have no such endpoint
  (the original demo has no ``/drain``), and waiting cannot give it one. The
  body cannot tell (gin answers its 404 in plain text), so the hook finds out
  who answers. Only when that endpoint answers ``404``/``405`` on every ask for
  ``MISSING_FOR`` seconds does it ask ``GET /upgradeable`` (no query): the app's
  own answer there (the contract, or the original demo's) says the app has no
  fence; a ``404``/``405`` there too says it has no gate at all. Any other
  answer (unreachable, a proxy's 502/503, no JSON) is something in the app's
  place, as while a container restarts: the pod is asked again, as before. An
  endpoint that answered as the app once during this wait is served: a later
  ``404`` is transient. A pod found lacking ends the wait, exit 1, at the first
  listing made after that still names it at that address (a pod replaced in the
  meantime drops out of the listing instead); its fences released as on every
  exit. An app that ignores ``?wait`` or ``?watch`` answers at once, so it is
  not one of these: it is polled.
- **An app that refuses the hook's token.** The app reads its drain token once,
  at start, so a ``401`` or ``403`` of its own (a JSON ``error``, not a
  proxy's page) to ``POST /drain`` holds for as long as that process lives:
  an app with no token (``403``), or with another token than the hook's
  (``401``). After ``MISSING_FOR`` seconds of such answers, and once
  ``GET /upgradeable`` answers as the app, it ends the wait as a lacking part
  does, naming which token is missing or differs.
- **Failing safe.** On the deadline, or SIGTERM, every fence this hook placed
  is released (the summary names any pod where that failed) and the hook
  fails: Helm then changes nothing. If the hook itself dies, the leases run
  out on their own: a busy pod's within ``lease``, an idle pod's within
  ``hold`` plus ``lease``, since it may be let go at any moment.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TypeVar

from upgrade_gate.hook.client import Answer, PodClient
from upgrade_gate.hook.pods import (
    ForbiddenError,
    MisconfiguredError,
    Pod,
    PodSource,
    SourceError,
    list_within,
)

log = logging.getLogger("upgrade_gate.hook")
T = TypeVar("T")

# A busy answer that comes back sooner than this (a pod shutting down, an app
# that ignores ?wait, a 429) is not asked again before it has passed.
MIN_POLL_INTERVAL = 0.5
# The longest lease the gate contract accepts (upgrade_gate.flask.MAX_LEASE_SECONDS).
MAX_LEASE = 3600.0
# A renewal due sooner than this is waited for, not watched.
MIN_WATCH = 0.05
# An endpoint answering 404 or 405 on every ask for this long is looked into: does the app
# lack it? (The module's docstring: "An app that lacks a part".)
MISSING_FOR = 2.0
DRAIN, UPGRADEABLE = "POST /drain", "GET /upgradeable"


class Exit(IntEnum):
    OK = 0
    # The deadline passed, or a pod's app lacks a part of the contract (then at once):
    # the upgrade must not proceed.
    NOT_IDLE = 1
    USAGE = 2
    FORBIDDEN = 3
    # Something the hook did not foresee (a bug, or input it could not read): fences released,
    # the upgrade must not proceed; the Job's retry may fare better.
    ERROR = 4
    # Killed from outside (pod deleted or evicted): 128 + SIGTERM, as a shell
    # reports it, so that the chart's podFailurePolicy retries this one
    # without counting it, and fails the Job at once on the others.
    TERMINATED = 143


def exit_for(error: SourceError) -> Exit:
    """How the hook ends when its pods cannot be listed and retrying cannot help."""
    return Exit.FORBIDDEN if isinstance(error, ForbiddenError) else Exit.USAGE


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


@dataclass(frozen=True)
class Changes:
    """How a listing differs from the pods known so far, by UID."""

    gone: list[str]
    moved: list[Pod]  # same UID, other address: gated again
    new: list[Pod]


def diff(known: Mapping[str, Pod], listed: Iterable[Pod]) -> Changes:
    current = {pod.uid: pod for pod in listed}
    return Changes(
        gone=[uid for uid in known if uid not in current],
        moved=[p for uid, p in current.items() if uid in known and known[uid] != p],
        new=[p for uid, p in current.items() if uid not in known],
    )


@dataclass
class _PodState:
    pod: Pod
    client: PodClient | None  # the pod thread's, for long-polls
    # Fences and releases, under ``lock``: a connection of their own, kept
    # alive, so the final round and the release never wait on a long-poll.
    control: PodClient | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    lease: float = 0.0  # of the last fence that held; 0 while not fenced
    fenced: bool = False  # a fence of ours reached the pod at least once
    # A fence of ours was sent: the pod may hold it though its answer never came.
    fence_sent: bool = False
    idle: bool = False
    idle_at: float | None = None
    instance: str | None = None
    # The app said a ``?watch`` holds (its answer's head, from the process
    # last seen fenced and idle): it answers the moment that stops, so while
    # this is true the pod needs no asking in the final round.
    watching: bool = False
    can_watch: bool = True  # False for an app that ignores ?watch
    last: Answer | None = None
    fence_refusal: str | None = None
    wake: threading.Event = field(default_factory=threading.Event)
    # The requests that answered as the app during this wait (DRAIN, UPGRADEABLE): the app
    # serves them, and a 404 from them later is not the app's.
    served: set[str] = field(default_factory=set)
    # A run of 404/405 answers to one request, or of the app's own 401 or 403 to the fence:
    # (the request, with the status for a refusal; when the run began).
    not_served: tuple[str, float] | None = None
    # What the pod's app lacks, once found out, and when (the pod thread then stops).
    lacks: str | None = None
    lacks_at: float = 0.0

    def pause(self, seconds: float) -> None:
        """Sleep until ``seconds`` pass, the pod is woken, or its gating stops."""
        self.wake.wait(max(0.0, seconds))
        self.wake.clear()

    def halt(self) -> None:
        self.stop.set()
        self.wake.set()

    def describe_busy(self) -> str:
        pod = self.pod.name
        if self.lacks:
            return f"{pod} ({self.lacks})"
        if not self.pod.addressable:
            return f"{pod} (not yet gated: {self.pod.waiting or 'no address'})"
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
        self._deadline = float("inf")
        # Pods dropped from the listing (gone, or at another address): a fence of ours may
        # still be on them, and it is lifted with the others when the wait fails.
        self._dropped: list[_PodState] = []

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
        self._deadline = deadline
        try:
            return self._run()
        except Exception as exc:  # every exit releases what this hook may have fenced
            log.exception("unexpected error")
            released = self._release_all()
            return Outcome(
                Exit.ERROR,
                f"unexpected error ({type(exc).__name__}: {exc}): {released}, "
                "the upgrade must not proceed",
            )
        finally:
            self._stop_all()

    def _run(self) -> Outcome:
        options, deadline = self.options, self._deadline
        first_listing = True
        listing_error: str | None = None
        empty_since: float | None = None
        next_round_at = 0.0
        while True:
            pods, attempted, deferred = None, False, None
            listed_at = self.clock()
            try:
                pods = self._list()
                if listing_error is not None:
                    log.info("pods listed again, after: %s", listing_error)
                listing_error = None
            except SourceError as exc:
                # A denial after this very wait listed the pods is not missing RBAC but an API
                # server starting, which denies every request until its RBAC caches are filled.
                denied_first = isinstance(exc, ForbiddenError) and first_listing
                if denied_first or isinstance(exc, MisconfiguredError):
                    return Outcome(exit_for(exc), f"{exc}: {self._release_all()}")
                if listing_error != str(exc):
                    log.warning("%s; retrying", exc)
                # "Every pod gone" needs empty listings in a row.
                listing_error, empty_since = str(exc), None
            if pods is not None:
                self._reconcile(pods)
                if lacking := self._lacking(listed_at):
                    released = self._release_all()
                    return Outcome(
                        Exit.NOT_IDLE, f"{lacking}; {released}, the upgrade must not proceed"
                    )
                if not pods and first_listing:
                    return Outcome(Exit.OK, self._no_pods_summary(first_listing))
                first_listing = False
                if pods:
                    empty_since = None
                elif empty_since is None:
                    empty_since = self.clock()
                    log.info("no pod listed any more: confirming on a later listing")
                elif self.clock() - empty_since >= options.discovery_interval:
                    return Outcome(Exit.OK, self._no_pods_summary(first_listing))
                if pods and self._all_ready():
                    if self.clock() >= next_round_at:
                        attempted = True
                        if self._final_round() and (confirmed := self._confirm_listing()):
                            return confirmed
                        # A pod that refuses the final fence is not asked again at once.
                        next_round_at = self.clock() + MIN_POLL_INTERVAL
                    else:
                        deferred = next_round_at - self.clock()
            if self._terminated:
                released = self._release_all()
                return Outcome(
                    Exit.TERMINATED,
                    f"{self._terminated}: {released}, the upgrade must not proceed; "
                    f"{self._busy_summary()}",
                )
            if self.clock() >= deadline:
                released = self._release_all()
                reason = f"listing pods failed: {listing_error}" if listing_error else None
                return Outcome(
                    Exit.NOT_IDLE,
                    f"deadline of {options.timeout:g}s reached, {released}: "
                    f"{reason or self._busy_summary()}",
                )
            with self._cond:
                if (
                    attempted
                    or deferred is not None
                    or not self._all_ready_locked()
                    or empty_since is not None
                ):
                    remaining = max(0.0, deadline - self.clock())
                    pause = min(options.discovery_interval, remaining)
                    self._cond.wait(pause if deferred is None else min(pause, deferred))

    def _list(self) -> list[Pod]:
        return list_within(
            self.source.list_pods, self._deadline, lambda: bool(self._terminated), self.clock
        )

    def _reconcile(self, pods: Iterable[Pod]) -> None:
        with self._cond:
            changes = diff({uid: s.pod for uid, s in self._pods.items()}, pods)
            for uid in changes.gone:
                state = self._pods.pop(uid)
                state.halt()
                self._dropped.append(state)
                log.info("pod %s is gone: no longer counted", state.pod.name)
            for pod in changes.moved:
                state = self._pods.pop(pod.uid)
                state.halt()
                self._dropped.append(state)
                log.info("pod %s is now at %s: gating it again", pod.name, pod.where)
                self._start(pod)
            for pod in changes.new:
                self._start(pod)
            if changes.gone or changes.moved or changes.new:
                self._cond.notify_all()

    def _start(self, pod: Pod) -> None:
        """Count ``pod``; gate it if it has an address (the caller holds the lock)."""
        if not pod.addressable:
            self._pods[pod.uid] = _PodState(pod, None)
            log.info("pod %s: not yet gated (%s); it cannot count as idle", pod.name, pod.waiting)
            return
        state = _PodState(pod, self._client(pod), self._client(pod))
        self._pods[pod.uid] = state
        log.info("gating pod %s%s", pod.name, "" if pod.where == pod.name else f" at {pod.where}")
        threading.Thread(
            target=self._watch, args=(state,), name=f"pod-{pod.name}", daemon=True
        ).start()

    def _ready(self, state: _PodState) -> bool:
        if not state.pod.addressable:
            return False
        if not self.options.fence:
            return state.idle
        return state.idle and state.lease > 0

    def _watched(self, state: _PodState) -> bool:
        """Ready, holding the hold lease, and its watch open (the caller holds the lock)."""
        return state.watching and self._ready(state) and state.lease >= self.options.final_lease

    def _all_ready(self) -> bool:
        with self._cond:
            return self._all_ready_locked()

    def _all_ready_locked(self) -> bool:
        return bool(self._pods) and all(self._ready(s) for s in self._pods.values())

    def _final_round(self) -> bool:
        """Every pod, at once, must answer idle with this hook's fence in place.

        A pod whose watch is open has that answer on the way the moment it
        stops holding, and the hold lease from its renewals: it is not asked.
        """
        with self._cond:
            states = list(self._pods.values())
            if self.options.fence:
                states = [s for s in states if not self._watched(s)]
        if not self.options.fence:
            return self._confirm_idle(states)

        def fence(state: _PodState) -> Answer | None:
            with state.lock:
                if state.stop.is_set():
                    return None
                state.fence_sent = True
                return (state.control or self._client(state.pod)).fence(self.options.final_lease)

        answers = self._for_each(states, fence)
        failed = []
        for state, answer in zip(states, answers, strict=True):
            if answer is None:
                failed.append(state.pod.name)
            elif answer.status == 200 and answer.understood:
                self._observe(state, answer, lease=self.options.final_lease, fenced=True)
                if not answer.upgradeable:
                    failed.append(state.pod.name)
            else:
                self._record_failure(state, answer, answer.describe() if answer.reachable else None)
                failed.append(state.pod.name)
        if failed:
            log.info("final round: not idle under the fence: %s", ", ".join(sorted(failed)))
            for state in states:
                state.wake.set()
        return not failed

    def _confirm_idle(self, states: list[_PodState]) -> bool:
        """Without fences a pod can take new work at any moment: ask all at once."""
        answers = self._for_each(states, lambda s: PodClient(s.pod.base_url, None).upgradeable())
        busy = [(s, a) for s, a in zip(states, answers, strict=True) if not a.upgradeable]
        with self._cond:
            for state, answer in busy:
                state.idle, state.last = False, answer
        if busy:
            log.info("confirmation round: busy again: %s", ", ".join(s.pod.name for s, _ in busy))
        return not busy

    def _confirm_listing(self) -> Outcome | None:
        """Success, if a listing after the final round shows the very same pods, all still
        ready: a watch the final round relied on may have ended while the listing was on its
        way (the fence run out, the app restarted), and that pod must be fenced again first."""
        try:
            pods = self._list()
        except SourceError:
            return None  # the loop lists again and reports the error
        with self._cond:
            same = {p.uid: p for p in pods} == {u: s.pod for u, s in self._pods.items()}
            ready = self._all_ready_locked()
        if not same:
            self._reconcile(pods)
            return None
        if not ready:
            log.info("final round: a pod is no longer ready since: asking again")
            return None
        return self._success()

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

    def _lacking(self, listed_at: float) -> str | None:
        """What the pods' apps lack, as one line, for pods found lacking before a listing that
        began at ``listed_at`` still named them at that address; None if none were."""
        with self._cond:
            found = sorted(
                (s for s in self._pods.values() if s.lacks and s.lacks_at < listed_at),
                key=lambda s: s.pod.name,
            )
        if not found:
            return None
        first, pod = found[0], found[0].pod
        where = "" if pod.where == pod.name else f" ({pod.where})"
        line = f"pod {pod.name}{where}: {first.lacks}"
        if others := [s.pod.name for s in found[1:]]:
            line += f"; {len(others)} more pod(s) lack a part too: {', '.join(others)}"
        return line

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
        client = state.client
        assert client is not None
        backoff = _Backoff()
        renew_at = 0.0
        # Never shorten a lease. An idle pod holds the hold lease and one
        # renewal on top: whenever the wait ends, the rollout is covered.
        held = min(options.final_lease + options.lease, MAX_LEASE)
        while not state.stop.is_set():
            if options.fence and (
                self.clock() >= renew_at or not state.lease or (state.idle and state.lease < held)
            ):
                ttl = held if state.idle else max(options.lease, state.lease)
                answer = self._fence(state, ttl)
                if answer is None:
                    return
                if not (answer.status == 200 and answer.understood):
                    refusal = answer.describe() if answer.reachable else None
                    self._record_failure(state, answer, refusal)
                    if self._lacks(state, DRAIN, answer):
                        return
                    state.pause(max(answer.retry_after or 0.0, backoff.next()))
                    continue
                # The fence's answer is the pod's status: /upgradeable is served too.
                state.served.update((DRAIN, UPGRADEABLE))
                renew_at = self.clock() + options.lease / 3
                backoff.reset()
                # /drain answers with the pod's status as of the fence: fresh.
                self._observe(state, answer, lease=ttl, fenced=True)
                continue
            if state.idle and options.fence:
                # Fenced and idle stays idle, unless the fence goes or the
                # process restarts: watch for that until the renewal.
                self._watch_ready(state, max(0.0, renew_at - self.clock()), backoff)
                continue
            wait = options.poll
            if options.fence:
                wait = min(wait, max(0.05, renew_at - self.clock()))
            asked = self.clock()
            answer = client.upgradeable(0.0 if state.idle else wait)
            if state.stop.is_set():
                return
            if not answer.understood:
                self._record_failure(state, answer, None)
                if self._lacks(state, UPGRADEABLE, answer):
                    return
                state.pause(max(answer.retry_after or 0.0, backoff.next()))
                continue
            state.served.add(UPGRADEABLE)
            backoff.reset()
            self._observe(state, answer, lease=state.lease, fenced=False)
            if state.idle and not options.fence:
                state.pause(options.discovery_interval)
            elif not state.idle:
                # A long-poll that came back busy before its time: do not spin.
                pause = max(answer.retry_after or 0.0, MIN_POLL_INTERVAL)
                state.pause(max(0.0, min(pause, wait) - (self.clock() - asked)))

    def _watch_ready(self, state: _PodState, until_renewal: float, backoff: _Backoff) -> None:
        """Hold a ``?watch`` on a ready pod until its renewal is due."""
        if not state.can_watch or until_renewal < MIN_WATCH:
            state.pause(until_renewal)
            return
        client = state.client
        assert client is not None

        def holding(instance: str) -> None:
            # Only the app's own word counts, from the process this hook saw
            # fenced and idle: a request still queued for a restarting
            # container proves nothing.
            with self._cond:
                state.watching = bool(instance) and instance == state.instance

        asked = self.clock()
        try:
            answer = client.watch(min(until_renewal, self.options.poll), holding)
        finally:
            with self._cond:
                state.watching = False
        if state.stop.is_set():
            return
        if answer.status == 429:  # no long-poll slot: the final round asks this pod
            state.pause(min(max(answer.retry_after or 0.0, MIN_POLL_INTERVAL), until_renewal))
            return
        if not answer.understood:
            self._record_failure(state, answer, None)
            state.pause(max(answer.retry_after or 0.0, backoff.next()))
            return
        if not answer.watched:
            state.can_watch = False
            log.info(
                "pod %s: its app cannot watch (no ?watch): asked again at the end", state.pod.name
            )
        # The fence gone (lifted, run out) makes the pod not ready: fenced again.
        self._observe(state, answer, lease=state.lease if answer.draining else 0.0, fenced=False)
        if not answer.watched:
            state.pause(until_renewal)
        elif state.idle:
            # A watch that ended at once with nothing changed: not asked again at once.
            state.pause(min(MIN_POLL_INTERVAL - (self.clock() - asked), until_renewal))

    def _lacks(self, state: _PodState, asked: str, answer: Answer) -> bool:
        """Whether ``answer`` to ``asked`` shows the pod's app lacks a part of the contract
        (then ``state.lacks`` says which): the rule is the module's, "An app that lacks a
        part". False for every answer that does not end a long enough run of 404/405."""
        refused = asked == DRAIN and answer.refused_by_app
        if not refused and (not answer.not_served or asked in state.served):
            state.not_served = None
            return False
        run = f"{asked} {answer.status}" if refused else asked
        now = self.clock()
        if state.not_served is None or state.not_served[0] != run:
            state.not_served = (run, now)
            return False
        if now - state.not_served[1] < MISSING_FOR:
            return False
        state.not_served = None
        assert state.client is not None
        # Who answers at the pod's address? Without ?wait, which an older router might not take.
        probe = state.client.upgradeable()
        if state.stop.is_set():
            return False
        if refused and probe.understood:
            lacks = self._refusal(state, answer)
        elif refused:
            return False  # not the app answering the status: who refused is not known
        elif probe.not_served and UPGRADEABLE not in state.served:
            lacks = (
                f"GET /upgradeable answers {probe.status}: the app serves no upgrade gate at "
                "/upgradeable; give it the upgrade gate's /upgradeable and /drain, or do not "
                "gate this release (chart: gate.enabled=false)"
            )
        elif asked == DRAIN and probe.understood:
            lacks = (
                f"POST /drain answers {answer.status}: the app serves no fence; give it the "
                "upgrade gate's /drain, or run the hook without fencing "
                "(chart: gate.fence=false; CLI: --no-fence)"
            )
        else:
            return False  # not the app answering (yet), or an app that has it after all
        with self._cond:
            state.lacks, state.lacks_at, state.idle = lacks, self.clock(), False
            log.warning("pod %s: %s", state.pod.name, lacks)
            self._cond.notify_all()
        return True

    @staticmethod
    def _refusal(state: _PodState, answer: Answer) -> str:
        """Why the app refuses this hook's fence, for good: its own 401 or 403."""
        assert state.client is not None
        either = "or run the hook without fencing (chart: gate.fence=false; CLI: --no-fence)"
        if answer.status == 403:
            return (
                f"POST /drain answers 403 ({answer.body['error']}): the app has no drain "
                "token, so it refuses every fence; give it the hook's token (chart: the "
                "upgrade-gate-hook.tokenEnv, tokenVolumeMount and tokenVolume templates; "
                f"library: $UPGRADE_GATE_TOKEN_FILE or $UPGRADE_GATE_TOKEN), {either}"
            )
        if not state.client.has_token:
            return (
                "POST /drain answers 401: the hook has no drain token and the app has one; "
                f"give the hook the app's token ($UPGRADE_GATE_TOKEN_FILE), {either}"
            )
        return (
            "POST /drain answers 401: the app's drain token is not the hook's (the token "
            "changed and this pod has not restarted since? it reads its token at start); "
            f"restart the pod on the hook's token, {either}"
        )

    @staticmethod
    def _fence(state: _PodState, ttl: float) -> Answer | None:
        # Fencing and releasing share a lock, so a renewal already on the wire
        # cannot land after the release and fence the pod again.
        with state.lock:
            if state.stop.is_set() or state.control is None:
                return None
            state.fence_sent = True
            return state.control.fence(ttl)

    def _observe(self, state: _PodState, answer: Answer, lease: float, fenced: bool) -> None:
        with self._cond:
            was_idle, previous = state.idle, state.last
            if answer.instance and state.instance and answer.instance != state.instance:
                # Another process answers at this address: what we knew (our
                # fence, its idleness) was about the one before.
                log.warning("pod %s: restarted (new app process): gating it again", state.pod.name)
                was_idle, previous, state.idle_at = False, None, None
                if not fenced:
                    lease = 0.0
            state.instance = answer.instance or state.instance
            if fenced:
                state.fenced = True
            if lease and not state.lease:
                log.info("pod %s: fenced (lease %gs)", state.pod.name, lease)
            state.last, state.idle, state.lease, state.fence_refusal = (
                answer,
                answer.upgradeable and (bool(lease) or not self.options.fence),
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
                    else answer.describe()
                    if answer.active != 0
                    else "not fenced yet",
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

    def _release_all(self) -> str:
        """Lift every fence this hook may have placed, on the pods listed and on those that
        left the listing, those whose answer never came included; say truthfully how that
        went."""
        with self._cond:
            states = [*self._pods.values(), *self._dropped]
        for state in states:
            state.halt()
        if not self.options.fence:
            return "nothing fenced"

        def release(state: _PodState) -> tuple[bool, str | None]:
            """(whether a fence of ours may be on the pod, why it keeps it if it does)."""
            # Under the lock a fence takes, after halt(): a fence on the wire is awaited and
            # counted, and none can be sent once this has looked.
            with state.lock:
                if not (state.fenced or state.fence_sent) or not state.pod.addressable:
                    return False, None
                if state.lacks:  # found to have no /drain: no fence of ours is on it
                    return False, None
                answer = (state.control or self._client(state.pod)).release()
            if answer.status == 200:
                log.info("pod %s: fence released", state.pod.name)
                return True, None
            log.warning(
                "pod %s: could not release the fence (%s); its lease runs out on its own",
                state.pod.name,
                answer.describe(),
            )
            return True, f"{state.pod.name} keeps it until its lease runs out ({answer.describe()})"

        fenced = [why for was, why in self._for_each(states, release) if was]
        kept = [why for why in fenced if why]
        if not fenced:
            return "nothing fenced"
        if not kept:
            return "fences released"
        return f"fences released on {len(fenced) - len(kept)} of {len(fenced)} pod(s), " + (
            "; ".join(kept)
        )

    def _client(self, pod: Pod) -> PodClient:
        return PodClient(pod.base_url, self.options.token, self.options.holder)

    def _stop_all(self) -> None:
        with self._cond:
            for state in self._pods.values():
                state.halt()

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
