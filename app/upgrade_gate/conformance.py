"""``python -m upgrade_gate.conformance URL``: does a running server keep ``upgrade-gate/v1``?

It drives the server through the gate's HTTP contract (docs/http-contract.md) as the hook
would, and a few ways the hook never does (bad input, wrong tokens), and prints one row per
rule: ``holds``, ``FAILS`` with the evidence (the request, the answer's code and body, when
it came), or ``not run`` with the reason. Exit 0 when every check that ran holds, 1 when one
fails, 2 on bad usage.

The contract has no standard way to make a pod busy, so the checks that need work running
take it from ``--work 'POST /operations {"seconds": {seconds}}'``; those that fence need the
drain token (``--token-file``, else ``$UPGRADE_GATE_TOKEN_FILE`` or ``$UPGRADE_GATE_TOKEN``,
as the hook reads it). Without them, their checks are ``not run``, never ``holds``.

Standard library only: ``pip install helm-upgrade-gate`` with no extra runs it. Every
request has a timeout, and an answer that is not JSON is evidence, not a crash. The server
should have no other traffic while it runs: the checks fence it and read its idleness.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import re
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn, TextIO

from upgrade_gate.config import ConfigError, read_token
from upgrade_gate.core import CONTRACT

PROG = "python -m upgrade_gate.conformance"
HOLDER = "upgrade-gate-conformance"
MAX_WAIT = 60.0  # the contract's longest ?wait and ?watch
# The contract's numbers and names, as docs/http-contract.md states them: kept here, not read
# from upgrade_gate.contract, so that the check does not follow the reference's mistakes.
MAX_LEASE = 3600.0
DEFAULT_LEASE = 30.0  # POST /drain without a ttl
WATCH_HEADER = "Upgrade-Gate-Watch"
INSTANCE_HEADER = "Upgrade-Gate-Instance"
SHORT_LEASE = 2.0  # the leases that must run out while a check looks
SHORT_WAIT = 1.0  # the ?wait and ?watch that must last their whole length
MAX_BODY = 1024 * 1024
METRICS = (
    "upgrade_gate_active_operations",
    "upgrade_gate_draining",
    "upgrade_gate_upgradeable",
    "upgrade_gate_long_polls",
    "upgrade_gate_operations_total",
)

NO_FENCE = (
    "POST /drain answers {code}: no fence; serve the fence (POST and DELETE /drain), or run "
    "the hook with gate.fence=false (--no-fence), which cannot keep new work off a waiting pod"
)
ORIGINAL_DEMO = (
    "GET /upgradeable has no 'contract': an app from before upgrade-gate/v1 (the original "
    'demo answered only {"isUpgradeable": bool}); the hook reads it, but cannot fence it'
)
NO_WATCH = (
    '?watch is ignored (no "watched": true): an app from before ?watch; the hook then asks '
    "it again at the end instead of watching it"
)
FENCE_FORBIDDEN = (
    "POST /drain with the token answers 403: the app has no drain token configured "
    "(UPGRADE_GATE_TOKEN or UPGRADE_GATE_TOKEN_FILE), so nobody can fence it"
)
FENCE_UNAUTHORIZED = "POST /drain with the token answers 401: --token-file is not the app's token"


Auth = Literal["own", "none", "wrong"]  # the drain token, none, or a wrong one


class UsageError(ValueError):
    """Bad usage: exit 2 with one line."""


class Fails(Exception):  # noqa: N818 (a verdict, read as one: raise Fails(...))
    """The check does not hold: ``evidence`` says what was asked and answered; ``hint``,
    what the implementation lacks, in words an adopter can act on."""

    def __init__(self, evidence: str, hint: str | None = None) -> None:
        super().__init__(evidence)
        self.evidence, self.hint = evidence, hint


class NotRun(Exception):  # noqa: N818
    """The check could not be judged (a precondition missing): reported, never held."""


# -- HTTP, with the standard library ---------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One exchange: what was asked, what came back and when (monotonic seconds), or why
    nothing did (``error``, ``status`` 0)."""

    request: str
    sent: float
    done: float
    status: int = 0
    headers: Mapping[str, str] = field(default_factory=dict)
    text: str = ""
    error: str | None = None

    @property
    def took(self) -> float:
        return self.done - self.sent

    @property
    def body(self) -> dict[str, Any] | None:
        """The body as a JSON object, or None (not JSON, or not an object)."""
        try:
            value = json.loads(self.text)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def brief(self) -> str:
        if self.error is not None:
            return f"{self.request}: {self.error}"
        text = " ".join(self.text.split())
        if text and self.body is None:
            text = json.dumps(text)  # not JSON: quoted, so that it reads apart from the code
        excerpt = text if len(text) <= 160 else f"{text[:157]}..."
        return f"{self.request}: {self.status} {excerpt or '(empty body)'} after {self.took:.2f} s"


