"""``python -m upgrade_gate.conformance``, against real servers on loopback.

Every gate the project ships (``GATES``) keeps every rule. A stand-in of the contract
written here with ``http.server`` keeps every rule too, so the checks are not the Flask
gate's own habits; broken one rule at a time, it makes the checks of that rule, and only
those, go red. The original demo's app (200 whether busy or not, no ``/drain``) fails, and
the report says what it lacks.
"""

from __future__ import annotations

import io
import json
import math
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest

from e2e.cluster.base import free_port
from e2e.loopback import TOKEN, AppProcess
from tests.unit.conftest import JsonHandler, serving
from tests.unit.test_wsgi_gate import WsgiApp
from upgrade_gate import CONTRACT, conformance, contract

ROOT = Path(__file__).resolve().parents[2]
WORK = 'POST /operations {"seconds": {seconds}}'
# The stand-ins answer at once: the shortest lengths the options allow keep these tests quick.
QUICK = ["--work-seconds", "2", "--long-poll", "4", "--timeout", "3"]


def conform(*args: str) -> tuple[int, dict[str, Any]]:
    """Run the check in this process: its exit code and its --json report."""
    out = io.StringIO()
    code = conformance.main([*args, "--json"], env={}, out=out)
    return code, json.loads(out.getvalue())


def outcomes(report: dict[str, Any]) -> dict[str, str]:
    return {c["id"]: c["result"] for c in report["checks"]}


def failed(report: dict[str, Any]) -> set[str]:
    return {i for i, result in outcomes(report).items() if result == "fails"}


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(f"{TOKEN}\n")
    return path


# -- the gates this project ships: each must keep every rule ---------------------------------


@dataclass(frozen=True)
class Served:
    """A gate serving the contract: its URL, its control endpoints' URL if apart, and how
    to start work on it."""

    url: str
    management_url: str | None = None
    work: str = WORK
    # What it serves beside the contract (the sample app: its probes, /version, /metrics).
    beside: tuple[str, ...] = conformance.BESIDE_THE_CONTRACT

    def where(self) -> list[str]:
        management = ["--management-url", self.management_url] if self.management_url else []
        return [*management, *(arg for group in self.beside for arg in ("--with", group))]

    def args(self, token_file: Path) -> list[str]:
        return [self.url, *self.where(), "--token-file", str(token_file), "--work", self.work]


def _flask_sample(request: pytest.FixtureRequest) -> Iterator[Served]:
    with AppProcess() as app:
        request.node.app_processes = [app]
        yield Served(app.url)


def _flask_sample_management_port(request: pytest.FixtureRequest) -> Iterator[Served]:
    with AppProcess(management=True) as app:
        request.node.app_processes = [app]
        yield Served(app.url, app.management_url)


def _asgi_sample(request: pytest.FixtureRequest) -> Iterator[Served]:
    with AppProcess(server="uvicorn") as app:
        request.node.app_processes = [app]
        yield Served(app.url)


def _asgi_sample_management_port(request: pytest.FixtureRequest) -> Iterator[Served]:
    with AppProcess(server="uvicorn", management=True) as app:
        request.node.app_processes = [app]
        yield Served(app.url, app.management_url)


def _wsgi_gate(request: pytest.FixtureRequest) -> Iterator[Served]:
    """upgrade_gate.wsgi around a plain WSGI app under gunicorn: the contract and nothing
    beside it (its /healthz is its own)."""
    app = WsgiApp()
    try:
        yield Served(app.url, beside=())
    finally:
        app.stop()


# Another gate: a generator that starts it (a real server on loopback), yields its Served,
# and stops it; then one entry here.
GATES: dict[str, Callable[[pytest.FixtureRequest], Iterator[Served]]] = {
    "flask-sample": _flask_sample,
    "flask-sample-management-port": _flask_sample_management_port,
    "asgi-sample-uvicorn": _asgi_sample,
    "asgi-sample-uvicorn-management-port": _asgi_sample_management_port,
    "wsgi-gate-gunicorn": _wsgi_gate,
}


