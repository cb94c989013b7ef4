"""The node and the cluster's own services are what they claim to be."""

from __future__ import annotations

import pytest

from e2e.providers.local.cluster import LocalProvider
from e2e.smoke import workloads
from e2e.smoke.workloads import KubeClient

pytestmark = pytest.mark.smoke


def test_node_is_ready_and_runs_the_pinned_release(
    provider: LocalProvider, k8s: KubeClient
) -> None:
    nodes = k8s.nodes()
    assert [n["metadata"]["name"] for n in nodes] == ["ugate-local"]
    node = nodes[0]
    conditions = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert conditions["Ready"] == "True"
    info = node["status"]["nodeInfo"]
    assert info["kubeletVersion"] == provider.settings.kubernetes_version
    assert info["containerRuntimeVersion"].startswith("containerd://")
    assert node["spec"]["podCIDR"] == provider.settings.pod_cidr


def test_api_server_reports_the_pinned_release(provider: LocalProvider, k8s: KubeClient) -> None:
    assert k8s.version()["gitVersion"] == provider.settings.kubernetes_version


def test_cluster_dns_resolves_services(
    provider: LocalProvider, smoke_images: dict[str, str], k8s: KubeClient, smoke_ns: str
) -> None:
    if not provider.settings.binary("coredns").is_file():
        pytest.skip("CoreDNS was not built on this machine")
    name = f"kubernetes.default.svc.{provider.settings.cluster_domain}"
    code = f"import socket; print(socket.gethostbyname({name!r}))"
    k8s.create(smoke_ns, workloads.python_job("dns", smoke_images["v1"], code))
    outcome = k8s.wait_job(smoke_ns, "dns")
    logs = k8s.job_logs(smoke_ns, "dns")
    assert outcome == "Complete", logs
    assert logs.strip() == provider.settings.service_ip
