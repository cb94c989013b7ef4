"""The hook program against real app processes on loopback (static mode)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import pytest

from e2e.cluster.base import free_port
from e2e.cluster.wait import eventually
from e2e.loopback import TOKEN, AppProcess
from tests.unit.conftest import (
    AppFactory,
    Hook,
    JsonHandler,
    run_hook,
    serving,
    write_kubeconfig,
)
from upgrade_gate.hook import Exit


def endpoints(*apps: AppProcess) -> str:
    return ",".join(app.endpoint for app in apps)


def _seconds_left(record: dict[str, Any], seconds: float) -> float:
    """How long the running operation ``record`` of ``seconds`` still runs."""
    started = datetime.fromisoformat(record["started_at"].replace("Z", "+00:00"))
    return max(0.0, (started + timedelta(seconds=seconds) - datetime.now(UTC)).total_seconds())


def finished_at(app: AppProcess, op_id: str) -> datetime:
    record = app.operation(op_id)
    assert record["state"] == "succeeded"
    return datetime.fromisoformat(record["finished_at"].replace("Z", "+00:00"))


def test_waits_for_the_longest_operation_across_pods(
    make_app: AppFactory, hooks: list[Hook]
) -> None:
    a, b, c = make_app(), make_app(), make_app()
    short, long = a.start_operation(0.5), b.start_operation(2.0)
    hook = run_hook(hooks, "--endpoints", endpoints(a, b, c), "--timeout", "30")

    eventually(lambda: all(app.status()["draining"] for app in (a, b, c)), what="all fenced")
    assert c.post("/start", json={"seconds": 1}).status_code == 503

    assert hook.wait() == Exit.OK, hook.output
    assert hook.ended_at is not None
    assert finished_at(a, short) < finished_at(b, long) <= hook.ended_at
    assert "all 3 pod(s) idle" in hook.last_line
    # The old pods stay fenced after success, with the long "hold" lease
    # (120 s by default) that covers Helm's rollout, not the short one.
    assert all(app.status()["lease"]["expires_in"] > 60 for app in (a, b, c))


def test_no_pods_passes_at_once(tmp_path: Path, hooks: list[Hook]) -> None:
    hook = run_hook(hooks, "--endpoints-file", str(tmp_path / "none"), "--timeout", "30")
    assert hook.wait() == Exit.OK
    assert "no pods found" in hook.last_line


def test_deadline_releases_the_fences_and_names_the_busy_pod(
    make_app: AppFactory, hooks: list[Hook]
) -> None:
    busy, idle = make_app(), make_app()
    op_id = busy.start_operation(60)
    hook = run_hook(hooks, "--endpoints", endpoints(busy, idle), "--timeout", "5")
    assert hook.wait() == Exit.NOT_IDLE
    assert "deadline of 5s reached, fences released" in hook.last_line
    assert busy.endpoint in hook.last_line
    assert op_id in hook.last_line
    assert idle.endpoint not in hook.last_line
    # The old pods take work again right away, and the running work goes on.
    assert busy.post("/start", json={"seconds": 0.1}).status_code == 202
    assert idle.post("/start", json={"seconds": 0.1}).status_code == 202
    assert busy.operation(op_id)["state"] == "running"


def test_sigterm_releases_the_fences(make_app: AppFactory, hooks: list[Hook]) -> None:
    app = make_app()
    app.start_operation(60)
    hook = run_hook(hooks, "--endpoints", endpoints(app), "--timeout", "120")
    eventually(lambda: app.status()["draining"], what="fenced")
    hook.proc.send_signal(signal.SIGTERM)
    assert hook.wait() == Exit.TERMINATED
    assert "received SIGTERM: fences released" in hook.last_line
    assert not app.status()["draining"]
    assert app.post("/start", json={"seconds": 0.1}).status_code == 202


def test_an_unreachable_pod_never_counts_as_idle(make_app: AppFactory, hooks: list[Hook]) -> None:
    healthy, doomed = make_app(), make_app()
    doomed.start_operation(60)
    hook = run_hook(hooks, "--endpoints", endpoints(healthy, doomed), "--timeout", "3")
    eventually(lambda: doomed.status()["draining"], what="fenced")
    doomed.kill()
    assert hook.wait() == Exit.NOT_IDLE
    assert f"{doomed.endpoint} (unreachable: connection refused)" in hook.last_line
    assert "retrying with backoff" in hook.output
    assert not healthy.status()["draining"]


def test_a_pod_that_goes_away_stops_counting(
    make_app: AppFactory, hooks: list[Hook], tmp_path: Path
) -> None:
    staying, leaving = make_app(), make_app()
    leaving.start_operation(60)
    listing = tmp_path / "pods"
    listing.write_text(f"{staying.endpoint}\n{leaving.endpoint}\n")
    hook = run_hook(hooks, "--endpoints-file", str(listing), "--timeout", "30")
    eventually(lambda: leaving.status()["draining"], what="fenced")
    listing.write_text(f"# {leaving.endpoint} was deleted\n{staying.endpoint}\n")
    assert hook.wait() == Exit.OK, hook.output
    assert f"pod {leaving.endpoint} is gone" in hook.output
    assert "all 1 pod(s) idle" in hook.last_line


def test_a_pod_that_appears_during_the_wait_is_gated_too(
    make_app: AppFactory, hooks: list[Hook], tmp_path: Path
) -> None:
    first, late = make_app(), make_app()
    first.start_operation(4.0)  # outlasts the test's steps on a loaded machine
    listing = tmp_path / "pods"
    listing.write_text(f"{first.endpoint}\n")
    hook = run_hook(hooks, "--endpoints-file", str(listing), "--timeout", "30")
    eventually(lambda: first.status()["draining"], what="fenced")
    late_op = late.start_operation(6.0)
    listing.write_text(f"{first.endpoint}\n{late.endpoint}\n")
    assert hook.wait() == Exit.OK, hook.output
    assert hook.ended_at is not None
    assert finished_at(late, late_op) <= hook.ended_at
    assert "all 2 pod(s) idle" in hook.last_line


def test_the_lease_is_renewed_while_the_wait_goes_on(
    make_app: AppFactory, hooks: list[Hook]
) -> None:
    app = make_app()
    op_id = app.start_operation(9.0)
    hook = run_hook(
        hooks, "--endpoints", endpoints(app), "--lease", "3", "--poll", "0.5", "--timeout", "60"
    )
    eventually(lambda: app.status()["draining"], what="fenced")
    # Three times the lease passes while the operation runs; work stays fenced. Renewed every
    # second, a 3 s lease lapses only if the hook stalls for two: not a loaded machine's pace.
    while app.operation(op_id)["state"] == "running":
        assert app.post("/start", json={"seconds": 0.1}).status_code in (503,)
    assert hook.wait() == Exit.OK, hook.output


def test_a_pod_that_refuses_the_fence_blocks_the_upgrade(
    make_app: AppFactory, hooks: list[Hook]
) -> None:
    app = make_app(UPGRADE_GATE_TOKEN="another-token")
    hook = run_hook(hooks, "--endpoints", endpoints(app), "--timeout", "120")
    assert hook.wait(timeout=180) == Exit.NOT_IDLE, hook.output
    assert "POST /drain answers 401: the app's drain token is not the hook's" in hook.last_line


def test_without_fencing_only_idleness_counts(make_app: AppFactory, hooks: list[Hook]) -> None:
    app = make_app(UPGRADE_GATE_TOKEN="")
    op_id = app.start_operation(0.5)
    hook = run_hook(
        hooks, "--endpoints", endpoints(app), "--no-fence", "--timeout", "30", token=None
    )
    assert hook.wait() == Exit.OK, hook.output
    assert hook.ended_at is not None
    assert finished_at(app, op_id) <= hook.ended_at


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--endpoints", "nohost"],
        ["--endpoints", "a:1", "--timeout", "-5"],
        ["--endpoints", "a:1", "--timeout", "soon"],
        ["--endpoints", "a:1", "--selector", "app=x"],
        ["--endpoints", "a:1", "--lease", "1", "--poll", "10"],
        ["--endpoints", "a:1", "--poll", "61", "--lease", "120"],
        ["--endpoints", "a:1", "--poll", "0.001"],
        ["--endpoints", "a:1", "--replicas", "two"],
        ["--selector", "app=x", "--kubeconfig", "/nonexistent/kubeconfig"],
    ],
)
def test_bad_arguments_exit_2_with_a_reason(args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "upgrade_gate.hook", "wait", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == Exit.USAGE, result.stderr
    assert "error" in result.stderr.lower()
    assert "Traceback" not in result.stderr


# -- ordinary events during the wait (issue 11) --------------------------------


def test_a_restarted_pod_is_gated_again_and_waited_for(
    make_app: AppFactory, hooks: list[Hook]
) -> None:
    restarted, busy = make_app(), make_app()
    holding = busy.start_operation(10.0)  # keeps the hook waiting, however slow the machine
    hook = run_hook(hooks, "--endpoints", endpoints(restarted, busy), "--timeout", "40")
    eventually(lambda: restarted.status()["draining"], what="fenced")
    # The container restarts: same address, a new process without our fence,
    # which takes a new operation unless the hook has fenced it already (its
    # watch breaks with the old process, so it often has).
    restarted.kill()
    restarted.start()
    record = busy.operation(holding)
    assert record["state"] == "running", "the premise: the hook is still waiting on busy"
    # The late operation ends after the one that holds the hook, so only a hook
    # that gated the new process waits for it.
    left = _seconds_left(record, 10.0)
    late = restarted.post("/operations", json={"seconds": left + 3.0})

    assert hook.wait() == Exit.OK, hook.output
    assert hook.ended_at is not None
    if late.status_code == 202:
        assert finished_at(restarted, late.json()["id"]) <= hook.ended_at
    else:
        assert late.json()["error"] == "draining", late.text
    assert f"pod {restarted.endpoint}: restarted (new app process)" in hook.output, hook.output
    # The new process carries the fence too when the hook lets the upgrade go.
    assert restarted.status()["draining"]


def test_a_restarted_idle_pod_is_fenced_again_before_success(
    make_app: AppFactory, hooks: list[Hook]
) -> None:
    restarted, busy = make_app(), make_app()
    busy.start_operation(1.5)
    hook = run_hook(hooks, "--endpoints", endpoints(restarted, busy), "--timeout", "30")
    eventually(lambda: restarted.status()["draining"], what="fenced")
    restarted.kill()
    restarted.start()
    assert hook.wait() == Exit.OK, hook.output
    assert restarted.status()["draining"], "the new process took work unfenced after success"
    assert restarted.post("/start", json={"seconds": 0.1}).status_code == 503


class _OriginalDemo(BaseHTTPRequestHandler):
    """The original demo's app: always 200 {"isUpgradeable": false}, ignoring ?wait."""

    requests = 0

    def do_GET(self) -> None:
        type(self).requests += 1
        body = json.dumps({"isUpgradeable": False}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_pod_that_answers_busy_at_once_is_not_hammered(hooks: list[Hook]) -> None:
    with serving(_OriginalDemo) as endpoint:
        hook = run_hook(hooks, "--endpoints", endpoint, "--no-fence", "--timeout", "3", token=None)
        assert hook.wait() == Exit.NOT_IDLE, hook.output
    # Paced at MIN_POLL_INTERVAL (0.5 s): about 6 in 3 s, not hundreds.
    assert _OriginalDemo.requests <= 12, _OriginalDemo.requests


def test_the_deadline_releases_a_fence_whose_renewal_was_refused(
    make_app: AppFactory, hooks: list[Hook]
) -> None:
    a, b = make_app(), make_app()
    # Both take the first fence (30 s), then refuse the final round's hold
    # lease (over the app's 3600 s limit: HTTP 400): they still hold our fence.
    hook = run_hook(hooks, "--endpoints", endpoints(a, b), "--hold", "4000", "--timeout", "2")
    assert hook.wait() == Exit.NOT_IDLE, hook.output
    assert "refused the fence (HTTP 400" in hook.output
    assert hook.output.count("final round: not idle") <= 8, "final rounds not paced"
    assert "fences released" in hook.last_line
    for app in (a, b):
        assert not app.status()["draining"], hook.output
        assert app.post("/start", json={"seconds": 0.1}).status_code == 202


def test_an_endpoints_file_caught_mid_rewrite_is_not_taken_for_no_pods(
    make_app: AppFactory, hooks: list[Hook], tmp_path: Path
) -> None:
    app = make_app()
    op_id = app.start_operation(5.0)
    listing = tmp_path / "pods"
    listing.write_text(f"{app.endpoint}\n")
    hook = run_hook(hooks, "--endpoints-file", str(listing), "--timeout", "30")
    eventually(lambda: app.status()["draining"], what="fenced")
    # A writer that truncates, then writes slowly: the empty file lasts well under the hook's
    # 1 s discovery interval (even if a loaded machine stretches the sleep), so the listing
    # after one that saw it sees the half-written line, which must not count as "no pods".
    for content, seconds in (("", 0.3), (app.endpoint[:5], 1.5)) * 3:
        listing.write_text(content)
        time.sleep(seconds)  # the writer's pace is what this test is about
        assert hook.proc.poll() is None, hook.output
    listing.write_text(f"{app.endpoint}\n")
    assert hook.wait() == Exit.OK, hook.output
    assert hook.ended_at is not None
    assert finished_at(app, op_id) <= hook.ended_at


def test_a_token_that_cannot_be_sent_is_a_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "upgrade_gate.hook", "wait", "--endpoints", "a:1"],
        env={**os.environ, "UPGRADE_GATE_TOKEN": "tökén✓"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == Exit.USAGE
    assert "UPGRADE_GATE_TOKEN" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_release_lifts_the_fences_of_the_pods_that_stay(make_app: AppFactory) -> None:
    staying, gone = make_app(), make_app()
    staying.drain(120)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "upgrade_gate.hook",
            "release",
            "--endpoints",
            endpoints(staying, gone),
        ],
        env={**os.environ, "UPGRADE_GATE_TOKEN": TOKEN},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert not staying.status()["draining"]
    assert staying.post("/start", json={"seconds": 0.1}).status_code == 202