@pytest.fixture(params=sorted(GATES))
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    yield from GATES[request.param](request)


def test_every_gate_of_this_project_keeps_every_rule(served: Served, token_file: Path) -> None:
    code, report = conform(*served.args(token_file))
    expected = {c.id: "not run" if _unasked(c, served) else "holds" for c in conformance.CHECKS}
    assert outcomes(report) == expected, report
    assert (code, report["exit"]) == (0, 0)


def _unasked(check: conformance.Check, served: Served) -> bool:
    """A check of what the sample serves beside the contract, on a gate that does not."""
    return check.group in conformance.BESIDE_THE_CONTRACT and check.group not in served.beside


def test_without_work_or_token_their_checks_are_not_run_never_held(served: Served) -> None:
    code, report = conform(served.url, *served.where())
    results = outcomes(report)
    for c in conformance.CHECKS:
        assert results[c.id] == ("not run" if c.needs or _unasked(c, served) else "holds"), (
            c.id,
            report,
        )
    assert code == 0
    assert "no --work given" in report["summary"]
    assert "no drain token" in report["summary"]


def test_the_check_and_the_reference_state_the_same_numbers_and_names() -> None:
    """The check keeps its own copy of what docs/http-contract.md states (one that read them
    from the implementation it checks would follow its mistakes): the two must agree."""
    assert conformance.MAX_WAIT == contract.MAX_WAIT_SECONDS
    assert conformance.MAX_LEASE == contract.MAX_LEASE_SECONDS
    assert conformance.DEFAULT_LEASE == contract.DEFAULT_LEASE_SECONDS
    assert conformance.WATCH_HEADER == contract.WATCH_HEADER
    assert conformance.INSTANCE_HEADER == contract.INSTANCE_HEADER


# -- a stand-in of the contract, in http.server: broken one rule at a time -------------------


class Pod:
    """The stand-in's state: works that end by the clock, and a lease."""

    def __init__(self, breaks: frozenset[str]) -> None:
        self.breaks = breaks
        self.cond = threading.Condition()
        self.instance = uuid.uuid4().hex
        self.lease_until = 0.0
        self.works: dict[str, float] = {}

    def running(self) -> list[str]:
        now = time.monotonic()
        return [i for i, end in self.works.items() if end > now]

    def draining(self) -> bool:
        return time.monotonic() < self.lease_until

    def status(self) -> dict[str, Any]:
        running, draining = self.running(), self.draining()
        body: dict[str, Any] = {
            "contract": CONTRACT,
            "upgradeable": not running,
            "isUpgradeable": not running,
            "active": len(running),
            "running": running,
            "draining": draining,
            "shutting_down": False,
            "instance": self.instance,
        }
        if "no-contract" in self.breaks:
            del body["contract"]
        if draining:
            body["lease"] = {"holder": "h", "expires_in": self.lease_until - time.monotonic()}
        return body

    def pause(self, until: float) -> None:
        """Sleep on the condition until ``until``, the next work's end or the lease's, or
        until woken (the caller holds it)."""
        now = time.monotonic()
        moments = [m for m in (self.lease_until, *self.works.values()) if m > now]
        self.cond.wait(max(0.01, min([until, *moments]) - now))


def _seconds(text: str, maximum: float) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and 0 < value <= maximum else None


