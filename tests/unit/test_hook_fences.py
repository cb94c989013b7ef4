"""The hook releases what it fenced whatever happens, and refuses input it cannot read before
it fences anything: real ``upgrade-gate-hook wait`` processes against real app processes (and,
where an app cannot be made to misbehave, a small HTTP server) on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import pytest

from e2e.cluster.wait import eventually
from e2e.loopback import TOKEN, AppProcess
from tests.unit.conftest import AppFactory, Hook, run_hook, serving, write_kubeconfig
from upgrade_gate.hook import Exit
from upgrade_gate.hook.pods import parse_endpoint


def wait_usage(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "upgrade_gate.hook", "wait", "--timeout", "20", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def assert_one_line_usage(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == Exit.USAGE, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize(
    "endpoints",
    [
        ",,,",
        " , ",
        "bad host:80",
        "host\r\n:80",
        "a@b:80",
        "h?x:80",
        "h#x:80",
        "-h:80",
        "[::1%a b]:80",
        "[1::%@127.0.0.1:9]:80",
        "[::1%a?b#c]:80",
        "127.1:80",
        "0x7f.1:80",
        "017700000001:80",
        "10.0.0.1.:80",
    ],
    ids=[
        "commas",
        "blanks",
        "space",
        "crlf",
        "at",
        "query",
        "fragment",
        "dash",
        "zone-space",
        "zone-at",
        "zone-query",
        "short-ipv4",
        "hex-ipv4",
        "octal-ipv4",
        "ipv4-with-dot",
    ],
)
def test_endpoints_that_name_no_pod_exit_2_in_one_line(endpoints: str) -> None:
    assert_one_line_usage(wait_usage(f"--endpoints={endpoints}"))


@pytest.mark.parametrize("host", ["my_service", "pod-1.app_svc.ns.svc", "localhost.", "x0"])
def test_names_a_resolver_takes_are_endpoints(host: str) -> None:
    assert parse_endpoint(f"{host}:80").host == host


def test_an_endpoint_with_a_path_does_not_gate_another_address(app: AppProcess) -> None:
    # 127.0.0.1:IDLE/:BUSY once gated IDLE and exited 0 while BUSY was busy.
    app.start_operation(60)
    done = wait_usage("--endpoints", f"127.0.0.1:{app.port}/:{app.port}")
    assert_one_line_usage(done)
    assert not app.status()["draining"]


@pytest.mark.parametrize("form", ["directory", "list", "token", "broken-yaml"])
def test_a_kubeconfig_that_cannot_work_exits_2_in_one_line(tmp_path: Path, form: str) -> None:
    path = tmp_path / "kubeconfig"
    if form == "directory":
        path.mkdir()
    elif form == "list":
        path.write_text("- a\n- b\n")
    elif form == "broken-yaml":
        path.write_text("clusters: [\n - {name: c\n")
    else:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                    "users": [{"name": "u", "user": {"token": "tök€n"}}],
                    "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                    "current-context": "x",
                }
            )
        )
    assert_one_line_usage(wait_usage("--selector", "app=x", "--kubeconfig", str(path)))


def test_an_endpoints_file_that_stops_being_text_releases_the_fence(
    make_app: AppFactory,
    hooks: list[Hook],
    tmp_path: Path,
) -> None:
    app = make_app()
    app.start_operation(60)
    listed = tmp_path / "endpoints"
    listed.write_text(app.endpoint + "\n")
    hook = run_hook(hooks, "--endpoints-file", str(listed), "--timeout", "120")
    eventually(lambda: app.status()["draining"], what="fenced")
    scratch = tmp_path / "endpoints.new"
    scratch.write_bytes(b"\xff\xfe" + app.endpoint.encode("utf-16-le"))
    scratch.rename(listed)
    assert hook.wait() == Exit.USAGE, hook.output
    assert "Traceback" not in hook.output, hook.output
    assert "not UTF-8" in hook.last_line, hook.last_line
    assert "fences released" in hook.last_line, hook.last_line
    assert not app.status()["draining"]
    assert app.post("/start", json={"seconds": 0.1}).status_code == 202


class _SlowFence(BaseHTTPRequestHandler):
    """Busy; takes a fence but answers it only after the hook stopped waiting for the answer,
    as a pod under load does. Records every DELETE /drain."""

    released: ClassVar[list[str]] = []
    fenced: ClassVar[threading.Event] = threading.Event()

    def do_GET(self) -> None:
        self._json({"isUpgradeable": False, "running": ["op-1"], "draining": False})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).fenced.set()
        time.sleep(8)  # past the hook's 5 s for a fence's answer
        self._json({"isUpgradeable": False, "running": ["op-1"], "draining": True})

    def do_DELETE(self) -> None:
        type(self).released.append(self.path)
        self._json({"isUpgradeable": False, "running": ["op-1"], "draining": False})

    def _json(self, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the hook gave up on this answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def slow_fence() -> Iterator[str]:
    _SlowFence.released, _SlowFence.fenced = [], threading.Event()
    with serving(_SlowFence) as endpoint:
        yield endpoint


def test_a_fence_whose_answer_never_came_is_released(
    slow_fence: str,
    hooks: list[Hook],
) -> None:
    # The pod has the fence; the hook has no answer, now or ever (5 s for it, 8 s to come).
    hook = run_hook(hooks, "--endpoints", slow_fence, "--timeout", "120")
    assert _SlowFence.fenced.wait(30), "the hook fences"
    hook.proc.terminate()
    assert hook.wait() == Exit.TERMINATED, hook.output
    assert _SlowFence.released, f"no DELETE /drain reached the pod:\n{hook.output}"
    assert "fences released" in hook.last_line, hook.last_line


def test_a_token_with_a_trailing_newline_is_the_token(
    make_app: AppFactory,
    hooks: list[Hook],
) -> None:
    # A Secret made with --from-file keeps the file's last newline, in the app's env and the
    # hook's alike: the app answered 401 to every fence, and the hook exited 2.
    app = make_app(UPGRADE_GATE_TOKEN=TOKEN + "\n")
    assert app.drain(1, token=TOKEN).status_code == 200
    hook = run_hook(hooks, "--endpoints", app.endpoint, "--timeout", "60", token=TOKEN + "\n")
    assert hook.wait() == Exit.OK, hook.output
    assert app.status()["draining"], "the hook's hold lease is in place"


# -- an API server that never finishes its answer ------------------------------------------


class _Trickle(BaseHTTPRequestHandler):
    """Answers a listing one byte at a time, each well inside the hook's read timeout, for as
    long as the test lets it: a read timeout alone never ends such a listing."""

    asked: ClassVar[threading.Event] = threading.Event()
    stop: ClassVar[threading.Event] = threading.Event()

    def do_GET(self) -> None:
        type(self).asked.set()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            while not type(self).stop.wait(0.5):
                self.wfile.write(b" ")
                self.wfile.flush()
        except OSError:
            pass  # the hook's process ended

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def trickling_kubeconfig(tmp_path: Path) -> Iterator[Path]:
    _Trickle.asked, _Trickle.stop = threading.Event(), threading.Event()
    path = tmp_path / "kubeconfig"
    with serving(_Trickle) as endpoint:
        yield write_kubeconfig(path, f"http://{endpoint}")
        _Trickle.stop.set()  # the handlers end before the server does


def test_the_deadline_holds_while_the_api_server_trickles(
    trickling_kubeconfig: Path, hooks: list[Hook]
) -> None:
    hook = run_hook(
        hooks, "--selector", "app=x", "--kubeconfig", str(trickling_kubeconfig), "--timeout", "2"
    )
    assert hook.wait(timeout=90) == Exit.NOT_IDLE, hook.output
    assert "deadline of 2s reached" in hook.last_line, hook.last_line
    assert "still unanswered" in hook.last_line, hook.last_line
    assert not _Trickle.stop.is_set(), "the API server was still answering when the hook ended"


def test_sigterm_holds_while_the_api_server_trickles(
    trickling_kubeconfig: Path, hooks: list[Hook]
) -> None:
    hook = run_hook(
        hooks, "--selector", "app=x", "--kubeconfig", str(trickling_kubeconfig), "--timeout", "600"
    )
    assert _Trickle.asked.wait(30), "the hook lists the pods"
    hook.proc.terminate()
    assert hook.wait(timeout=90) == Exit.TERMINATED, hook.output
    assert "received SIGTERM" in hook.last_line, hook.last_line


# -- a floor on every pause -------------------------------------------------------------------


class _Eager(BaseHTTPRequestHandler):
    """A pod that answers everything at once: fenced and idle, and a ``?watch`` that ends the
    moment it starts (or, with ``retry_after``, a fence refused with a tiny Retry-After).
    Counts the requests it gets."""

    requests: ClassVar[int] = 0
    retry_after: ClassVar[str | None] = None

    def do_GET(self) -> None:
        type(self).requests += 1
        self._json(200, {"upgradeable": True, "draining": True, "running": [], "watched": True})

    def do_POST(self) -> None:
        type(self).requests += 1
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if type(self).retry_after is not None:
            self._json(503, {"error": "busy", "upgradeable": False}, type(self).retry_after)
        else:
            self._json(200, {"upgradeable": True, "draining": True, "running": []})

    def do_DELETE(self) -> None:
        self._json(200, {"upgradeable": True, "draining": False, "running": []})

    def _json(self, status: int, body: dict[str, object], retry_after: str | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def eager() -> Iterator[str]:
    _Eager.requests, _Eager.retry_after = 0, None
    with serving(_Eager) as endpoint:
        yield endpoint


# Paced at MIN_POLL_INTERVAL or the backoff (0.2 s and more), 3 s is some tens of requests at
# most; unpaced it was hundreds to thousands. A loaded machine makes fewer, never more.
MOST_IN_3S = 40


@pytest.mark.parametrize("pod", ["watch-at-once", "tiny-retry-after"])
def test_a_pod_that_answers_at_once_is_not_hammered(
    pod: str, eager: str, make_app: AppFactory, hooks: list[Hook]
) -> None:
    if pod == "tiny-retry-after":
        _Eager.retry_after = "0.001"
    busy = make_app()
    busy.start_operation(60)  # keeps the wait going while the eager pod is asked
    hook = run_hook(hooks, "--endpoints", f"{eager},{busy.endpoint}", "--timeout", "3")
    assert hook.wait() == Exit.NOT_IDLE, hook.output
    assert _Eager.requests <= MOST_IN_3S, (_Eager.requests, hook.output[-3000:])


def test_a_pod_that_left_the_listing_is_released_when_the_wait_fails(
    make_app: AppFactory, hooks: list[Hook], tmp_path: Path
) -> None:
    left, stays = make_app(), make_app()
    for app in (left, stays):
        app.start_operation(60)
    listed = tmp_path / "endpoints"
    listed.write_text(f"{left.endpoint}\n{stays.endpoint}\n")
    hook = run_hook(hooks, "--endpoints-file", str(listed), "--timeout", "8")
    eventually(lambda: left.status()["draining"] and stays.status()["draining"], what="fenced")
    scratch = tmp_path / "endpoints.new"
    scratch.write_text(f"{stays.endpoint}\n")
    scratch.rename(listed)
    assert hook.wait() == Exit.NOT_IDLE, hook.output
    assert "is gone: no longer counted" in hook.output, hook.output
    assert "fences released" in hook.last_line, hook.last_line
    assert not left.status()["draining"], "the fence of the pod that left is lifted too"
    assert not stays.status()["draining"]


def test_release_holds_its_timeout_while_the_api_server_trickles(
    trickling_kubeconfig: Path,
) -> None:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "upgrade_gate.hook", "release", "--selector", "app=x"),
            *("--kubeconfig", str(trickling_kubeconfig), "--timeout", "2"),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    # A rollback is not failed for an API server away: the fences run out with their lease.
    assert done.returncode == Exit.OK, done.stderr
    assert "could not list the pods within 2s" in done.stderr, done.stderr
    assert not _Trickle.stop.is_set(), "the API server was still answering when release ended"