def _kubeconfig_of_an_absent_api_server(path: Path) -> Path:
    """A kubeconfig whose API server is a loopback port nothing listens on."""
    return write_kubeconfig(path, f"http://127.0.0.1:{free_port()}", namespace="ns")


def test_release_does_not_fail_a_rollback_when_the_api_server_is_away(tmp_path: Path) -> None:
    """The post-rollback hook retries a listing that fails for a while, then ends 0.

    A failed post-rollback hook marks the rollback failed, yet nothing is lost
    by giving up: the fences it would lift run out with their lease.
    """
    kubeconfig = _kubeconfig_of_an_absent_api_server(tmp_path / "kubeconfig")
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "upgrade_gate.hook",
            "release",
            "--selector",
            "app=x",
            "--timeout",
            "2",
            "--kubeconfig",
            str(kubeconfig),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    took = time.monotonic() - started
    assert result.returncode == Exit.OK, result.stderr
    lines = result.stderr.strip().splitlines()
    assert "Kubernetes API unreachable" in lines[0], lines
    assert "retrying" in lines[0], lines
    assert "run out with their lease" in lines[-1], lines
    assert len(lines) == 2, lines  # one line per state change, not one per try
    assert took >= 2, took  # it did retry for its whole deadline


def test_a_fence_lifted_from_a_watched_pod_is_placed_again_and_its_work_waited_for(
    make_app: AppFactory, hooks: list[Hook]
) -> None:
    """A ready pod is not asked again in the final round while its watch is open:
    the watch must report a fence lifted by someone else, and the pod be gated again."""
    watched, busy = make_app(), make_app()
    holding = busy.start_operation(8.0)
    hook = run_hook(
        hooks, "--endpoints", endpoints(watched, busy), "--timeout", "40", "--lease", "30"
    )
    eventually(
        lambda: watched.status()["draining"] and watched.long_polls() == 1,
        timeout=20,
        what="the hook watching the ready pod",
    )
    record = busy.operation(holding)
    assert record["state"] == "running", "the premise: the hook is still waiting on busy"
    left = _seconds_left(record, 8.0)
    # Someone lifts the fence (an operator's DELETE /drain) and work arrives at once.
    assert watched.delete("/drain", headers={"Authorization": f"Bearer {TOKEN}"}).ok
    late = watched.post("/operations", json={"seconds": left + 3.0})

    assert hook.wait() == Exit.OK, hook.output
    assert hook.ended_at is not None
    if late.status_code == 202:
        assert finished_at(watched, late.json()["id"]) <= hook.ended_at
    else:  # the hook fenced it again first: the promise too
        assert late.json()["error"] == "draining", late.text
    assert f"pod {watched.endpoint}: busy" in hook.output, hook.output
    assert watched.status()["draining"]