class ContractStandIn(JsonHandler):
    """``upgrade-gate/v1`` as docs/http-contract.md states it, but for the rules ``pod.breaks``
    names; ``POST /operations {"seconds": S}`` is its work."""

    pod: ClassVar[Pod]

    def send(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def fail(self, status: int, error: str) -> None:
        if "html-errors" in self.pod.breaks:
            self.send_response(status)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html><body>error</body></html>")
            return
        self.send(status, {"error": error})

    def status_answer(self, watched: bool = False) -> None:
        body = self.pod.status()
        if watched:
            body["watched"] = True
        busy = not body["upgradeable"]
        if busy and "busy-200" not in self.pod.breaks:
            headers = {} if "no-retry-after" in self.pod.breaks else {"Retry-After": "2"}
            self.send(503, body, headers)
        else:
            self.send(200, body)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        breaks = self.pod.breaks
        if url.path == "/upgradeable":
            self.upgradeable(query)
        elif url.path == "/healthz" and "no-healthz" not in breaks:
            self.send(200, {"status": "ok"})
        elif url.path == "/readyz" and "no-readyz" not in breaks:
            self.send(200, {"status": "ready"})
        elif url.path == "/version" and "no-version" not in breaks:
            self.send(200, {"version": "stand-in"})
        elif url.path == "/metrics" and "no-metrics" not in breaks:
            data = "".join(f"{name} 0\n" for name in conformance.METRICS).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        else:
            self.fail(404, "not_found")

    def upgradeable(self, query: dict[str, str]) -> None:
        pod, breaks = self.pod, self.pod.breaks
        if "watch-ignored" in breaks:
            query.pop("watch", None)
        wait, watch = query.get("wait"), query.get("watch")
        if wait is not None and watch is not None and "watch-with-wait" not in breaks:
            self.fail(400, "wait or watch, not both")
        elif watch is not None:
            seconds = _seconds(watch, 60)
            if seconds is None:
                self.fail(400, "bad watch")
            else:
                self.watch(seconds)
        elif wait is not None and "wait-refused" in breaks:
            self.fail(400, "no long-polls here")
        elif wait is not None and _seconds(wait, 60) is None and "wait-lenient" not in breaks:
            self.fail(400, "bad wait")
        else:
            seconds = _seconds(wait, 60) if wait is not None else None
            if seconds is not None and "wait-ignored" not in breaks:
                until = time.monotonic() + seconds
                with pod.cond:
                    while pod.running() and time.monotonic() < until:
                        pod.pause(until)
            self.status_answer()

    def watch(self, seconds: float) -> None:
        pod, breaks = self.pod, self.pod.breaks
        if not (pod.draining() and not pod.running()):
            self.status_answer(watched=True)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Upgrade-Gate-Watch", "holding")
        if "watch-no-instance" not in breaks:
            self.send_header("Upgrade-Gate-Instance", pod.instance)
        self.end_headers()
        self.wfile.write(b" ")
        self.wfile.flush()
        until = time.monotonic() + seconds
        with pod.cond:
            while "watch-not-held" not in breaks and time.monotonic() < until:
                lease_on = pod.draining() or "watch-ignores-lease" in breaks
                if pod.lease_until == 0 or not lease_on or pod.running():
                    break
                pod.pause(until)
        self.wfile.write(json.dumps({**pod.status(), "watched": True}).encode())

    def authorized(self, *, anonymous: bool) -> bool:
        given = self.headers.get("Authorization", "")
        if anonymous or given == f"Bearer {TOKEN}":
            return True
        if "any-bearer" in self.pod.breaks and given.startswith("Bearer "):
            return True
        self.fail(401, "a valid token is required")
        return False

    def body(self) -> object:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            return json.loads(raw) if raw.strip() else {}
        except ValueError:
            return None

    def do_POST(self) -> None:
        path, body = urlsplit(self.path).path, self.body()
        if path == "/operations":
            self.operation(body)
        elif path != "/drain":
            self.fail(404, "not_found")
        elif self.authorized(anonymous="anonymous-fence" in self.pod.breaks):
            self.drain(body)

    def operation(self, body: object) -> None:
        pod = self.pod
        seconds = body.get("seconds") if isinstance(body, dict) else None
        if not isinstance(seconds, int | float) or not 0 < seconds <= 600:
            self.fail(400, "bad seconds")
        elif pod.draining() and "work-while-fenced" not in pod.breaks:
            fields = {} if "refusal-bare" in pod.breaks else pod.status()
            fields.pop("contract", None)  # only a status answer has it
            self.send(503, {"error": "draining", **fields}, {"Retry-After": "2"})
        else:
            work_id = uuid.uuid4().hex[:12]
            with pod.cond:
                pod.works[work_id] = time.monotonic() + seconds
            self.send(202, {"id": work_id, "seconds": seconds})

    def drain(self, body: object) -> None:
        pod, breaks = self.pod, self.pod.breaks
        if body is None and "bad-body-as-empty" in breaks:
            body = {}
        if not isinstance(body, dict):
            self.fail(400, "body must be a JSON object")
            return
        ttl = body.get("ttl", 30)
        if "ttl-clamped" in breaks:
            ttl = min(max(ttl, 1), 3600) if isinstance(ttl, int | float) else 30
        if isinstance(ttl, bool) or not isinstance(ttl, int | float):
            self.fail(400, "ttl must be a number")
            return
        if not (math.isfinite(ttl) and 0 < ttl <= 3600):
            self.fail(400, "ttl out of range")
            return
        with pod.cond:
            if "fence-cuts-work" in breaks:
                pod.works.clear()
            if "lease-forever" in breaks:
                ttl = 3600
            if "lease-short" in breaks:
                ttl /= 2
            renewing = pod.draining()
            if "drain-no-fence" not in breaks and not (renewing and "no-renew" in breaks):
                pod.lease_until = time.monotonic() + ttl
            pod.cond.notify_all()
        self.send(200, pod.status())

    def do_DELETE(self) -> None:
        pod = self.pod
        if urlsplit(self.path).path != "/drain":
            self.fail(404, "not_found")
        elif self.authorized(anonymous="delete-anonymous" in pod.breaks):
            with pod.cond:
                if "delete-ignored" not in pod.breaks:
                    pod.lease_until = 0.0
                pod.cond.notify_all()
            self.send(200, pod.status())


def stand_in(*breaks: str) -> type[ContractStandIn]:
    return type("StandIn", (ContractStandIn,), {"pod": Pod(frozenset(breaks))})


def standin_args(address: str, token_file: Path, *only: str) -> list[str]:
    selection = [arg for name in only for arg in ("--only", name)]
    url = f"http://{address}"
    beside = [arg for group in conformance.BESIDE_THE_CONTRACT for arg in ("--with", group)]
    return [url, "--token-file", str(token_file), "--work", WORK, *QUICK, *beside, *selection]


def test_what_the_sample_serves_beside_the_contract_is_checked_only_when_asked(
    token_file: Path,
) -> None:
    """Probes, /version and /metrics are the sample app's, not the contract's: an app that
    serves them elsewhere, or not at all, keeps the contract."""
    with serving(stand_in()) as address:
        argv = [f"http://{address}", "--token-file", str(token_file), "--work", WORK, *QUICK]
        code, report = conform(*argv)
    beside = [c for c in report["checks"] if c["group"] in conformance.BESIDE_THE_CONTRACT]
    assert beside
    for check in beside:
        assert check["result"] == "not run", check
        assert "beside the contract" in check["detail"], check
    rest = [c["result"] for c in report["checks"] if c not in beside]
    assert set(rest) == {"holds"}, report
    assert code == 0


def test_the_stand_in_keeps_every_rule(token_file: Path) -> None:
    """The checks hold on a second implementation, not only on the Flask gate."""
    with serving(stand_in()) as address:
        code, report = conform(*standin_args(address, token_file))
    assert outcomes(report) == dict.fromkeys(outcomes(report), "holds"), report
    assert code == 0


# Each rule broken alone, and the checks that must go red for it (all others of the groups
# run must hold). Every check is in at least one row: a check that cannot go red is a defect.
BROKEN: list[tuple[str, set[str]]] = [
    ("no-contract", {"status.idle", "status.busy"}),
    ("busy-200", {"status.busy", "wait.deadline"}),
    ("no-retry-after", {"status.busy"}),
    ("wait-refused", {"wait.idle", "wait.until-idle", "wait.deadline"}),
    ("wait-ignored", {"wait.until-idle", "wait.deadline"}),
    ("wait-lenient", {"wait.bad"}),
    ("html-errors", {"wait.bad"}),
    (
        "watch-ignored",
        {"watch.unfenced", "watch.lifted", "watch.deadline", "watch.lease", "watch.bad"},
    ),
    ("watch-no-instance", {"watch.lifted"}),
    ("watch-not-held", {"watch.lifted", "watch.deadline", "watch.lease"}),
    ("watch-ignores-lease", {"watch.lease"}),
    ("watch-with-wait", {"watch.bad"}),
    ("drain-no-fence", {"fence.holds", "fence.refuses", "fence.running"}),
    ("work-while-fenced", {"fence.refuses"}),
    ("refusal-bare", {"fence.refuses"}),
    ("fence-cuts-work", {"fence.running"}),
    ("delete-ignored", {"fence.lift"}),
    ("lease-forever", {"lease.expires"}),
    ("lease-short", {"lease.expires"}),
    ("no-renew", {"lease.renew"}),
    ("bad-body-as-empty", {"input.body"}),
    ("ttl-clamped", {"input.ttl"}),
    ("anonymous-fence", {"token.missing", "token.wrong"}),
    ("any-bearer", {"token.wrong"}),
    ("delete-anonymous", {"token.delete"}),
    ("no-healthz", {"probes.healthz"}),
    ("no-readyz", {"probes.readyz"}),
    ("no-version", {"info.version"}),
    ("no-metrics", {"info.metrics"}),
]


# A DELETE /drain that does not lift leaves each check's fence until its lease runs out, and
# the checks after it wait for that: only its own check runs.
SCOPE = {"delete-ignored": ["fence.lift"]}


def test_every_check_goes_red_for_some_broken_rule() -> None:
    red = set().union(*(checks for _, checks in BROKEN))
    assert {c.id for c in conformance.CHECKS} - red == set()


@pytest.mark.parametrize(("broken", "red"), BROKEN, ids=[b for b, _ in BROKEN])
def test_a_broken_rule_fails_its_checks_and_only_those(
    token_file: Path, broken: str, red: set[str]
) -> None:
    scope = SCOPE.get(broken) or sorted({check_id.split(".")[0] for check_id in red})
    with serving(stand_in(broken)) as address:
        code, report = conform(*standin_args(address, token_file, *scope))
    ran = {i: r for i, r in outcomes(report).items() if i in scope or i.split(".")[0] in scope}
    assert ran == {i: "fails" if i in red else "holds" for i in ran}, report
    assert code == 1
    for c in report["checks"]:
        if c["result"] == "fails":
            assert c["detail"], c  # a failure carries its evidence


def test_a_failure_carries_the_request_the_answer_and_its_timing(token_file: Path) -> None:
    with serving(stand_in("busy-200")) as address:
        _, report = conform(*standin_args(address, token_file, "status.busy"))
    (row,) = [c for c in report["checks"] if c["id"] == "status.busy"]
    assert row["detail"].startswith("200 while busy, not 503: GET /upgradeable: 200 {"), row
    assert '"upgradeable": false' in row["detail"]
    assert row["detail"].endswith(" s")


# -- the original demo: a Go/gin app without the fence ---------------------------------------


class GinDemo(JsonHandler):
    """The original demo's app: ``GET /upgradeable`` answers ``{"isUpgradeable": bool}`` with
    200 busy or not; ``POST /start?seconds=S`` makes it busy; no ``/drain``; gin's own 404."""

    busy_until: ClassVar[float] = 0.0

    def not_found(self) -> None:
        self.send_response(404)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"404 page not found")

    def do_GET(self) -> None:
        if urlsplit(self.path).path != "/upgradeable":
            self.not_found()
        else:
            self.answer(200, {"isUpgradeable": time.monotonic() >= type(self).busy_until})

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/start":
            self.not_found()
        else:
            type(self).busy_until = time.monotonic() + float(parse_qs(url.query)["seconds"][0])
            self.answer(200, {"message": "started"})

    def do_DELETE(self) -> None:
        self.not_found()


