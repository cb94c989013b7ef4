"""``--template-from CONFIGMAP``: the pod template an upgrade rolls out, read from a ConfigMap
that a parent chart renders (chart/charts/upgrade-gate-hook), by real hook processes against
real app processes and a stub API server on loopback. Without that ConfigMap, or with one of
another revision, every pod is gated: a chart that does not pass its template is not left
ungated."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import pytest

from e2e.cluster.wait import eventually
from e2e.loopback import TOKEN, AppProcess
from tests.unit.conftest import AppFactory, Hook, JsonHandler, run_hook, serving, write_kubeconfig
from upgrade_gate.hook import Exit

NEW = "0123456789abcdef"  # the template the upgrade rolls out
OLD = "fedcba9876543210"
CONFIGMAP = "rel-upgrade-gate-template"


def pod(name: str, app: AppProcess, template_hash: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "labels": {"app": "x"},
            "annotations": {"upgrade-gate/template-hash": template_hash},
        },
        "spec": {
            "containers": [{"name": "app", "ports": [{"name": "http", "containerPort": app.port}]}]
        },
        "status": {"phase": "Running", "podIP": "127.0.0.1"},
    }


def configmap(**data: str) -> dict[str, Any]:
    return {"kind": "ConfigMap", "metadata": {"name": CONFIGMAP}, "data": data}


class _ApiServer(JsonHandler):
    """Lists ``pods``, no ReplicaSets, and answers the ConfigMap with ``answer``."""

    pods: ClassVar[list[dict[str, Any]]] = []
    answer_status: ClassVar[int] = 200
    answer_body: ClassVar[dict[str, Any]] = {}
    asked: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        cls = type(self)
        cls.asked.append(self.path)
        if "/configmaps/" in self.path:
            return self.answer(cls.answer_status, cls.answer_body)
        if "/pods" in self.path:
            return self.answer(200, {"kind": "List", "items": cls.pods})
        return self.answer(200, {"kind": "List", "items": []})


@contextmanager
def api_server(
    tmp_path: Path, pods: list[dict[str, Any]], status: int, body: dict[str, Any]
) -> Iterator[Path]:
    _ApiServer.pods, _ApiServer.answer_status, _ApiServer.answer_body = pods, status, body
    _ApiServer.asked = []
    with serving(_ApiServer) as endpoint:
        yield write_kubeconfig(tmp_path / "kubeconfig", f"http://{endpoint}")


def wait_from(hooks: list[Hook], kubeconfig: Path, *extra: str) -> Hook:
    return run_hook(
        hooks, "--selector", "app=x", "--kubeconfig", str(kubeconfig), "--timeout", "60",
        "--lease", "30", "--hold", "30", "--template-from", CONFIGMAP, *extra,
    )  # fmt: skip


def test_pods_on_the_template_the_configmap_names_are_not_gated(
    make_app: AppFactory, hooks: list[Hook], tmp_path: Path
) -> None:
    kept, replaced = make_app(), make_app()
    op_id = kept.start_operation(60)  # would hold the upgrade for a minute, were it gated
    pods = [pod("kept", kept, NEW), pod("replaced", replaced, OLD)]
    body = configmap(**{"template-hash": NEW, "replicas": "2", "revision": "7"})
    with api_server(tmp_path, pods, 200, body) as kubeconfig:
        hook = wait_from(hooks, kubeconfig, "--template-revision", "7")
        assert hook.wait(timeout=30) == Exit.OK, hook.output
    assert f"/api/v1/namespaces/n/configmaps/{CONFIGMAP}" in _ApiServer.asked
    assert f"ConfigMap {CONFIGMAP}: the upgrade rolls out pod template {NEW}" in hook.output
    assert "pod kept runs the new pod template already: not replaced, not gated" in hook.output
    assert kept.operation(op_id)["state"] == "running"
    assert not kept.status()["draining"]
    assert replaced.status()["draining"]  # the pod the upgrade replaces keeps its hold lease


@pytest.mark.parametrize(
    ("status", "body", "said"),
    [
        (404, {"kind": "Status", "code": 404}, f"no ConfigMap {CONFIGMAP}"),
        (
            200,
            configmap(**{"template-hash": NEW, "replicas": "2", "revision": "6"}),
            f"ConfigMap {CONFIGMAP} is of revision 6, not 7",
        ),
    ],
    ids=["absent", "of-an-earlier-revision"],
)
def test_without_the_configmap_of_this_revision_every_pod_is_gated(
    make_app: AppFactory,
    hooks: list[Hook],
    tmp_path: Path,
    status: int,
    body: dict[str, Any],
    said: str,
) -> None:
    """The safe side: a parent chart that never renders the ConfigMap, or one left by an
    upgrade that failed, must not let the hook skip a busy pod."""
    kept = make_app()
    op_id = kept.start_operation(4)
    with api_server(tmp_path, [pod("kept", kept, NEW)], status, body) as kubeconfig:
        hook = wait_from(hooks, kubeconfig, "--template-revision", "7")
        eventually(lambda: kept.status()["draining"], what="the busy pod fenced")
        assert hook.wait(timeout=60) == Exit.OK, hook.output
    assert kept.operation(op_id)["state"] == "succeeded"
    assert hook.ended_at is not None
    assert [line for line in hook.output.splitlines() if said in line], hook.output
    assert "every pod is gated" in hook.output
    assert "not replaced, not gated" not in hook.output


BAD: list[tuple[dict[str, Any], str]] = [
    ({"kind": "ConfigMap", "metadata": {"name": CONFIGMAP}}, "has no data"),
    (configmap(**{"template-hash": NEW, "revision": "7"}), "lacks replicas in its data"),
    (configmap(**{"template-hash": "x", "replicas": "2", "revision": "7"}), "not 16 hex digits"),
    (configmap(**{"template-hash": NEW, "replicas": "-1", "revision": "7"}), "replicas '-1'"),
    (configmap(**{"template-hash": NEW, "replicas": "2", "revision": "seven"}), "revision 'se"),
]


@pytest.mark.parametrize(("body", "said"), BAD, ids=[said for _, said in BAD])
def test_a_configmap_that_cannot_be_read_exits_2_in_one_line_with_no_fence_left(
    make_app: AppFactory, hooks: list[Hook], tmp_path: Path, body: dict[str, Any], said: str
) -> None:
    app = make_app()
    with api_server(tmp_path, [pod("p", app, OLD)], 200, body) as kubeconfig:
        hook = wait_from(hooks, kubeconfig, "--template-revision", "7")
        assert hook.wait(timeout=30) == Exit.USAGE, hook.output
    assert "Traceback" not in hook.output, hook.output
    assert said in hook.last_line, hook.last_line
    assert f"ConfigMap {CONFIGMAP}" in hook.last_line, hook.last_line
    assert not app.status()["draining"]


def test_a_configmap_the_hook_may_not_read_is_missing_rbac(
    hooks: list[Hook], tmp_path: Path
) -> None:
    denied = {"kind": "Status", "code": 403, "message": "configmaps is forbidden"}
    with api_server(tmp_path, [], 403, denied) as kubeconfig:
        hook = wait_from(hooks, kubeconfig)
        assert hook.wait(timeout=30) == Exit.FORBIDDEN, hook.output
    assert "needs verb 'get' on resource 'configmaps'" in hook.last_line, hook.output


def release_from(kubeconfig: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable, "-m", "upgrade_gate.hook", "release", "--selector", "app=x",
            "--kubeconfig", str(kubeconfig), "--template-from", CONFIGMAP, *extra,
        ],
        env={**os.environ, "UPGRADE_GATE_TOKEN": TOKEN},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )  # fmt: skip


def test_release_lifts_fences_only_on_the_pods_of_the_configmaps_template(
    make_app: AppFactory, tmp_path: Path
) -> None:
    staying, leaving = make_app(), make_app()
    for app in (staying, leaving):
        assert app.drain(ttl=120).ok
    pods = [pod("staying", staying, NEW), pod("leaving", leaving, OLD)]
    body = configmap(**{"template-hash": NEW, "replicas": "1", "revision": "3"})
    with api_server(tmp_path, pods, 200, body) as kubeconfig:
        done = release_from(kubeconfig, "--template-revision", "3")
    assert done.returncode == Exit.OK, done.stderr
    assert not staying.status()["draining"]
    assert leaving.status()["draining"]
    assert "fences lifted on 1 pod(s) that stay" in done.stderr


def test_release_without_the_configmap_lifts_every_fence(
    make_app: AppFactory, tmp_path: Path
) -> None:
    first, second = make_app(), make_app()
    for app in (first, second):
        assert app.drain(ttl=120).ok
    pods = [pod("first", first, NEW), pod("second", second, OLD)]
    with api_server(tmp_path, pods, 404, {"kind": "Status", "code": 404}) as kubeconfig:
        done = release_from(kubeconfig, "--template-revision", "3")
    assert done.returncode == Exit.OK, done.stderr
    assert not first.status()["draining"]
    assert not second.status()["draining"]


@pytest.mark.parametrize(
    "args",
    [
        ["--template-from", CONFIGMAP, "--template-hash", NEW],
        ["--template-from", CONFIGMAP, "--replicas", "2"],
        ["--template-revision", "3"],
        ["--template-from", "Not A Name"],
        ["--template-from", CONFIGMAP, "--template-revision", "x"],
    ],
    ids=["with-hash", "with-replicas", "revision-alone", "bad-name", "bad-revision"],
)
def test_template_from_used_wrongly_exits_2_saying_why(args: list[str], tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:9")
    done = subprocess.run(
        [sys.executable, "-m", "upgrade_gate.hook", "wait", "--selector", "app=x",
         "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )  # fmt: skip
    assert done.returncode == Exit.USAGE, done.stderr
    assert "Traceback" not in done.stderr
    # argparse's own refusals print the usage first; the reason is the last line.
    assert "error: " in done.stderr.strip().splitlines()[-1], done.stderr