class Endpoint:
    """A base URL; one new connection per request, closed after it."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            raise UsageError(f"not a port number in {url!r}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"not an http:// or https:// URL: {url!r}")
        if parts.query or parts.fragment:
            raise UsageError(f"a base URL takes no query or fragment: {url!r}")
        self.url = url.rstrip("/")
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname, port
        self.prefix = parts.path.rstrip("/")

    def call(
        self,
        method: str,
        path: str,
        *,
        timeout: float,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        on_head: Callable[[int, Mapping[str, str]], None] | None = None,
    ) -> Reply:
        """``timeout`` bounds each step (connect, each read), so a long-poll's must cover its
        wait. ``on_head`` is called with the code and headers before the body is read."""
        connection_class = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        connection = connection_class(self.host, self.port, timeout=timeout)
        sent_headers = {"Accept": "application/json", "User-Agent": HOLDER, **(headers or {})}
        if body is not None:
            sent_headers.setdefault("Content-Type", "application/json")
        request = f"{method} {path}"
        sent = time.monotonic()
        try:
            connection.request(method, self.prefix + path, body=body, headers=sent_headers)
            response = connection.getresponse()
            head = {k.lower(): v for k, v in response.getheaders()}
            if on_head is not None:
                on_head(response.status, head)
            raw = response.read(MAX_BODY)
        except TimeoutError:
            return Reply(request, sent, time.monotonic(), error=f"no answer within {timeout:g} s")
        except ConnectionRefusedError:
            return Reply(request, sent, time.monotonic(), error="connection refused")
        except (OSError, http.client.HTTPException) as exc:
            reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
            return Reply(request, sent, time.monotonic(), error=f"no answer ({reason})")
        finally:
            connection.close()
        return Reply(
            request,
            sent,
            time.monotonic(),
            status=response.status,
            headers=head,
            text=raw.decode("utf-8", "replace"),
        )


@dataclass(frozen=True)
class Work:
    """How to start a unit of work that lasts a given time: ``METHOD PATH [BODY]``, with
    ``{seconds}`` in the path or the body."""

    method: str
    path: str
    body: str | None

    @classmethod
    def parse(cls, text: str) -> Work:
        parts = text.strip().split(None, 2)
        if len(parts) < 2 or not re.fullmatch(r"[A-Z]+", parts[0]) or not parts[1].startswith("/"):
            raise UsageError(
                f"--work must be 'METHOD /PATH [BODY]', as 'POST /operations "
                f'{{"seconds": {{seconds}}}}\', got {text!r}'
            )
        work = cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)
        if "{seconds}" not in work.path and "{seconds}" not in (work.body or ""):
            raise UsageError("--work must say where its length goes: {seconds} in its path or body")
        return work

    def request(self, seconds: float) -> tuple[str, bytes | None]:
        value = f"{seconds:g}"
        path = self.path.replace("{seconds}", urllib.parse.quote(value))
        body = self.body.replace("{seconds}", value).encode() if self.body is not None else None
        return path, body


# -- the run: what every check has at hand ---------------------------------------------------


@dataclass
class Options:
    url: str
    management_url: str | None = None
    token: str | None = None
    work: Work | None = None
    work_seconds: float = 3.0
    long_poll: float = 20.0
    timeout: float = 10.0


class Run:
    """The server under test and the requests the checks make of it."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.app = Endpoint(options.url)
        # The control endpoints (/upgradeable, /drain, probes) on their own port, if given.
        self.control = Endpoint(options.management_url) if options.management_url else self.app
        self.token = options.token
        self.work = options.work
        # When the work started last would end, and the last lease taken would run out: a
        # server whose DELETE /drain does not lift is settled by waiting for it.
        self.work_until = self.lease_until = 0.0

    # requests

    def get(self, path: str) -> Reply:
        return self.control.call("GET", path, timeout=self.options.timeout)

    def status(self) -> Reply:
        return self.get("/upgradeable")

    def long_poll(
        self,
        query: str,
        seconds: float,
        on_head: Callable[[int, Mapping[str, str]], None] | None = None,
    ) -> Reply:
        return self.control.call(
            "GET",
            f"/upgradeable?{query}",
            timeout=self.options.timeout + seconds,
            on_head=on_head,
        )

    def fence(
        self, ttl: float | None = None, *, body: bytes | None = None, auth: Auth = "own"
    ) -> Reply:
        if body is None:
            fields: dict[str, Any] = {"holder": HOLDER}
            if ttl is not None:
                fields["ttl"] = ttl
            body = json.dumps(fields).encode()
        reply = self.control.call(
            "POST", "/drain", timeout=self.options.timeout, body=body, headers=self._auth(auth)
        )
        if reply.status == 200:
            lease = ttl if ttl is not None else DEFAULT_LEASE
            self.lease_until = max(self.lease_until, reply.done + lease)
        return reply

    def lift(self, *, auth: Auth = "own") -> Reply:
        return self.control.call(
            "DELETE",
            f"/drain?holder={HOLDER}",
            timeout=self.options.timeout,
            headers=self._auth(auth),
        )

    def start_work(self, seconds: float) -> Reply:
        if self.work is None:
            raise NotRun("no --work given")
        path, body = self.work.request(seconds)
        reply = self.app.call(self.work.method, path, timeout=self.options.timeout, body=body)
        if reply.error is None and 200 <= reply.status < 300:
            self.work_until = max(self.work_until, reply.done + seconds)
        return reply

    def _auth(self, auth: Auth) -> dict[str, str]:
        if auth == "none" or (auth == "own" and not self.token):
            return {}
        token = self.token if auth == "own" else f"not-{self.token or 'the-token'}"
        return {"Authorization": f"Bearer {token}"}

    # steps many checks share

    def begin_work(self) -> Reply:
        """Start the work (``--work-seconds`` long) on an idle pod, or fail saying why not."""
        started = self.start_work(self.options.work_seconds)
        if started.error is not None or not 200 <= started.status < 300:
            raise Fails(f"the work did not start (--work): {started.brief()}")
        return started

    def running_until(self, started: Reply) -> float:
        """The earliest moment the work can end: the server began it after we asked."""
        return started.sent + self.options.work_seconds

    @property
    def fence_ttl(self) -> float:
        """A lease that outlasts any check, and runs out soon after one."""
        return self.options.long_poll + 2 * self.options.timeout

    def fenced(self, ttl: float | None = None) -> Reply:
        """Fence the pod with the token, or fail saying why it would not be fenced."""
        reply = self.fence(ttl or self.fence_ttl)
        if reply.error is None and reply.status == 200 and reply.body is not None:
            return reply
        raise Fails(f"the fence was not taken: {reply.brief()}", hint=_fence_hint(reply))

    def settle(self) -> str | None:
        """Between checks: our fence lifted, the pod idle and not fenced; else what it
        still is. A fence wrongly taken runs out: the checks ask for short leases where one
        might be, and a fence that DELETE /drain does not lift is waited out."""
        if self.token:
            self.lift()
        deadline = max(time.monotonic(), self.work_until, self.lease_until) + self.options.timeout
        while True:
            reply = self.status()
            body = reply.body
            if reply.error is not None or body is None:
                return None  # the next check says what is wrong
            idle = body.get("upgradeable", body.get("isUpgradeable"))
            if idle is not False and body.get("draining") is not True:
                return None
            if time.monotonic() > deadline:
                return reply.brief()
            time.sleep(0.1)  # nothing to wait on but the server's own answer


