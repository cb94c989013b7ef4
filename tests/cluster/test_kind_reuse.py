"""What `up` does with a kind cluster it finds (e2e.cluster.providers.kind.nodes.assess): the node
containers' states as Docker reports them and the API server's answer, in; reuse, wait, start,
unpause or delete, out. The real daemon and cluster are in e2e/smoke/test_kind.py; these are
the cases a real run reaches only by chance (a second's Forbidden, a container restarting)."""

from __future__ import annotations

from typing import Any

import pytest

from e2e.cluster.base import ClusterError
from e2e.cluster.providers.kind.nodes import ApiAnswer, NodeContainer, assess, ready

STARTED = "2026-12-02T17:03:25.960900049Z"
NAMES = ("c-control-plane", "c-worker", "c-worker2")


def held(*states: str) -> dict[str, NodeContainer]:
    pairs = zip(NAMES, states, strict=False)
    return {n: NodeContainer(n, f"id-{n}", state, "172.18.0.2", STARTED) for n, state in pairs}


def node(
    name: str, status: str = "True", heartbeat: str = "2026-12-02T17:03:31Z"
) -> dict[str, Any]:
    condition = {"type": "Ready", "status": status, "lastHeartbeatTime": heartbeat}
    return {"metadata": {"name": name}, "status": {"conditions": [condition]}}


def answer(**heartbeats: str) -> ApiAnswer:
    return ApiAnswer([node(n, heartbeat=heartbeats.get(n, "2026-12-02T17:03:31Z")) for n in NAMES])


RUNNING = ("running",) * 3


def test_a_cluster_whose_nodes_all_reported_since_they_started_is_reused() -> None:
    assert assess(held(*RUNNING), answer(), 3).action == "reuse"


def test_the_api_servers_first_forbidden_is_waited_out_not_taken_for_unhealthy() -> None:
    # What CI's second session saw, and deleted the cluster on.
    forbidden = ApiAnswer(error='nodes is forbidden: User "kubernetes-admin" cannot list ...')
    verdict = assess(held(*RUNNING), forbidden, 3)
    assert verdict.action == "wait"
    assert "forbidden" in verdict.why


def test_a_ready_from_before_the_restart_is_not_ready() -> None:
    stale = answer(**{"c-worker": "2026-12-02T16:58:00Z"})
    verdict = assess(held(*RUNNING), stale, 3)
    assert verdict.action == "wait"
    assert "c-worker" in verdict.why
    assert ready(stale.items) == list(NAMES), "without `since`, any Ready counts"


def test_a_heartbeat_in_the_second_the_container_started_counts() -> None:
    same_second = answer(**{"c-worker": "2026-12-02T17:03:25Z"})
    assert assess(held(*RUNNING), same_second, 3).action == "reuse"


@pytest.mark.parametrize(
    ("states", "action", "names"),
    [
        (("exited", "running", "exited"), "start", ("c-control-plane", "c-worker2")),
        (("running", "paused", "running"), "unpause", ("c-worker",)),
        (("running", "restarting", "running"), "wait", ()),
    ],
)
def test_stopped_paused_and_restarting_nodes_come_back(
    states: tuple[str, ...], action: str, names: tuple[str, ...]
) -> None:
    verdict = assess(held(*states), ApiAnswer(error="connection refused"), 3)
    assert (verdict.action, verdict.names) == (action, names)


@pytest.mark.parametrize(
    ("states", "why"),
    [
        (("running", "running"), "a partial cluster: 2 of 3 node containers"),
        (("running", "created", "running"), "never started"),
        (("running", "running", "dead"), "dead or being removed"),
    ],
)
def test_what_cannot_come_back_is_deleted(states: tuple[str, ...], why: str) -> None:
    verdict = assess(held(*states), answer(), 3)
    assert verdict.action == "delete"
    assert why in verdict.why


def test_more_node_containers_than_asked_for_is_refused_not_deleted() -> None:
    with pytest.raises(ClusterError, match="3 node containers, not the 2 asked for"):
        assess(held(*RUNNING), answer(), 2)
