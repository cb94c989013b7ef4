"""The promise across nodes: what only a cluster with several workers can show.

These need two worker nodes (a three-node kind cluster: ``tox -e e2e``, whose
``--kind-nodes`` is 3 unless told otherwise). They carry the ``multinode`` marker: where the
cluster will have fewer nodes they are deselected at collection (conftest.py), and on a
cluster found smaller when they run they fail saying what they need.

- Three replicas spread over the workers by a topology spread constraint, operations on
  pods of two different workers: the hook, on whichever node, fences and waits for all of
  them over the pod network, and the upgrade waits for the longest.
- A worker drained while the upgrade waits (cordoned, its app pods evicted as ``kubectl
  drain`` does): the evicted busy pod finishes its operation while terminating, its
  replacement lands on another worker, and the hook gates the replacement.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from e2e.cluster.base import cache_root
from e2e.cluster.host.locks import exclusive
from e2e.kube import Kube, wait_for
from e2e.stage import Stage

pytestmark = [pytest.mark.e2e, pytest.mark.multinode]

CONTROL_PLANE = "node-role.kubernetes.io/control-plane"
APP_LABELS = {"app.kubernetes.io/instance": "demo", "app.kubernetes.io/component": "app"}
# App pods on workers only. The spread's domains follow the node affinity (its default
# nodeAffinityPolicy is Honor), so the tainted control plane is no empty domain that would
# leave a replica Pending.
ON_WORKERS = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": CONTROL_PLANE, "operator": "DoesNotExist"}]}
            ]
        }
    }
}
# At most one pod more on one worker than on another; each ReplicaSet spread on its own
# (pod-template-hash), so the rollout's new pods spread too.
SPREAD = [
    {
        "maxSkew": 1,
        "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": APP_LABELS},
        "matchLabelKeys": ["pod-template-hash"],
    }
]


@pytest.fixture
def workers(kube: Kube) -> Iterator[list[str]]:
    """The cluster's worker nodes; fails (does not skip) when there are fewer than two.

    One such test at a time, whatever runs beside it (xdist workers, other sessions): the
    drain test cordons a worker, which must not happen while another places its pods.
    """
    with exclusive(cache_root() / "multinode.lock", "another multinode scenario"):
        yield _workers(kube)


def _workers(kube: Kube) -> list[str]:
    nodes = kube.core.list_node().items
    names = sorted(n.metadata.name for n in nodes if CONTROL_PLANE not in (n.metadata.labels or {}))
    if len(names) < 2:
        pytest.fail(
            "this scenario needs two worker nodes (a three-node kind cluster: --kind-nodes 3, "
            f"the default); this cluster has {len(nodes)} node(s), "
            f"workers: {names or 'none'}",
            pytrace=False,
        )
    return names


def test_three_replicas_spread_over_the_workers_wait_for_the_longest(
    workers: list[str], stage: Stage
) -> None:
    stage.install("v1", replicaCount=3, affinity=ON_WORKERS, topologySpreadConstraints=SPREAD)
    pods = {p.metadata.name: p for p in stage.app_pods()}
    placed = Counter(p.spec.node_name for p in pods.values())
    per_worker = [placed.get(w, 0) for w in workers]
    assert set(placed) <= set(workers), placed
    assert max(per_worker) - min(per_worker) <= 1, f"not spread over {workers}: {placed}"
    # Work on pods of two different workers: 10 s on one, 20 s on the other.
    first, second = sorted(placed)[:2]
    short_pod = next(n for n, p in sorted(pods.items()) if p.spec.node_name == first)
    long_pod = next(n for n, p in sorted(pods.items()) if p.spec.node_name == second)
    uids = {name: p.metadata.uid for name, p in pods.items()}
    short_op = stage.start_operation(short_pod, 10)
    long_op = stage.start_operation(long_pod, 20)

    with stage.recording("three replicas on two workers, work on both"):
        upgrade = stage.upgrade("v2")
        assert stage.finish(upgrade, timeout=240) == 0, upgrade.output
        gated, gate_opened = stage.hook_verdict(upgrade)
        for uid in uids.values():
            stage.wait_gone(uid, timeout=120)
        wait_for(
            lambda: len(stage.app_pods()) == 3, timeout=60, what="three new pods after rollout"
        )

    timeline = stage.timeline()
    old = {name: timeline.pods[uid] for name, uid in uids.items()}
    # The timeline saw them where the API said: on two different workers.
    assert old[short_pod].node == first, old
    assert old[long_pod].node == second, old
    assert gated == 3, upgrade.output
    short, _ = stage.survived(short_op, uids[short_pod])
    long, _ = stage.survived(long_op, uids[long_pod])
    assert short.finished is not None
    assert long.finished is not None
    # The hook waited for the longest operation, not for the first to end.
    assert short.finished < long.finished <= gate_opened, (short, long, gate_opened)
    assert all(life.terminating and life.terminating > gate_opened for life in old.values()), old
    assert not any(op.cut_off for op in timeline.operations.values()), timeline.operations
    # The rollout's new pods are spread too.
    new = Counter(p.spec.node_name for p in stage.app_pods())
    counts = [new.get(w, 0) for w in workers]
    assert max(counts) - min(counts) <= 1, f"new pods not spread over {workers}: {new}"
    assert stage.version_served() == {"v2"}


def _set_unschedulable(kube: Kube, node: str, unschedulable: bool) -> None:
    kube.core.patch_node(node, {"spec": {"unschedulable": unschedulable}})


def _evict(kube: Kube, namespace: str, name: str) -> None:
    """What ``kubectl drain`` does to a pod: the Eviction API, which honours budgets."""
    kube.core.create_namespaced_pod_eviction(
        name,
        namespace,
        client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=namespace)),
    )


class _Cordon:
    """A worker cordoned for the block (``kubectl cordon``), uncordoned whatever happens."""

    def __init__(self, stage: Stage, node: str) -> None:
        self.stage = stage
        self.node = node
        self.active = False

    def __enter__(self) -> _Cordon:
        _set_unschedulable(self.stage.kube, self.node, True)
        self.active = True
        self.stage.mark(f"node {self.node} cordoned")
        return self

    def lift(self) -> None:
        if self.active:
            _set_unschedulable(self.stage.kube, self.node, False)
            self.active = False
            self.stage.mark(f"node {self.node} uncordoned")

    def __exit__(self, *exc: object) -> None:
        self.lift()


def _replacements(stage: Stage, template: str, known: set[str]) -> list[Any]:
    """New pods of the old ReplicaSet (its pod-template-hash), not the rollout's."""
    return [
        p
        for p in stage.app_pods()
        if p.metadata.name not in known and p.metadata.labels.get("pod-template-hash") == template
    ]