# -- what the answers must say ---------------------------------------------------------------


def answered(reply: Reply) -> Reply:
    if reply.error is not None:
        raise Fails(reply.brief())
    return reply


def json_object(reply: Reply, *codes: int) -> dict[str, Any]:
    """The reply's JSON object body, its code one of ``codes``; else it fails."""
    answered(reply)
    if codes and reply.status not in codes:
        expected = " or ".join(str(c) for c in codes)
        raise Fails(f"{reply.brief()}: expected {expected}", hint=_fence_hint(reply))
    body = reply.body
    if body is None:
        raise Fails(f"{reply.brief()}: not a JSON object")
    return body


def json_error(reply: Reply, *codes: int) -> None:
    """An error answer: one of ``codes``, a JSON object with ``error``."""
    body = json_object(reply, *codes)
    if not isinstance(body.get("error"), str) or not body["error"]:
        raise Fails(f"{reply.brief()}: no 'error' in the JSON body")


def shown(body: Mapping[str, Any], name: str) -> str:
    """A field's value as JSON, for evidence; ``missing`` if the body has none."""
    return json.dumps(body[name]) if name in body else "missing"


STATUS_FIELDS = (
    "contract",
    "upgradeable",
    "isUpgradeable",
    "active",
    "running",
    "draining",
    "shutting_down",
    "instance",
)


def status_problems(body: Mapping[str, Any], upgradeable: bool) -> list[str]:
    """What a status body lacks or gets wrong, for a pod known to be idle or busy."""
    missing = [name for name in STATUS_FIELDS if name not in body]
    problems = [f"no {', '.join(repr(name) for name in missing)}"] if missing else []
    if body.get("contract", CONTRACT) != CONTRACT:
        problems.append(f"'contract' is {json.dumps(body['contract'])}, not {CONTRACT!r}")
    for name in ("upgradeable", "isUpgradeable"):
        if name in body and body[name] is not upgradeable:
            problems.append(f"'{name}' is {json.dumps(body[name])}, not {json.dumps(upgradeable)}")
    active, running = body.get("active", 0), body.get("running", [])
    if isinstance(active, bool) or not isinstance(active, int):
        problems.append(f"'active' is {json.dumps(active)}, not a whole number")
    elif "active" in body and (active == 0) is not upgradeable:
        problems.append(f"'active' is {active}")
    if not isinstance(running, list):
        problems.append(f"'running' is {json.dumps(running)}, not a list")
    elif "running" in body and (not running) is not upgradeable:
        problems.append(f"'running' is {json.dumps(running)}")
    for name in ("draining", "shutting_down"):
        if name in body and not isinstance(body[name], bool):
            problems.append(f"'{name}' is {json.dumps(body[name])}, not true or false")
    if "instance" in body and (not isinstance(body["instance"], str) or not body["instance"]):
        problems.append(f"'instance' is {json.dumps(body['instance'])}, not a name")
    return problems


def all_refused(attempts: Sequence[tuple[str, Callable[[], Reply]]], code: int = 400) -> None:
    """Each attempt (its label, and how to make it) answers ``code`` with a JSON 'error';
    else one failure naming every attempt that did not, with the first one's evidence."""
    wrong: list[tuple[str, Fails]] = []
    for label, attempt in attempts:
        try:
            json_error(attempt(), code)
        except Fails as failed:
            wrong.append((label, failed))
    if wrong:
        labels = ", ".join(label for label, _ in wrong)
        first = wrong[0][1]
        raise Fails(f"not refused with {code}: {labels}; the first: {first.evidence}", first.hint)


def _fence_hint(reply: Reply) -> str | None:
    if reply.error is not None or " /drain" not in reply.request:
        return None
    if reply.status in (404, 405):
        return NO_FENCE.format(code=reply.status)
    return None


def _is_draining(run: Run) -> tuple[bool | None, Reply]:
    reply = run.status()
    body = reply.body
    value = body.get("draining") if body is not None else None
    return (value if isinstance(value, bool) else None), reply


def _expect_not_fenced(run: Run, after: str) -> None:
    draining, reply = _is_draining(run)
    if draining is not False:
        raise Fails(f"{after}, the pod is fenced: {reply.brief()}")


def _expect_fenced(run: Run, after: str) -> Reply:
    draining, reply = _is_draining(run)
    if draining is not True:
        raise Fails(f"{after}, the pod is not fenced: {reply.brief()}")
    return reply


# -- the checks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    needs: tuple[str, ...]  # "work", "token"
    run: Callable[[Run], None]

    @property
    def group(self) -> str:
        return self.id.split(".")[0]


