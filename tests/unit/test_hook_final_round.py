"""The hook's last steps: the final round, then one more listing that must show the same pods.

A pod whose ``?watch`` is open is not asked in the final round: the app answers the watch the
moment it stops being fenced and idle. But that answer may come while the confirming listing
is on its way, and then the pod is no longer ready when the listing returns. Here a stand-in
API server lists one stand-in pod; on the confirming listing it lifts the pod's fence (the
watch ends, as for a fence run out or an app restarted) and answers only once the hook, having
read the watch's end, fences the pod again. The hook must not say "upgrade may proceed" before
that fence is in place.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

from tests.unit.conftest import Hook, JsonHandler, run_hook, serving, write_kubeconfig
from upgrade_gate.hook import Exit


class _Pod(JsonHandler):
    """A gate app, idle. Its first watch holds until ``lift`` is set, then ends with the fence
    gone; the fence that comes after is answered only once ``answer_fence`` is set."""

    lift: ClassVar[threading.Event] = threading.Event()
    lifted: ClassVar[bool] = False
    refence_asked: ClassVar[threading.Event] = threading.Event()
    answer_fence: ClassVar[threading.Event] = threading.Event()
    watching: ClassVar[threading.Event] = threading.Event()
    draining: ClassVar[bool] = False
    # Whether the hook was still waiting when the fence after the lift was answered.
    refenced_while_waiting: ClassVar[bool | None] = None
    hook: ClassVar[Hook | None] = None

    def _status(self, **extra: Any) -> dict[str, Any]:
        cls = type(self)
        return {
            "contract": "upgrade-gate/v1",
            "upgradeable": True,
            "draining": cls.draining,
            "running": [],
            "active": 0,
            "instance": "i1",
            **extra,
        }

    def do_GET(self) -> None:
        cls = type(self)
        query = parse_qs(urlparse(self.path).query)
        if "watch" not in query:
            self.answer(200 if cls.draining else 503, self._status())
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Upgrade-Gate-Watch", "holding")
        self.send_header("Upgrade-Gate-Instance", "i1")
        self.end_headers()
        self.wfile.flush()
        if not cls.lifted:
            cls.watching.set()
            cls.lift.wait(120)
            cls.lifted, cls.draining = True, False
        else:
            threading.Event().wait(float(query["watch"][0]))
        self.wfile.write(json.dumps(self._status(watched=True)).encode())

    def do_POST(self) -> None:
        cls = type(self)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if cls.lifted and cls.refenced_while_waiting is None:
            cls.refence_asked.set()
            cls.answer_fence.wait(120)
            assert cls.hook is not None
            cls.refenced_while_waiting = cls.hook.proc.poll() is None
        cls.draining = True
        self.answer(200, self._status())

    def do_DELETE(self) -> None:
        type(self).draining = False
        self.answer(200, self._status())


class _ApiServer(JsonHandler):
    """Lists the stand-in pod. The first listing is answered at once (the pod is gated from
    it). The second waits until the pod's watch is open, and a moment more for the hook to
    read its head: the hook then finds every pod ready and watched, so its final round asks
    nobody and the third listing is the confirming one. That one lifts the fence under the
    watch, and is answered once the hook asks to fence the pod again."""

    pod: ClassVar[dict[str, Any]] = {}
    listings: ClassVar[int] = 0

    def do_GET(self) -> None:
        cls = type(self)
        if "/pods" not in self.path:  # ReplicaSets: none
            self.answer(200, {"kind": "List", "items": []})
            return
        cls.listings += 1
        if cls.listings == 2:
            _Pod.watching.wait(60)
            threading.Event().wait(0.5)
        elif cls.listings == 3:
            _Pod.lift.set()
            _Pod.refence_asked.wait(60)
        self.answer(200, {"kind": "List", "items": [cls.pod]})


def test_a_watch_that_ends_during_the_confirming_listing_is_fenced_again_first(
    hooks: list[Hook], tmp_path: Path
) -> None:
    _Pod.lift, _Pod.refence_asked = threading.Event(), threading.Event()
    _Pod.answer_fence, _Pod.watching = threading.Event(), threading.Event()
    _Pod.lifted, _Pod.draining, _Pod.refenced_while_waiting = False, False, None
    _ApiServer.listings = 0
    with serving(_Pod) as pod, serving(_ApiServer) as api:
        host, port = pod.split(":")
        _ApiServer.pod = {
            "metadata": {"name": "p", "uid": "uid-p", "labels": {"app": "x"}},
            "spec": {
                "containers": [{"name": "app", "ports": [{"name": "http", "containerPort": port}]}]
            },
            "status": {"phase": "Running", "podIP": host},
        }
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://{api}")
        hook = run_hook(
            hooks, "--selector", "app=x", "--kubeconfig", str(kubeconfig), "--timeout", "120"
        )
        _Pod.hook = hook
        if not _Pod.refence_asked.wait(60):
            hook.proc.terminate()
            hook.wait()
            raise AssertionError(f"the pod was not fenced again:\n{hook.output}")
        # The fence after the lift is answered once the hook has ended, or after a while
        # (a hook that waits for it, as it must, ends only after).
        with contextlib.suppress(subprocess.TimeoutExpired):
            hook.proc.wait(timeout=3)
        _Pod.answer_fence.set()
        assert hook.wait(timeout=120) == Exit.OK, hook.output
    assert "upgrade may proceed" in hook.last_line, hook.last_line
    assert _Pod.refenced_while_waiting, (
        "the hook let the upgrade proceed while the pod was not fenced:\n" + hook.output
    )
