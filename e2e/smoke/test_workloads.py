"""Deployments roll out and update, Jobs complete, Services answer other pods."""

from __future__ import annotations

import pytest

from e2e.smoke import workloads
from e2e.smoke.workloads import KubeClient, http_get

pytestmark = pytest.mark.smoke


def test_deployment_rolls_out_then_updates_to_a_second_tag(
    smoke_images: dict[str, str], k8s: KubeClient, smoke_ns: str
) -> None:
    k8s.create(smoke_ns, workloads.http_deployment("web", smoke_images["v1"]))
    k8s.wait_rollout(smoke_ns, "web")
    first = k8s.ready_pods(smoke_ns, "web")
    assert len(first) == 2
    assert {http_get(f"http://{p['status']['podIP']}:8080/version") for p in first} == {"v1"}

    k8s.set_image(smoke_ns, "web", "main", smoke_images["v2"])
    k8s.wait_rollout(smoke_ns, "web")
    second = k8s.ready_pods(smoke_ns, "web")
    assert len(second) == 2
    first_names = {p["metadata"]["name"] for p in first}
    assert not first_names & {p["metadata"]["name"] for p in second}
    assert {p["spec"]["containers"][0]["image"] for p in second} == {smoke_images["v2"]}
    assert {http_get(f"http://{p['status']['podIP']}:8080/version") for p in second} == {"v2"}


def test_job_runs_to_completion(
    smoke_images: dict[str, str], k8s: KubeClient, smoke_ns: str
) -> None:
    k8s.create(smoke_ns, workloads.python_job("count", smoke_images["v1"], "print('sum', 45)"))
    assert k8s.wait_job(smoke_ns, "count") == "Complete"
    assert "sum 45" in k8s.job_logs(smoke_ns, "count")


def test_failing_job_is_reported_failed(
    smoke_images: dict[str, str], k8s: KubeClient, smoke_ns: str
) -> None:
    """The Job wait tells failure from success, so the checks above can fail."""
    k8s.create(smoke_ns, workloads.python_job("fail", smoke_images["v1"], "raise SystemExit(3)"))
    assert k8s.wait_job(smoke_ns, "fail") == "Failed"


def test_cluster_ip_service_answers_from_another_pod(
    smoke_images: dict[str, str], k8s: KubeClient, smoke_ns: str
) -> None:
    k8s.create(smoke_ns, workloads.http_deployment("svc", smoke_images["v1"], replicas=1))
    k8s.create(smoke_ns, workloads.service("svc"))
    k8s.wait_rollout(smoke_ns, "svc")
    k8s.wait_endpoints(smoke_ns, "svc", 1)
    cluster_ip = k8s.service(smoke_ns, "svc")["spec"]["clusterIP"]
    assert cluster_ip.startswith("10.96.")

    code = (
        "import urllib.request as u\n"
        f"print('ip', u.urlopen('http://{cluster_ip}:8080/version', timeout=5).read().decode())\n"
        "dns = 'http://svc:8080/version'\n"
        "print('dns', u.urlopen(dns, timeout=5).read().decode())\n"
    )
    k8s.create(smoke_ns, workloads.python_job("client", smoke_images["v1"], code))
    outcome = k8s.wait_job(smoke_ns, "client")
    logs = k8s.job_logs(smoke_ns, "client")
    assert outcome == "Complete", logs
    assert "ip v1" in logs
    assert "dns v1" in logs