CHECKS: list[Check] = []


def check(
    check_id: str, title: str, needs: Sequence[str] = ()
) -> Callable[[Callable[[Run], None]], Callable[[Run], None]]:
    def register(function: Callable[[Run], None]) -> Callable[[Run], None]:
        CHECKS.append(Check(check_id, title, tuple(needs), function))
        return function

    return register


@check("status.idle", "GET /upgradeable, idle: 200 and the whole status body")
def _status_idle(run: Run) -> None:
    reply = run.status()
    body = json_object(reply)
    hint = None if "contract" in body else ORIGINAL_DEMO
    if reply.status != 200:
        raise Fails(f"{reply.brief()}: expected 200", hint=hint)
    if problems := status_problems(body, upgradeable=True):
        raise Fails(f"{'; '.join(problems)}: {reply.brief()}", hint=hint)


@check("status.busy", "GET /upgradeable, busy: 503, Retry-After, the work in 'running'", ["work"])
def _status_busy(run: Run) -> None:
    started = run.begin_work()
    reply = answered(run.status())
    if reply.done > run.running_until(started):
        raise NotRun(f"the answer came after the work could have ended: {reply.brief()}")
    body = json_object(reply)
    problems = status_problems(body, upgradeable=False)
    if reply.status != 503:
        problems.insert(0, f"{reply.status} while busy, not 503")
    elif reply.header("Retry-After") is None:
        problems.append("no Retry-After header")
    work_id = (started.body or {}).get("id")
    running = body.get("running")
    if isinstance(work_id, str) and isinstance(running, list) and work_id not in running:
        problems.append(f"the work's id {work_id!r} is not in 'running'")
    if problems:
        raise Fails(f"{'; '.join(problems)}: {reply.brief()}")


@check("wait.idle", "GET /upgradeable?wait=S, idle: 200 at once")
def _wait_idle(run: Run) -> None:
    seconds = run.options.long_poll
    reply = run.long_poll(f"wait={seconds:g}", seconds)
    body = json_object(reply, 200)
    if body.get("upgradeable") is not True:
        raise Fails(f"'upgradeable' is {shown(body, 'upgradeable')}, not true: {reply.brief()}")
    if reply.took >= seconds:
        raise Fails(f"an idle pod held the long-poll its whole {seconds:g} s: {reply.brief()}")


@check("wait.until-idle", "GET /upgradeable?wait=S, busy: 200 the moment the work ends", ["work"])
def _wait_until_idle(run: Run) -> None:
    seconds = run.options.long_poll
    started = run.begin_work()
    reply = run.long_poll(f"wait={seconds:g}", seconds)
    body = json_object(reply)
    if reply.status != 200 or body.get("upgradeable") is not True:
        raise Fails(f"expected 200 and 'upgradeable': true once the work ended: {reply.brief()}")
    if reply.done < run.running_until(started):
        raise Fails(
            f"answered idle {reply.done - started.sent:.2f} s after a "
            f"{run.options.work_seconds:g} s work began, while it ran: {reply.brief()}"
        )
    if reply.took >= seconds:
        raise Fails(f"answered at the deadline, not when the work ended: {reply.brief()}")


@check("wait.deadline", "GET /upgradeable?wait=S, busy longer: 503 after S s", ["work"])
def _wait_deadline(run: Run) -> None:
    started = run.begin_work()
    reply = run.long_poll(f"wait={SHORT_WAIT:g}", SHORT_WAIT)
    body = json_object(reply)
    if reply.status == 503:
        if reply.took < SHORT_WAIT:
            raise Fails(f"503 before the {SHORT_WAIT:g} s it was asked to wait: {reply.brief()}")
        if body.get("upgradeable") is not False:
            raise Fails(
                f"'upgradeable' is {shown(body, 'upgradeable')}, not false: {reply.brief()}"
            )
        return
    if reply.done >= run.running_until(started):
        raise NotRun(f"the answer came after the work could have ended: {reply.brief()}")
    raise Fails(f"expected 503 while the work ran: {reply.brief()}")


BAD_SECONDS = ("abc", "0", "-1", f"{MAX_WAIT + 1:g}", "nan", "inf", "")


def _bad_long_polls(run: Run, name: str) -> list[tuple[str, Callable[[], Reply]]]:
    def ask(query: str) -> Callable[[], Reply]:
        return lambda: run.long_poll(query, 0.0)

    return [(f"{name}={v}", ask(f"{name}={urllib.parse.quote(v)}")) for v in BAD_SECONDS]


@check("wait.bad", "GET /upgradeable?wait= not a number in 0 < S <= 60: 400 JSON 'error'")
def _wait_bad(run: Run) -> None:
    all_refused(_bad_long_polls(run, "wait"))


@check("watch.unfenced", "GET /upgradeable?watch=S, not fenced: at once, 'watched': true")
def _watch_unfenced(run: Run) -> None:
    seconds = run.options.long_poll
    reply = run.long_poll(f"watch={seconds:g}", seconds)
    body = json_object(reply, 200)
    if body.get("watched") is not True:
        raise Fails(f'no "watched": true: {reply.brief()}', hint=NO_WATCH)
    if reply.header(WATCH_HEADER) is not None:
        raise Fails(f"Upgrade-Gate-Watch on a pod not fenced: {reply.brief()}")
    if reply.took >= seconds:
        raise Fails(f"held its whole {seconds:g} s though not fenced: {reply.brief()}")