def test_the_original_demo_fails_and_the_report_names_what_it_lacks(token_file: Path) -> None:
    demo = type("Demo", (GinDemo,), {"busy_until": 0.0})
    with serving(demo) as address:
        out = io.StringIO()
        work = ["--work", "POST /start?seconds={seconds}"]
        argv = [f"http://{address}", "--token-file", str(token_file), *work, *QUICK]
        code = conformance.main(argv, env={}, out=out)
    text = out.getvalue()
    assert code == 1, text
    assert "FAILS    status.busy" in text
    assert "200 while busy, not 503" in text
    assert "POST /drain answers 404: no fence; serve the fence" in text
    assert "or run the hook with gate.fence=false" in text
    assert "an app from before upgrade-gate/v1" in text
    assert "What it lacks:" in text


# -- servers that hang, refuse, or answer what is not JSON -----------------------------------


def test_a_server_that_never_answers_fails_within_the_timeout() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:  # accepts, never answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        code, report = conform(url, "--timeout", "0.5")
    results = outcomes(report)
    assert code == 1
    assert results.pop("status.idle") == "fails"
    assert set(results.values()) == {"not run"}
    assert "no answer within 0.5 s" in report["checks"][0]["detail"]


def test_nothing_listening_fails_with_connection_refused() -> None:
    code, report = conform(f"http://127.0.0.1:{free_port()}")
    assert code == 1
    assert "connection refused" in report["checks"][0]["detail"]


