"""Pods are reachable from the host, and nothing a pod sends can leave the host."""

from __future__ import annotations

import subprocess

import pytest

from e2e.providers.local.settings import BRIDGE, EGRESS_CHAIN
from e2e.smoke import workloads
from e2e.smoke.workloads import KubeClient

pytestmark = pytest.mark.smoke


def test_pod_ips_are_reachable_from_the_host(
    smoke_images: dict[str, str], k8s: KubeClient, smoke_ns: str
) -> None:
    k8s.create(smoke_ns, workloads.http_deployment("web", smoke_images["v1"], replicas=2))
    k8s.wait_rollout(smoke_ns, "web")
    ips = {p["status"]["podIP"] for p in k8s.ready_pods(smoke_ns, "web")}
    assert len(ips) == 2
    for ip in ips:
        assert ip.startswith("10.244.0.")
        assert workloads.http_get(f"http://{ip}:8080/version") == "v1"


def test_egress_guard_drops_pod_traffic_leaving_the_bridge() -> None:
    rules = subprocess.run(
        ["iptables", "-t", "mangle", "-S", "FORWARD"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert f"-A FORWARD -i {BRIDGE} ! -o {BRIDGE} -j {EGRESS_CHAIN}" in rules
    chain = subprocess.run(
        ["iptables", "-t", "mangle", "-S", EGRESS_CHAIN], capture_output=True, text=True, check=True
    ).stdout
    assert "-j DROP" in chain