class _HeldWatch:
    """A ``?watch`` read in a thread of its own, so that the check can act once its head
    came (lift the fence) and read the body after."""

    def __init__(self, run: Run, seconds: float) -> None:
        self.head = threading.Event()
        self.head_status = 0
        self.head_headers: Mapping[str, str] = {}
        self.reply: Reply | None = None
        self.seconds = seconds
        self._thread = threading.Thread(target=self._watch, args=(run,), daemon=True)
        self._thread.start()

    def _watch(self, run: Run) -> None:
        def on_head(status: int, headers: Mapping[str, str]) -> None:
            self.head_status, self.head_headers = status, headers
            self.head.set()

        try:
            self.reply = run.long_poll(f"watch={self.seconds:g}", self.seconds, on_head)
        finally:
            self.head.set()

    def wait_head(self, timeout: float) -> bool:
        return self.head.wait(timeout) and self.head_status != 0

    def result(self, timeout: float) -> Reply:
        self._thread.join(timeout)
        if self.reply is None:
            raise Fails(f"GET /upgradeable?watch={self.seconds:g}: no answer within {timeout:g} s")
        return self.reply


def _holding_head(watch: _HeldWatch, instance: object) -> None:
    """The head of a held watch: 200, ``Upgrade-Gate-Watch: holding``, the instance."""
    headers = watch.head_headers
    problems = []
    if watch.head_status != 200:
        problems.append(f"its code is {watch.head_status}, not 200")
    if headers.get(WATCH_HEADER.lower()) != "holding":
        problems.append(f"no '{WATCH_HEADER}: holding'")
    if (given := headers.get(INSTANCE_HEADER.lower())) != instance:
        problems.append(f"'{INSTANCE_HEADER}' is {given!r}, not the pod's {instance!r}")
    if problems:
        raise Fails(f"the head of ?watch on a fenced idle pod: {'; '.join(problems)}")


@check(
    "watch.lifted",
    "?watch=S, fenced and idle: its head at once, the body when DELETE /drain lifts it",
    ["token"],
)
def _watch_lifted(run: Run) -> None:
    seconds = run.options.long_poll
    instance = (run.fenced().body or {}).get("instance")
    watch = _HeldWatch(run, seconds)
    if not watch.wait_head(run.options.timeout):
        run.lift()
        reply = watch.result(seconds + run.options.timeout)
        raise Fails(
            f"no head within {run.options.timeout:g} s on a fenced idle pod, which must say "
            f"at once that it holds: {reply.brief()}"
        )
    lifted = answered(run.lift())
    reply = watch.result(seconds + run.options.timeout)
    body = json_object(reply)
    _holding_head(watch, instance)
    if body.get("watched") is not True:
        raise Fails(f'no "watched": true: {reply.brief()}', hint=NO_WATCH)
    if reply.done < lifted.sent:
        raise Fails(f"the body came before the fence was lifted: not held: {reply.brief()}")
    if reply.took >= seconds:
        raise Fails(f"held its whole {seconds:g} s, not ended by the lift: {reply.brief()}")
    if body.get("draining") is not False:
        raise Fails(
            f"'draining' is {shown(body, 'draining')} in the body that came after DELETE "
            f"/drain: not held, or not lifted: {reply.brief()}"
        )


@check("watch.deadline", "?watch=S, fenced and idle: held S s, then the status", ["token"])
def _watch_deadline(run: Run) -> None:
    run.fenced()
    reply = run.long_poll(f"watch={SHORT_WAIT:g}", SHORT_WAIT)
    body = json_object(reply, 200)
    if body.get("watched") is not True:
        raise Fails(f'no "watched": true: {reply.brief()}', hint=NO_WATCH)
    if reply.took < SHORT_WAIT:
        raise Fails(f"answered before its {SHORT_WAIT:g} s on a fenced idle pod: {reply.brief()}")
    if body.get("draining") is not True:
        raise Fails(f"'draining' is {shown(body, 'draining')}, though fenced: {reply.brief()}")


@check("watch.lease", "?watch=S, fenced and idle: the body when the lease runs out", ["token"])
def _watch_lease(run: Run) -> None:
    seconds = run.options.long_poll
    fenced = run.fenced(SHORT_LEASE)
    reply = run.long_poll(f"watch={seconds:g}", seconds)
    body = json_object(reply, 200)
    if body.get("watched") is not True:
        raise Fails(f'no "watched": true: {reply.brief()}', hint=NO_WATCH)
    if reply.done < fenced.sent + SHORT_LEASE:
        raise Fails(f"the body came before the {SHORT_LEASE:g} s lease ran out: {reply.brief()}")
    if reply.took >= seconds:
        raise Fails(f"held its whole {seconds:g} s, not ended by the lease: {reply.brief()}")
    if body.get("draining") is not False:
        raise Fails(
            f"'draining' is {shown(body, 'draining')} once the lease ran out: {reply.brief()}"
        )


@check("watch.bad", "?watch= a bad number, or with ?wait: 400 JSON 'error'")
def _watch_bad(run: Run) -> None:
    both = f"wait={SHORT_WAIT:g}&watch={SHORT_WAIT:g}"
    all_refused([*_bad_long_polls(run, "watch"), (both, lambda: run.long_poll(both, SHORT_WAIT))])