class _ApiServerBack(JsonHandler):
    """An API server that answers 503 to its first three listings, as one starting up does,
    then lists no pods."""

    calls = 0

    def do_GET(self) -> None:
        type(self).calls += 1
        if type(self).calls <= 3:
            self.send_error(503, "starting")
            return
        self.answer(200, {"kind": "List", "items": []})


def test_the_hook_says_when_the_pods_are_listed_again(tmp_path: Path, hooks: list[Hook]) -> None:
    """After "retrying", a listing that works again is said too: while the API server was
    away the hook's log said nothing more, and a reader could not tell when it came back."""
    with serving(_ApiServerBack) as endpoint:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://{endpoint}")
        hook = run_hook(
            hooks, "--selector", "app=x", "--kubeconfig", str(kubeconfig), "--timeout", "60"
        )
        assert hook.wait() == Exit.OK, hook.output
    lines = [line for line in hook.output.splitlines() if "listing" in line or "listed" in line]
    assert len(lines) == 2, hook.output
    assert "listing pods failed: 503" in lines[0]
    assert "retrying" in lines[0]
    assert "pods listed again, after: listing pods failed: 503" in lines[1]


class _ApiServerRestarting(JsonHandler):
    """An API server that lists one pod, then, restarting, denies the hook three times as a
    kube-apiserver does until its RBAC caches are filled, then lists the pod again."""

    pod: ClassVar[dict[str, Any]] = {}
    calls = 0

    def do_GET(self) -> None:
        cls = type(self)
        if "/pods" not in self.path:  # ReplicaSets: none
            return self.answer(200, {"kind": "List", "items": []})
        cls.calls += 1
        if 2 <= cls.calls <= 4:
            return self.answer(
                403,
                {
                    "kind": "Status",
                    "status": "Failure",
                    "reason": "Forbidden",
                    "message": 'pods is forbidden: User "system:serviceaccount:n:hook" cannot '
                    'list resource "pods" in API group "" in the namespace "n"',
                    "code": 403,
                },
            )
        return self.answer(200, {"kind": "List", "items": [cls.pod]})


