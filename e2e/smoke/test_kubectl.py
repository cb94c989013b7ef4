"""kubectl's streaming verbs reach the kubelet through the API server: logs, exec, port-forward."""

from __future__ import annotations

import re
import subprocess
import threading

import pytest

from e2e.providers.local.cluster import LocalProvider
from e2e.smoke import workloads
from e2e.smoke.conftest import Kubectl
from e2e.smoke.workloads import KubeClient

pytestmark = pytest.mark.smoke


@pytest.fixture
def web_pod(smoke_images: dict[str, str], k8s: KubeClient, smoke_ns: str) -> str:
    k8s.create(smoke_ns, workloads.http_deployment("web", smoke_images["v1"], replicas=1))
    k8s.wait_rollout(smoke_ns, "web")
    pods = k8s.ready_pods(smoke_ns, "web")
    assert len(pods) == 1
    return str(pods[0]["metadata"]["name"])


def test_exec_runs_in_the_container_and_returns_its_exit_code(
    kubectl: Kubectl, smoke_ns: str, web_pod: str
) -> None:
    done = kubectl("-n", smoke_ns, "exec", web_pod, "--", "cat", "/srv/version")
    assert done.stdout.strip() == "v1"
    failed = kubectl(
        "-n", smoke_ns, "exec", web_pod, "--", "python3", "-c", "raise SystemExit(7)", check=False
    )
    assert failed.returncode == 7


def test_logs_show_what_the_container_printed(
    kubectl: Kubectl, k8s: KubeClient, smoke_ns: str, web_pod: str
) -> None:
    pod_ip = k8s.pod(smoke_ns, web_pod)["status"]["podIP"]
    marker = "/version?smoke-logs"
    workloads.http_get(f"http://{pod_ip}:8080{marker}")
    done = kubectl("-n", smoke_ns, "logs", web_pod)
    assert f'"GET {marker} HTTP/1.1" 200' in done.stdout + done.stderr


def test_port_forward_reaches_the_pod(provider: LocalProvider, smoke_ns: str, web_pod: str) -> None:
    forward = subprocess.Popen(
        [
            str(provider.settings.kubectl),
            f"--kubeconfig={provider.kubeconfig}",
            "-n",
            smoke_ns,
            "port-forward",
            f"pod/{web_pod}",
            ":8080",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port: list[int] = []
        got_port = threading.Event()

        def read() -> None:
            assert forward.stdout is not None
            for line in forward.stdout:
                match = re.search(r"Forwarding from 127\.0\.0\.1:(\d+)", line)
                if match:
                    port.append(int(match.group(1)))
                    got_port.set()
                    return

        threading.Thread(target=read, daemon=True).start()
        assert got_port.wait(30), "kubectl port-forward printed no local port"
        for _ in range(3):
            assert workloads.http_get(f"http://127.0.0.1:{port[0]}/version") == "v1"
    finally:
        forward.terminate()
        forward.wait(10)