@check(
    "fence.holds",
    "POST /drain: 200, 'draining': true, the pod's state in every answer after",
    ["token"],
)
def _fence_holds(run: Run) -> None:
    before = json_object(run.status())
    reply = run.fence(run.fence_ttl)
    hint = {403: FENCE_FORBIDDEN, 401: FENCE_UNAUTHORIZED}.get(reply.status, _fence_hint(reply))
    answered(reply)
    if reply.status != 200:
        raise Fails(f"{reply.brief()}: expected 200", hint=hint)
    body = json_object(reply)
    if body.get("draining") is not True or body.get("contract") != CONTRACT:
        raise Fails(f"expected the status body with 'draining': true: {reply.brief()}")
    instance = before.get("instance")
    for answer in [reply] + [run.status() for _ in range(3)]:
        seen = answer.body or {}
        if seen.get("draining") is not True or seen.get("instance") != instance:
            raise Fails(
                f"an answer after the fence is not fenced, or from another process than "
                f"{instance!r} (one gate per pod: one process): {answer.brief()}"
            )


@check(
    "fence.refuses",
    "fenced: new work answers 503 'draining', Retry-After, the status fields",
    ["token", "work"],
)
def _fence_refuses(run: Run) -> None:
    run.fenced()
    reply = run.start_work(run.options.work_seconds)
    json_error(reply, 503)
    if (reply.body or {}).get("error") != "draining":
        raise Fails(f"the refusal's 'error' is not \"draining\": {reply.brief()}")
    if reply.header("Retry-After") is None:
        raise Fails(f"no Retry-After header: {reply.brief()}")
    body = reply.body or {}
    missing = [n for n in STATUS_FIELDS if n != "contract" and n not in body]
    if missing or "contract" in body or body.get("draining") is not True:
        raise Fails(
            f"the refusal must carry the status fields, 'draining': true, and no 'contract' "
            f"(only a status answer has it): {reply.brief()}"
        )
    status = json_object(run.status())
    if status.get("active") != 0:
        raise Fails(f"the refused work runs: {json.dumps(status)[:160]}")


@check(
    "fence.running", "fenced: running work goes on, ?wait answers when it ends", ["token", "work"]
)
def _fence_running(run: Run) -> None:
    seconds = run.options.long_poll
    started = run.begin_work()
    run.fenced()
    reply = run.long_poll(f"wait={seconds:g}", seconds)
    body = json_object(reply, 200)
    if reply.done < run.running_until(started):
        raise Fails(
            f"idle {reply.done - started.sent:.2f} s into a {run.options.work_seconds:g} s "
            f"work: did the fence cut it off? {reply.brief()}"
        )
    if body.get("upgradeable") is not True or body.get("draining") is not True:
        raise Fails(f"expected 'upgradeable' and 'draining' both true: {reply.brief()}")


@check("fence.lift", "DELETE /drain: 200, not fenced, new work taken again", ["token"])
def _fence_lift(run: Run) -> None:
    run.fenced()
    reply = run.lift()
    body = json_object(reply, 200)
    if body.get("draining") is not False:
        raise Fails(f"'draining' is {shown(body, 'draining')}, not false: {reply.brief()}")
    _expect_not_fenced(run, "after DELETE /drain")
    if run.work is not None:
        taken = run.start_work(SHORT_WAIT)
        if taken.error is not None or not 200 <= taken.status < 300:
            raise Fails(f"new work after DELETE /drain: {taken.brief()}")


@check("lease.expires", 'POST /drain {"ttl": 2}: fenced 2 s, not less, then not', ["token"])
def _lease_expires(run: Run) -> None:
    fenced = run.fenced(SHORT_LEASE)
    give_up = fenced.sent + SHORT_LEASE + run.options.timeout
    while True:
        draining, reply = _is_draining(run)
        if draining is None:
            raise Fails(f"no 'draining': {reply.brief()}")
        if not draining:
            break
        if reply.done > give_up:
            raise Fails(
                f"still fenced {reply.done - fenced.sent:.1f} s after a {SHORT_LEASE:g} s "
                f"lease: {reply.brief()}"
            )
        time.sleep(0.1)  # the lease's end shows only in the answers
    if reply.done < fenced.sent + SHORT_LEASE:
        raise Fails(
            f"not fenced {reply.done - fenced.sent:.2f} s into a {SHORT_LEASE:g} s lease: "
            f"{reply.brief()}"
        )
    if run.work is not None:
        taken = run.start_work(SHORT_WAIT)
        if taken.error is not None or not 200 <= taken.status < 300:
            raise Fails(f"new work once the lease ran out: {taken.brief()}")


@check("lease.renew", "POST /drain again, before the lease ends: renewed", ["token"])
def _lease_renew(run: Run) -> None:
    first = run.fenced(SHORT_LEASE)
    renewal = run.fence(run.fence_ttl)
    json_object(renewal, 200)
    if renewal.done >= first.sent + SHORT_LEASE:
        raise NotRun(f"the renewal came after the first lease could have ended: {renewal.brief()}")
    time.sleep(max(0.0, first.done + SHORT_LEASE + 0.5 - time.monotonic()))
    _expect_fenced(run, f"after the first {SHORT_LEASE:g} s lease ended")


BAD_BODIES = (b"{not json", b"[30]", b'"fence"', b"\xff\xfe{}")
BAD_TTLS = ('"30"', "0", "-1", f"{MAX_LEASE + 1:g}", "true", "1e999")


def _refused_bodies(run: Run, bodies: Sequence[bytes]) -> None:
    def post(body: bytes) -> Callable[[], Reply]:
        return lambda: run.fence(body=body)

    all_refused([(body.decode("utf-8", "backslashreplace"), post(body)) for body in bodies])
    _expect_not_fenced(run, "after the bad bodies")


@check("input.body", "POST /drain, body not a JSON object: 400 JSON 'error', no fence", ["token"])
def _input_body(run: Run) -> None:
    _refused_bodies(run, BAD_BODIES)


