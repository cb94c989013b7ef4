"""The hook program against real app processes on loopback (static mode)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.hook import Exit
from app.testing import TOKEN, AppProcess, eventually
from tests.unit.conftest import AppFactory


class Hook:
    def __init__(self, *args: str, token: str | None = TOKEN) -> None:
        env = {**os.environ, "UPGRADE_GATE_TOKEN": token or ""}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", "wait", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output = ""
        self.ended_at: datetime | None = None

    def wait(self, timeout: float = 60) -> int:
        self.output, _ = self.proc.communicate(timeout=timeout)
        self.ended_at = datetime.now(UTC)
        return self.proc.returncode

    @property
    def last_line(self) -> str:
        return self.output.strip().splitlines()[-1]


@pytest.fixture
def hooks() -> Iterator[list[Hook]]:
    started: list[Hook] = []
    yield started
    for hook in started:
        if hook.proc.poll() is None:
            hook.proc.kill()
            hook.proc.wait()


def run_hook(hooks: list[Hook], *args: str, token: str | None = TOKEN) -> Hook:
    hook = Hook(*args, token=token)
    hooks.append(hook)
    return hook


def endpoints(*apps: AppProcess) -> str:
    return ",".join(app.endpoint for app in apps)


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
    hook = run_hook(hooks, "--endpoints", endpoints(busy, idle), "--timeout", "1.5")
    assert hook.wait() == Exit.NOT_IDLE
    assert "deadline of 1.5s reached, fences released" in hook.last_line
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
    first.start_operation(1.0)
    listing = tmp_path / "pods"
    listing.write_text(f"{first.endpoint}\n")
    hook = run_hook(hooks, "--endpoints-file", str(listing), "--timeout", "30")
    eventually(lambda: first.status()["draining"], what="fenced")
    late_op = late.start_operation(2.5)
    listing.write_text(f"{first.endpoint}\n{late.endpoint}\n")
    assert hook.wait() == Exit.OK, hook.output
    assert hook.ended_at is not None
    assert finished_at(late, late_op) <= hook.ended_at
    assert "all 2 pod(s) idle" in hook.last_line


def test_the_lease_is_renewed_while_the_wait_goes_on(
    make_app: AppFactory, hooks: list[Hook]
) -> None:
    app = make_app()
    op_id = app.start_operation(3.0)
    hook = run_hook(
        hooks, "--endpoints", endpoints(app), "--lease", "1", "--poll", "0.5", "--timeout", "30"
    )
    eventually(lambda: app.status()["draining"], what="fenced")
    # Three times the lease passes while the operation runs; work stays fenced.
    while app.operation(op_id)["state"] == "running":
        assert app.post("/start", json={"seconds": 0.1}).status_code in (503,)
    assert hook.wait() == Exit.OK, hook.output


def test_a_pod_that_refuses_the_fence_blocks_the_upgrade(
    make_app: AppFactory, hooks: list[Hook]
) -> None:
    app = make_app(UPGRADE_GATE_TOKEN="another-token")
    hook = run_hook(hooks, "--endpoints", endpoints(app), "--timeout", "1.5")
    assert hook.wait() == Exit.NOT_IDLE
    assert "refused the fence: HTTP 401" in hook.last_line


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
    ],
)
def test_bad_arguments_exit_2_with_a_reason(args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app", "wait", *args], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == Exit.USAGE
    assert "error:" in result.stderr
    assert "Traceback" not in result.stderr