def test_a_worker_drained_mid_wait(workers: list[str], stage: Stage) -> None:
    stage.install("v1", replicaCount=2, affinity=ON_WORKERS)
    pods = {p.metadata.name: p for p in stage.app_pods()}
    busy = sorted(pods)[0]
    template = pods[busy].metadata.labels["pod-template-hash"]
    drained = pods[busy].spec.node_name
    # kubectl drain --pod-selector: the release's app pods on that worker.
    evicted = {n: p.metadata.uid for n, p in pods.items() if p.spec.node_name == drained}
    op_id = stage.start_operation(busy, 30)

    with stage.recording(f"worker {drained} drained while the upgrade waits"):
        upgrade = stage.upgrade("v2")
        wait_for(
            lambda: all(
                stage.kube.call(stage.namespace, n, "GET", "/upgradeable").body.get("draining")
                for n in pods
            ),
            timeout=60,
            what="every app pod fenced by the hook",
        )
        with _Cordon(stage, drained) as cordon:
            for name in sorted(evicted):
                _evict(stage.kube, stage.namespace, name)
                stage.mark(f"pod {name} evicted")
            replacements = wait_for(
                lambda: (
                    found
                    if len(found := _replacements(stage, template, set(pods))) == len(evicted)
                    and all(p.spec.node_name for p in found)
                    else None
                ),
                timeout=60,
                what=f"{len(evicted)} replacement(s) scheduled",
            )
            # The maintenance is over once the work moved: other tests may use the node.
            cordon.lift()
        names = sorted(p.metadata.name for p in replacements)
        assert stage.finish(upgrade, timeout=240) == 0, upgrade.output
        _, gate_opened = stage.hook_verdict(upgrade)
        for uid in evicted.values():
            stage.wait_gone(uid, timeout=120)

    timeline = stage.timeline()
    placed = {life.name: life.node for life in timeline.pods.values() if life.name in names}
    assert placed, names
    assert all(node not in (None, drained) for node in placed.values()), (
        f"replacements of the pods on {drained}: {placed}"
    )
    # The evicted busy pod drained its own work: terminating, it ran the operation to its end.
    (op,) = [o for o in timeline.operations.values() if o.id == op_id and o.pod == busy]
    life = timeline.pods[evicted[busy]]
    assert op.state == "succeeded", op
    assert not op.cut_off, op
    assert op.finished is not None
    assert life.terminating is not None
    assert life.gone is not None
    assert life.terminating < op.finished <= life.gone, (op, life)
    # The hook counted each replacement (gated at once, or not yet gated first), and
    # opened the gate only after it existed.
    for name in names:
        assert f"gating pod {name}" in upgrade.output or (
            f"pod {name}: not yet gated" in upgrade.output
        ), upgrade.output
        (replacement,) = [p for p in timeline.pods.values() if p.name == name]
        assert replacement.created < gate_opened, (replacement, gate_opened)
    assert not any(o.cut_off for o in timeline.operations.values()), timeline.operations
    assert stage.version_served() == {"v2"}