def test_a_denial_after_the_pods_were_listed_is_an_api_server_starting_not_rbac(
    make_app: AppFactory, hooks: list[Hook], tmp_path: Path
) -> None:
    """A restarted kube-apiserver denies every request until its RBAC caches are filled
    (seen on kind, API server restarted mid-wait). The hook took that for missing RBAC and
    failed the upgrade at once, exit 3, saying a verb was missing that it had just used."""
    app = make_app()
    op_id = app.start_operation(3)
    _ApiServerRestarting.calls = 0
    _ApiServerRestarting.pod = {
        "metadata": {"name": "p", "uid": "uid-p", "labels": {"app": "x"}},
        "spec": {
            "containers": [{"name": "app", "ports": [{"name": "http", "containerPort": app.port}]}]
        },
        "status": {"phase": "Running", "podIP": "127.0.0.1"},
    }
    with serving(_ApiServerRestarting) as endpoint:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://{endpoint}")
        hook = run_hook(
            hooks, "--selector", "app=x", "--port", "http", "--kubeconfig", str(kubeconfig),
            "--timeout", "60",
        )  # fmt: skip
        assert hook.wait() == Exit.OK, hook.output
    assert app.operation(op_id)["state"] == "succeeded"
    assert "forbidden" in hook.output
    assert "retrying" in hook.output
    assert "pods listed again" in hook.output


def test_a_denial_of_the_first_listing_is_still_missing_rbac(
    hooks: list[Hook], tmp_path: Path
) -> None:
    _ApiServerRestarting.calls = 1  # the next listing is denied
    with serving(_ApiServerRestarting) as endpoint:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://{endpoint}")
        hook = run_hook(
            hooks, "--selector", "app=x", "--kubeconfig", str(kubeconfig), "--timeout", "60"
        )
        assert hook.wait() == Exit.FORBIDDEN, hook.output
    assert "needs verb 'list' on resource 'pods'" in hook.output