@check("input.ttl", "POST /drain, ttl not a number in 0 < S <= 3600: 400, no fence", ["token"])
def _input_ttl(run: Run) -> None:
    _refused_bodies(run, [f'{{"ttl": {ttl}}}'.encode() for ttl in BAD_TTLS])


def _refused_anonymous(run: Run, auth: Auth) -> None:
    # A lease of 1 s, so that a fence wrongly taken runs out before the next check.
    reply = run.fence(body=b'{"ttl": 1}', auth=auth)
    codes = (401,) if run.token else (401, 403)
    json_error(reply, *codes)
    _expect_not_fenced(run, f"after {reply.request} {reply.status}")


@check("token.missing", "POST /drain without a token: 401 (403: none configured), no fence")
def _token_missing(run: Run) -> None:
    _refused_anonymous(run, "none")


@check("token.wrong", "POST /drain with a wrong token: 401 (403: none configured), no fence")
def _token_wrong(run: Run) -> None:
    _refused_anonymous(run, "wrong")


@check("token.delete", "DELETE /drain without the token: 401, the fence stays", ["token"])
def _token_delete(run: Run) -> None:
    run.fenced()
    json_error(run.lift(auth="none"), 401)
    _expect_fenced(run, "after an anonymous DELETE /drain")


@check("probes.healthz", "GET /healthz: 200")
def _healthz(run: Run) -> None:
    json_object(run.get("/healthz"), 200)


@check("probes.readyz", "GET /readyz, serving: 200")
def _readyz(run: Run) -> None:
    json_object(run.get("/readyz"), 200)


@check("info.version", 'GET /version: 200 {"version"}')
def _version(run: Run) -> None:
    reply = run.get("/version")
    if not isinstance(json_object(reply, 200).get("version"), str):
        raise Fails(f"no 'version': {reply.brief()}")


@check("info.metrics", "GET /metrics: the gate's Prometheus metrics")
def _metrics(run: Run) -> None:
    reply = answered(run.get("/metrics"))
    missing = [name for name in METRICS if not re.search(rf"^{name}\b", reply.text, re.M)]
    if reply.status != 200 or missing:
        raise Fails(f"{reply.status}, without {', '.join(missing) or '-'}: {reply.brief()}")


# -- running them, and the report ------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    check: Check
    outcome: str  # "holds", "fails", "not run"
    detail: str | None = None  # the evidence of a failure, the reason for "not run"
    hint: str | None = None


# Endpoints the sample app serves beside the contract, which the hook never asks: an app may
# serve its probes and metrics elsewhere. Checked when named (--with, or --only).
BESIDE_THE_CONTRACT = ("probes", "info")


def select(
    only: Sequence[str], skip: Sequence[str], with_: Sequence[str] = ()
) -> tuple[list[Check], dict[str, str]]:
    """The checks to run, and those skipped by name (``--only``/``--skip``: ids or groups;
    ``--with``: the groups beside the contract)."""
    known = {c.id for c in CHECKS} | {c.group for c in CHECKS}
    for name in (*only, *skip):
        if name not in known:
            raise UsageError(f"no check or group {name!r} (see --list)")
    for name in with_:
        if name not in BESIDE_THE_CONTRACT:
            raise UsageError(f"--with takes {' or '.join(BESIDE_THE_CONTRACT)}, not {name!r}")

    def named(c: Check, names: Sequence[str]) -> bool:
        return c.id in names or c.group in names

    skipped = {
        c.id: f"beside the contract: the hook never asks it (--with {c.group})"
        for c in CHECKS
        if c.group in BESIDE_THE_CONTRACT and not named(c, (*with_, *only))
    }
    skipped.update({c.id: "skipped (--skip)" for c in CHECKS if named(c, skip)})
    skipped.update({c.id: "skipped (--only)" for c in CHECKS if only and not named(c, only)})
    return list(CHECKS), skipped


def run_checks(
    options: Options,
    only: Sequence[str] = (),
    skip: Sequence[str] = (),
    with_: Sequence[str] = (),
) -> list[Result]:
    checks, skipped = select(only, skip, with_)
    run = Run(options)
    results: list[Result] = []
    unreachable: str | None = None
    try:
        probe = run.status()
        if probe.error is not None:
            unreachable = probe.brief()
        for c in checks:
            if c.id in skipped:
                results.append(Result(c, "not run", skipped[c.id]))
            elif unreachable is not None:
                first = not any(r.outcome == "fails" for r in results)
                if first:
                    results.append(Result(c, "fails", f"the server does not answer: {unreachable}"))
                else:
                    results.append(Result(c, "not run", "the server does not answer"))
            elif "work" in c.needs and options.work is None:
                results.append(Result(c, "not run", "no --work given"))
            elif "token" in c.needs and not options.token:
                results.append(Result(c, "not run", "no drain token (--token-file)"))
            else:
                results.append(_run_one(run, c))
    finally:
        if unreachable is None:
            run.settle()  # nothing left fenced, also on ^C
    return results


def _run_one(run: Run, c: Check) -> Result:
    if (unsettled := run.settle()) is not None:
        return Result(c, "not run", f"the pod is not idle and unfenced: {unsettled}")
    try:
        c.run(run)
    except Fails as failed:
        return Result(c, "fails", failed.evidence, failed.hint)
    except NotRun as reason:
        return Result(c, "not run", str(reason))
    return Result(c, "holds")


def exit_code(results: Sequence[Result]) -> int:
    return 1 if any(r.outcome == "fails" for r in results) else 0


def summary(results: Sequence[Result]) -> str:
    held = sum(r.outcome == "holds" for r in results)
    failed = sum(r.outcome == "fails" for r in results)
    reasons = sorted({r.detail or "" for r in results if r.outcome == "not run"})
    not_run = len(results) - held - failed
    line = f"{len(results)} checks: {held} hold, {failed} fail, {not_run} not run"
    return f"{line} ({'; '.join(reasons)})" if reasons else line


