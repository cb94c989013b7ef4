"""An app that lacks a part of the contract is told at once, not waited for: real
``upgrade-gate-hook`` processes against real app processes and small stand-ins on loopback.

The stand-in of the original demo's app (Go, gin) answers ``GET /upgradeable`` with 200
``{"isUpgradeable": bool}`` whatever the query, and gin's plain-text 404 to everything else:
it has no ``/drain``. The hook's deadline here is long (120 s, the chart's is 180 s) so that
the verdict, not the deadline, is what ends a wait: the last line says which.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from e2e.cluster.wait import eventually
from e2e.loopback import TOKEN
from tests.unit.conftest import AppFactory, Hook, JsonHandler, run_hook, serving
from upgrade_gate.hook import Exit
from upgrade_gate.hook.wait import MISSING_FOR

DEADLINE = "120"


class _Demo(JsonHandler):
    """The original demo's app. ``missing``: what its router answers to any other request
    (gin's 404, or a 405 from a router that knows the path but not the method); with
    ``gate`` False, ``GET /upgradeable`` is missing too. Requests of a method in ``held``
    are answered only once ``go`` is set."""

    upgradeable: ClassVar[bool] = False
    missing: ClassVar[int] = 404
    gate: ClassVar[bool] = True
    held: ClassVar[set[str]] = set()
    go: ClassVar[threading.Event] = threading.Event()
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).requests.append(f"GET {self.path}")
        self._hold("GET")
        if type(self).gate and self.path.split("?")[0] == "/upgradeable":
            self.answer(200, {"isUpgradeable": type(self).upgradeable})
        else:
            self._missing()

    def do_POST(self) -> None:
        type(self).requests.append(f"POST {self.path}")
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._hold("POST")
        self._missing()

    def do_DELETE(self) -> None:
        type(self).requests.append(f"DELETE {self.path}")
        self._missing()

    def _hold(self, method: str) -> None:
        if method in type(self).held:
            type(self).go.wait(60)

    def _missing(self) -> None:
        status = type(self).missing
        self.answer_text(
            status, b"404 page not found" if status == 404 else b"405 method not allowed"
        )


@pytest.fixture
def demo() -> Iterator[str]:
    _Demo.upgradeable, _Demo.missing, _Demo.gate = False, 404, True
    _Demo.held, _Demo.go, _Demo.requests = set(), threading.Event(), []
    with serving(_Demo) as endpoint:
        yield endpoint
        _Demo.go.set()  # the handlers end before the server does


@pytest.mark.parametrize("missing", [404, 405])
def test_an_app_without_drain_fails_the_fenced_wait_at_once_and_releases_the_others(
    missing: int, demo: str, make_app: AppFactory, hooks: list[Hook]
) -> None:
    _Demo.missing, _Demo.held = missing, {"POST"}
    other = make_app()
    op_id = other.start_operation(600)  # busy: only the verdict can end the wait early
    hook = run_hook(hooks, "--endpoints", f"{demo},{other.endpoint}", "--timeout", DEADLINE)
    # The demo's first fence is answered only once the other pod holds our fence.
    eventually(lambda: other.status()["draining"], timeout=30, what="the other pod fenced")
    _Demo.go.set()

    assert hook.wait(timeout=180) == Exit.NOT_IDLE, hook.output
    line = hook.last_line
    assert "deadline" not in line, line
    assert f"pod {demo}: POST /drain answers {missing}: the app serves no fence;" in line, line
    assert "give it the upgrade gate's /drain" in line, line
    assert "chart: gate.fence=false; CLI: --no-fence" in line, line
    assert "fences released" in line, line
    assert "Traceback" not in hook.output, hook.output
    # The fence the hook held on the real app is lifted; its work goes on, new work is taken.
    assert other.status()["draining"] is False
    assert other.operation(op_id)["state"] == "running"
    assert other.post("/start", json={"seconds": 0.1}).status_code == 202


def test_an_app_without_drain_is_waited_for_without_fencing(demo: str, hooks: list[Hook]) -> None:
    hook = run_hook(hooks, "--endpoints", demo, "--no-fence", "--timeout", DEADLINE, token=None)
    eventually(lambda: len(_Demo.requests) >= 2, timeout=30, what="the hook polling the demo")
    assert hook.proc.poll() is None, hook.output  # busy: still waiting
    _Demo.upgradeable = True
    assert hook.wait(timeout=180) == Exit.OK, hook.output
    assert "all 1 pod(s) idle" in hook.last_line, hook.last_line
    assert not [r for r in _Demo.requests if not r.startswith("GET /upgradeable")], _Demo.requests


@pytest.mark.parametrize("fence", [True, False], ids=["fence", "no-fence"])
@pytest.mark.parametrize("missing", [404, 405])
def test_an_app_without_upgradeable_fails_the_wait_at_once(
    fence: bool, missing: int, demo: str, hooks: list[Hook]
) -> None:
    _Demo.gate, _Demo.missing = False, missing
    mode = [] if fence else ["--no-fence"]
    hook = run_hook(hooks, "--endpoints", demo, *mode, "--timeout", DEADLINE)
    assert hook.wait(timeout=180) == Exit.NOT_IDLE, hook.output
    line = hook.last_line
    assert "deadline" not in line, line
    assert (
        f"pod {demo}: GET /upgradeable answers {missing}: "
        "the app serves no upgrade gate at /upgradeable;" in line
    ), line
    assert "gate.enabled=false" in line, line


# -- an app that refuses the hook's token: its own 401 or 403, for as long as it runs ---------


@pytest.mark.parametrize(
    ("app_token", "hook_token", "said"),
    [
        (
            "",
            TOKEN,
            "POST /drain answers 403 (drain is disabled: no token is configured (set "
            "UPGRADE_GATE_TOKEN)): the app has no drain token, so it refuses every fence;",
        ),
        (
            "another-token",
            TOKEN,
            "POST /drain answers 401: the app's drain token is not the hook's",
        ),
        (TOKEN, None, "POST /drain answers 401: the hook has no drain token and the app has one;"),
    ],
    ids=["app-without-token", "another-token", "hook-without-token"],
)
def test_an_app_refusing_the_hooks_token_fails_the_wait_at_once_and_releases_the_others(
    app_token: str, hook_token: str | None, said: str, make_app: AppFactory, hooks: list[Hook]
) -> None:
    """The app reads its token once, at start: until the pod restarts it refuses every fence,
    and waiting out the deadline (180 s in the chart) only delays the same failure."""
    refusing = make_app(UPGRADE_GATE_TOKEN=app_token)
    pods = [refusing.endpoint]
    if hook_token:  # a pod the hook can fence, busy: only the verdict can end the wait early
        other = make_app()
        op_id = other.start_operation(600)
        pods.append(other.endpoint)
    hook = run_hook(hooks, "--endpoints", ",".join(pods), "--timeout", DEADLINE, token=hook_token)
    assert hook.wait(timeout=180) == Exit.NOT_IDLE, hook.output
    line = hook.last_line
    assert "deadline" not in line, line
    assert f"pod {refusing.endpoint}: {said}" in line, line
    assert "chart: gate.fence=false; CLI: --no-fence" in line, line
    assert "Traceback" not in hook.output, hook.output
    if hook_token:
        # The fence the hook held is lifted again; the work goes on.
        assert other.status()["draining"] is False
        assert other.operation(op_id)["state"] == "running"


class _Mesh(JsonHandler):
    """A proxy in the pod's place that denies ``POST /drain`` with its own page (a mesh's
    403, no JSON), until the test lets the app answer: a gate app, idle."""

    app_up: ClassVar[threading.Event] = threading.Event()
    # Set by a denial that comes longer after the first than an app's own refusals may last
    # before they end the wait (MISSING_FOR, 2 s).
    denied_long: ClassVar[threading.Event] = threading.Event()
    first_denial: ClassVar[float | None] = None

    def do_GET(self) -> None:
        self.answer(200, {"upgradeable": True, "draining": type(self).app_up.is_set()})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if type(self).app_up.is_set():
            self.answer(200, {"upgradeable": True, "draining": True, "running": []})
            return
        cls = type(self)
        now = time.monotonic()
        cls.first_denial = cls.first_denial or now
        if now - cls.first_denial > 2 * MISSING_FOR:
            cls.denied_long.set()
        self.answer_text(403, b"RBAC: access denied")

    def do_DELETE(self) -> None:
        self.answer(200, {"upgradeable": True, "draining": False, "running": []})


def test_a_403_that_is_not_the_apps_is_retried(hooks: list[Hook]) -> None:
    _Mesh.app_up, _Mesh.denied_long, _Mesh.first_denial = threading.Event(), threading.Event(), None
    with serving(_Mesh) as endpoint:
        hook = run_hook(hooks, "--endpoints", endpoint, "--timeout", DEADLINE)
        # Denied for longer than the app's own refusal may last: still asking, no verdict.
        assert _Mesh.denied_long.wait(60), hook.output
        assert hook.proc.poll() is None
        _Mesh.app_up.set()
        assert hook.wait(timeout=180) == Exit.OK, hook.output
    assert "all 1 pod(s) idle" in hook.last_line, hook.last_line


# -- what is not an app lacking a part: today's behaviour ------------------------------------


class _Older(JsonHandler):
    """A gate app older than ``?wait`` and ``?watch``: it takes the fence, ignores the query
    and answers its status at once, busy for its first ``busy_for`` status answers."""

    busy_for: ClassVar[int] = 4
    asked: ClassVar[list[str]] = []
    draining: ClassVar[bool] = False

    def do_GET(self) -> None:
        cls = type(self)
        if self.path.split("?")[0] != "/upgradeable":
            self.answer(404, {"error": "not_found"})
            return
        cls.asked.append(self.path)
        idle = len(cls.asked) > cls.busy_for
        body = {"upgradeable": idle, "draining": cls.draining, "running": [] if idle else ["op"]}
        self.answer(200 if idle else 503, body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).draining = True
        idle = len(type(self).asked) > type(self).busy_for
        self.answer(200, {"upgradeable": idle, "draining": True, "running": [] if idle else ["op"]})

    def do_DELETE(self) -> None:
        type(self).draining = False
        self.answer(200, {"upgradeable": True, "draining": False, "running": []})


def test_an_app_older_than_wait_is_polled_as_before(hooks: list[Hook]) -> None:
    _Older.asked, _Older.draining = [], False
    with serving(_Older) as endpoint:
        hook = run_hook(hooks, "--endpoints", endpoint, "--timeout", DEADLINE)
        assert hook.wait(timeout=180) == Exit.OK, hook.output
    assert "all 1 pod(s) idle" in hook.last_line, hook.last_line
    busy = [path for path in _Older.asked[: _Older.busy_for] if "wait=" in path]
    assert len(busy) == _Older.busy_for, _Older.asked  # asked with ?wait, answered at once


class _Restarting(JsonHandler):
    """A pod whose address answers 404 to ``POST /drain`` and a plain-text 503 to
    ``GET /upgradeable`` (a proxy in front while the app restarts: not the app), until the
    test lets the app answer: a real gate app, idle."""

    app_up: ClassVar[threading.Event] = threading.Event()
    asked_status: ClassVar[threading.Event] = threading.Event()

    def do_GET(self) -> None:
        if type(self).app_up.is_set():
            self.answer(200, {"upgradeable": True, "draining": True, "running": []})
            return
        type(self).asked_status.set()
        self.answer_text(503, b"upstream connect error")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if type(self).app_up.is_set():
            self.answer(200, {"upgradeable": True, "draining": True, "running": []})
            return
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_DELETE(self) -> None:
        self.answer(200, {"upgradeable": True, "draining": False, "running": []})


def test_a_404_from_what_is_not_the_app_is_retried(hooks: list[Hook]) -> None:
    _Restarting.app_up, _Restarting.asked_status = threading.Event(), threading.Event()
    with serving(_Restarting) as endpoint:
        hook = run_hook(hooks, "--endpoints", endpoint, "--timeout", DEADLINE)
        # The hook looked past the 404 (asked what serves there) and found no app yet.
        assert _Restarting.asked_status.wait(60), hook.output
        _Restarting.app_up.set()
        assert hook.wait(timeout=180) == Exit.OK, hook.output
    assert "all 1 pod(s) idle" in hook.last_line, hook.last_line


def test_a_404_from_an_address_the_pod_left_is_no_verdict(
    demo: str, make_app: AppFactory, hooks: list[Hook], tmp_path: Path
) -> None:
    """The pod moved away; what answers at its old address (another app, no gate) has no say
    once the listing no longer names it there. Its answer to the hook's "what serves here?"
    comes only after the listing moved the pod."""
    _Demo.gate, _Demo.held = False, {"GET"}
    app = make_app()
    listed = tmp_path / "endpoints"
    listed.write_text(f"{demo}\n")
    hook = run_hook(hooks, "--endpoints-file", str(listed), "--timeout", DEADLINE)
    eventually(
        lambda: any(r.startswith("GET") for r in _Demo.requests),
        timeout=60,
        what="the hook asking what serves at the old address",
    )
    scratch = tmp_path / "endpoints.new"
    scratch.write_text(f"{app.endpoint}\n")
    scratch.rename(listed)
    eventually(lambda: app.status()["draining"], timeout=30, what="the new address gated")
    _Demo.go.set()
    assert hook.wait(timeout=180) == Exit.OK, hook.output
    assert "all 1 pod(s) idle" in hook.last_line, hook.last_line


# -- release, the post-rollback hook -----------------------------------------------------


def test_release_says_an_app_without_drain_has_no_fence_to_lift(
    demo: str, make_app: AppFactory
) -> None:
    fenced = make_app()
    fenced.drain(120)
    done = subprocess.run(
        [
            *(sys.executable, "-m", "upgrade_gate.hook", "release"),
            *("--endpoints", f"{demo},{fenced.endpoint}"),
        ],
        env={**os.environ, "UPGRADE_GATE_TOKEN": TOKEN},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # A rollback is never failed for it: such an app holds no fence, so none is left on it.
    assert done.returncode == Exit.OK, done.stderr
    assert f"pod {demo}: DELETE /drain answers 404: no fence is served there" in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "fences lifted on 1 of 2 pod(s) that stay" in last, last
    assert "1 serve no fence, none to lift" in last, last
    assert fenced.status()["draining"] is False