class NotJson(JsonHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<html>all good</html>")

    do_POST = do_DELETE = do_GET


def test_an_answer_that_is_not_json_is_evidence_not_a_crash(token_file: Path) -> None:
    with serving(NotJson) as address:
        code, report = conform(f"http://{address}", "--token-file", str(token_file), *QUICK)
    rows = {c["id"]: c for c in report["checks"]}
    assert code == 1
    assert rows["status.idle"]["result"] == "fails"
    assert '200 "<html>all good</html>"' in rows["status.idle"]["detail"]
    assert "not a JSON object" in rows["status.idle"]["detail"]


# -- the command -----------------------------------------------------------------------------


def _command(*args: str) -> subprocess.CompletedProcess[str]:
    """The module run by a Python that sees the standard library and app/ only (-I -S: no
    site-packages), as after ``pip install helm-upgrade-gate`` with no extra."""
    bootstrap = (
        f"import runpy, sys; sys.path.insert(0, {str(ROOT / 'app')!r}); "
        "sys.argv[0] = 'conformance'; "
        "runpy.run_module('upgrade_gate.conformance', run_name='__main__')"
    )
    return subprocess.run(
        [sys.executable, "-I", "-S", "-c", bootstrap, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_command_runs_on_the_standard_library_alone(token_file: Path) -> None:
    with serving(stand_in()) as address:
        done = _command(*standin_args(address, token_file, "status", "fence"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "holds    fence.refuses" in done.stdout
    assert done.stdout.splitlines()[-1].startswith(f"{len(conformance.CHECKS)} checks: ")


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ((), "the server's URL is required"),
        (("ftp://pod",), "not an http:// or https:// URL: 'ftp://pod'"),
        (("http://pod:99999",), "not a port number in 'http://pod:99999'"),
        (("http://pod", "--work", "sleep 5"), "--work must be 'METHOD /PATH [BODY]'"),
        (("http://pod", "--work", "POST /operations"), "{seconds} in its path or body"),
        (("http://pod", "--only", "nope"), "no check or group 'nope'"),
        (("http://pod", "--token-file", "/nonexistent"), "--token-file: no such file"),
        (("http://pod", "--work-seconds", "1"), "must be 2 to 600 seconds: '1'"),
        (("http://pod", "--long-poll", "3"), "--long-poll (3) must exceed --work-seconds (3)"),
    ],
)
def test_bad_usage_exits_2_with_one_line(args: tuple[str, ...], reason: str) -> None:
    done = _command(*args)
    assert done.returncode == 2, done
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("python -m upgrade_gate.conformance: error: ")
    assert reason in done.stderr
