"""The node actions' mechanics, without a cluster: what a drain evicts and retries, what
stopNode refuses, and that the run leaves every node as it found it.

The cluster is a fake that answers as the API server and the kind provider would; the real
ones play e2e/scenarios/files/worker-drained-mid-wait.scenario.yaml.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from e2e.playbook import engine
from e2e.playbook.engine import CONTROL_PLANE, STEPS, Run
from e2e.playbook.load import Play, Step

NODES = ("c-control-plane", "c-worker", "c-worker2")


def _pod(name: str, node: str, made: int) -> Any:
    return SimpleNamespace(
        metadata=SimpleNamespace(
            name=name,
            uid=f"uid-{name}",
            deletion_timestamp=None,
            creation_timestamp=datetime.fromtimestamp(1_800_000_000 + made, tz=UTC),
        ),
        spec=SimpleNamespace(node_name=node),
    )


class FakeCluster:
    """The API server's nodes and pods, the Eviction API, and the kind provider's power."""

    def __init__(self, refusals: int = 0) -> None:
        self.pods = {
            "app-a": _pod("app-a", "c-worker", 0),
            "app-b": _pod("app-b", "c-worker2", 1),
            "app-c": _pod("app-c", "c-worker2", 2),
        }
        self.unschedulable: dict[str, bool] = {}
        self.refusals = refusals  # evictions refused (429) before one is accepted
        self.evictions: list[str] = []
        self.power: list[tuple[str, str]] = []
        self.fail_start = False
        # As Stage and Kube are used by the engine.
        self.namespace = "ns"
        self.kube = SimpleNamespace(
            core=SimpleNamespace(list_node=self.list_node, read_node=self.read_node),
            pod=lambda namespace, name: self.pods.get(name),
        )
        self.node_power = self
        self.api_server = self
        self.fail_api_stop = False

    def list_node(self) -> Any:
        return SimpleNamespace(items=[self.read_node(name) for name in NODES])

    def read_node(self, name: str) -> Any:
        labels = {CONTROL_PLANE: ""} if name.endswith("control-plane") else {}
        return SimpleNamespace(metadata=SimpleNamespace(name=name, labels=labels))

    def app_pods(self) -> list[Any]:
        return [p for p in self.pods.values() if p.metadata.deletion_timestamp is None]

    def cordon(self, node: str, *, unschedulable: bool = True) -> None:
        self.unschedulable[node] = unschedulable

    def evict(self, pod: str) -> str | None:
        self.evictions.append(pod)
        if self.refusals:
            self.refusals -= 1
            return "Cannot evict pod as it would violate the pod's disruption budget."
        self.pods[pod].metadata.deletion_timestamp = "now"
        return None

    def mark(self, name: str) -> None:
        pass

    def stop_node(self, node: str) -> None:
        self.power.append(("stop", node))

    def start_node(self, node: str, timeout: float = 180) -> None:
        if self.fail_start:
            raise RuntimeError(f"{node} did not come back")
        self.power.append(("start", node))

    def stop_api_server(self) -> None:
        self.power.append(("stop", "API server"))
        if self.fail_api_stop:  # the manifests moved, the API server still answering
            raise AssertionError("the API server stopped: not within 120s")

    def start_api_server(self) -> None:
        self.power.append(("start", "API server"))

    def timeline(self) -> Any:
        return SimpleNamespace(pods={})


def _run(cluster: FakeCluster) -> Run:
    file = Play(
        path=Path("x.scenario.yaml"),
        name="x",
        description="",
        duration=60,
        helm=None,
        image="v1",
        replicas=3,
        values={},
        upgrades=(),
        work=(),
        steps=(),
        expect={},
    )
    return Run(file, cluster)  # type: ignore[arg-type]


def _do(run: Run, action: str, node: Any, timeout: float = 5) -> None:
    step = Step(action, {"node": node}, 10.0, None, None, None, "spec.events[0]", 21)
    STEPS[action](run, step, timeout)


def test_a_drain_cordons_the_node_and_evicts_only_the_release_pods_on_it() -> None:
    cluster = FakeCluster()
    run = _run(cluster)
    _do(run, "drainNode", "worker2")
    assert cluster.unschedulable == {"c-worker2": True}
    assert sorted(cluster.evictions) == ["app-b", "app-c"]
    # Evicted by the file: not rolled out early by helm (rolloutAfterGate).
    assert run.deleted == {"app-b", "app-c"}
    assert run.cordoned == {"c-worker2"}
    _do(run, "uncordonNode", {"nodeOf": 0})  # app-a's node: c-worker, never cordoned
    _do(run, "uncordonNode", "c-worker2")
    assert cluster.unschedulable == {"c-worker2": False, "c-worker": False}
    assert run.cordoned == set()


def test_a_drain_tries_an_eviction_a_budget_refuses_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "EVICTION_RETRY", 0.01)
    cluster = FakeCluster(refusals=2)
    run = _run(cluster)
    _do(run, "drainNode", {"nodeOf": 0})
    assert cluster.evictions == ["app-a", "app-a", "app-a"]
    assert run.deleted == {"app-a"}


def test_a_drain_a_budget_never_allows_fails_the_step_at_its_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine, "EVICTION_RETRY", 0.01)
    cluster = FakeCluster(refusals=10**6)
    run = _run(cluster)
    with pytest.raises(AssertionError, match=r"eviction still refused after 0\.2s: app-a: Cannot"):
        _do(run, "drainNode", "c-worker", timeout=0.2)
    assert run.cordoned == {"c-worker"}, "uncordoned at the end of the run"


def test_a_node_name_that_names_no_node_or_several_fails_the_step() -> None:
    run = _run(FakeCluster())
    with pytest.raises(AssertionError, match="no node 'worker3': the cluster's nodes are"):
        run.node("worker3")
    assert run.node("worker") == "c-worker"
    assert run.node("c-worker2") == "c-worker2"


def test_stop_node_never_stops_the_control_plane() -> None:
    cluster = FakeCluster()
    cluster.pods["app-a"].spec.node_name = "c-control-plane"
    run = _run(cluster)
    with pytest.raises(AssertionError, match="c-control-plane is the control-plane node"):
        _do(run, "stopNode", {"nodeOf": 0})
    assert cluster.power == []
    _do(run, "stopNode", "worker2")
    assert cluster.power == [("stop", "c-worker2")]
    assert run.stopped == {"c-worker2"}
    _do(run, "startNode", "worker2")
    assert run.stopped == set()


def test_the_run_starts_and_uncordons_every_node_the_file_left_so() -> None:
    cluster = FakeCluster()
    run = _run(cluster)
    _do(run, "drainNode", "worker2")
    _do(run, "stopNode", "worker")
    run._restore_nodes()
    assert cluster.power == [("stop", "c-worker"), ("start", "c-worker")]
    assert cluster.unschedulable == {"c-worker2": False}
    assert (run.stopped, run.cordoned) == (set(), set())
    assert run.notes == [
        "node c-worker started again at the end of the run",
        "node c-worker2 uncordoned at the end of the run",
    ]
    assert run.rows == []


def test_a_node_that_cannot_be_started_again_fails_the_verdict() -> None:
    cluster = FakeCluster()
    run = _run(cluster)
    _do(run, "stopNode", "worker")
    cluster.fail_start = True
    run._restore_nodes()
    (row,) = run.rows
    assert (row.name, row.held) == ("nodes restored", False)
    assert "c-worker did not come back" in row.observed


def test_the_run_starts_the_api_server_a_failed_restart_left_stopped() -> None:
    """A restartApiServer whose stop failed half way (its manifests moved aside, the API
    server still answering at the timeout) left the control plane to stop under every
    scenario after it: nothing put it back."""
    cluster = FakeCluster()
    cluster.fail_api_stop = True
    run = _run(cluster)
    with pytest.raises(AssertionError, match="the API server stopped"):
        _do(run, "restartApiServer", None)
    run._restore_nodes()
    assert cluster.power == [("stop", "API server"), ("start", "API server")]
    assert run.notes == ["API server started again at the end of the run"]
    assert run.rows == []


def test_a_restart_that_went_through_leaves_nothing_to_restore() -> None:
    cluster = FakeCluster()
    run = _run(cluster)
    _do(run, "restartApiServer", None)
    run._restore_nodes()
    assert cluster.power == [("stop", "API server"), ("start", "API server")]
    assert run.notes == []