def hints(results: Sequence[Result]) -> list[str]:
    return list(dict.fromkeys(r.hint for r in results if r.hint))


def report_text(options: Options, results: Sequence[Result], out: TextIO) -> None:
    where = options.url + (
        f" (control: {options.management_url})" if options.management_url else ""
    )
    print(f"{CONTRACT} conformance of {where}", file=out)
    width = max(len(r.check.id) for r in results) if results else 0
    for r in results:
        label = {"holds": "holds", "fails": "FAILS", "not run": "not run"}[r.outcome]
        print(f"  {label:<8} {r.check.id:<{width}}  {r.check.title}", file=out)
        if r.outcome == "fails" and r.detail:
            print(f"  {'':<8} {'':<{width}}  -> {r.detail}", file=out)
    print(summary(results), file=out)
    lacks = hints(results)
    if lacks:
        print("What it lacks:", file=out)
        for hint in lacks:
            print(f"  - {hint}", file=out)


def report_json(options: Options, results: Sequence[Result], out: TextIO) -> None:
    document = {
        "contract": CONTRACT,
        "url": options.url,
        "management_url": options.management_url,
        "checks": [
            {
                "id": r.check.id,
                "group": r.check.group,
                "title": r.check.title,
                "result": r.outcome,
                "detail": r.detail,
                "hint": r.hint,
            }
            for r in results
        ],
        "summary": summary(results),
        "lacks": hints(results),
        "exit": exit_code(results),
    }
    json.dump(document, out, indent=2)
    out.write("\n")


# -- the command -----------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message}\n")


def _seconds(low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"must be {low:g} to {high:g} seconds: {text!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description=f"Check that the server at URL keeps the gate's HTTP contract ({CONTRACT}).",
        epilog="Exit 0: every check that ran holds; 1: one fails; 2: bad usage.",
    )
    parser.add_argument("url", nargs="?", help="the app's base URL, as http://10.0.0.5:8080")
    parser.add_argument(
        "--management-url",
        help="the base URL of the control endpoints (/upgradeable, /drain, probes), if the app "
        "serves them on a port of their own (the sample's --management-port)",
    )
    parser.add_argument(
        "--token-file",
        help="a file holding the drain token (else $UPGRADE_GATE_TOKEN_FILE, $UPGRADE_GATE_TOKEN); "
        "without one the fence's checks are not run",
    )
    parser.add_argument(
        "--work",
        help="how to start work on the app, {seconds} long, e.g. "
        "'POST /operations {\"seconds\": {seconds}}'; without it the checks that need a busy "
        "pod are not run",
    )
    parser.add_argument(
        "--work-seconds",
        type=_seconds(2.0, 600.0),
        default=3.0,
        help="how long the work lasts (default 3; at least 2, so a check can ask in between)",
    )
    parser.add_argument(
        "--long-poll",
        type=_seconds(2.0, MAX_WAIT),
        default=20.0,
        help="the S of ?wait=S and ?watch=S that must answer before S (default 20); longer "
        "than --work-seconds",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds(0.1, 600.0),
        default=10.0,
        help="seconds each request may take beyond what it asks to wait (default 10)",
    )
    parser.add_argument("--only", action="append", default=[], help="a check or group to run")
    parser.add_argument("--skip", action="append", default=[], help="a check or group to skip")
    parser.add_argument(
        "--with",
        dest="with_",
        action="append",
        default=[],
        choices=BESIDE_THE_CONTRACT,
        help="also check what the sample app serves beside the contract: probes "
        "(/healthz, /readyz), info (/version, /metrics)",
    )
    parser.add_argument("--json", action="store_true", help="the report as JSON, for CI")
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    return parser


def options_from(args: argparse.Namespace, env: Mapping[str, str]) -> Options:
    """The run's options, or :class:`UsageError` naming what is wrong."""
    if not args.url:
        raise UsageError("the server's URL is required")
    try:
        if args.token_file is not None:
            token = read_token({"UPGRADE_GATE_TOKEN_FILE": args.token_file})
            if token is None:
                raise UsageError(f"--token-file: {args.token_file} is empty")
        else:
            token = read_token(env)
    except ConfigError as exc:
        raise UsageError(str(exc).replace("UPGRADE_GATE_TOKEN_FILE", "--token-file")) from None
    if args.long_poll <= args.work_seconds + 1:
        raise UsageError(
            f"--long-poll ({args.long_poll:g}) must exceed --work-seconds "
            f"({args.work_seconds:g}) by more than 1 s, so that the work ends before it"
        )
    options = Options(
        url=args.url,
        management_url=args.management_url,
        token=token,
        work=Work.parse(args.work) if args.work is not None else None,
        work_seconds=args.work_seconds,
        long_poll=args.long_poll,
        timeout=args.timeout,
    )
    Endpoint(options.url)
    if options.management_url:
        Endpoint(options.management_url)
    return options


def main(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    out: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    if args.list:
        for c in CHECKS:
            needs = f"  (needs {', '.join(c.needs)})" if c.needs else ""
            print(f"{c.id:<16} {c.title}{needs}", file=out)
        return 0
    try:
        options = options_from(args, os.environ if env is None else env)
        select(args.only, args.skip, args.with_)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    try:
        results = run_checks(options, args.only, args.skip, args.with_)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    (report_json if args.json else report_text)(options, results, out)
    return exit_code(results)


if __name__ == "__main__":
    sys.exit(main())
