"""Manifests and waits the smoke tests share: an HTTP Deployment, its Service, a Job."""

from __future__ import annotations

import urllib.request
from typing import Any

from kubernetes import client, utils

from e2e.kube import wait_for

PORT = 8080
Manifest = dict[str, Any]


def _container(image: str, command: list[str] | None = None) -> Manifest:
    container: Manifest = {
        "name": "main",
        "image": image,
        # The image exists only in containerd's store: pulling would fail, so never try.
        "imagePullPolicy": "Never",
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False},
    }
    if command is not None:
        container["command"] = command
    return container


def http_deployment(name: str, image: str, replicas: int = 2) -> Manifest:
    labels = {"app": name}
    container = _container(image)
    container["ports"] = [{"containerPort": PORT, "name": "http"}]
    container["readinessProbe"] = {
        "httpGet": {"path": "/version", "port": PORT},
        "periodSeconds": 1,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            # One new pod at a time, no old pod gone before its successor is Ready.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": {"terminationGracePeriodSeconds": 2, "containers": [container]},
            },
        },
    }


def service(name: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": PORT, "targetPort": PORT}]},
    }


def job(name: str, image: str, command: list[str], backoff_limit: int = 0) -> Manifest:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff_limit,
            "activeDeadlineSeconds": 120,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [_container(image, command)],
                }
            },
        },
    }


def python_job(name: str, image: str, code: str) -> Manifest:
    return job(name, image, ["python3", "-c", code])


class KubeClient:
    """The official client, answering in plain JSON-shaped dicts (camelCase, as kubectl shows).

    The client's models mark every field optional; dicts keep the tests about the cluster.
    """

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.discovery = client.DiscoveryV1Api(api)

    def _plain(self, obj: object) -> Any:
        return self.api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]

    def create(self, namespace: str, manifest: Manifest) -> None:
        utils.create_from_dict(self.api, manifest, namespace=namespace)  # type: ignore[no-untyped-call]

    def version(self) -> Any:
        return self._plain(client.VersionApi(self.api).get_code())

    def nodes(self) -> list[Any]:
        return list(self._plain(self.core.list_node())["items"])

    def deployment(self, namespace: str, name: str) -> Any:
        return self._plain(self.apps.read_namespaced_deployment(name, namespace))

    def set_image(self, namespace: str, name: str, container: str, image: str) -> None:
        patch = {
            "spec": {"template": {"spec": {"containers": [{"name": container, "image": image}]}}}
        }
        self.apps.patch_namespaced_deployment(name, namespace, patch)

    def service(self, namespace: str, name: str) -> Any:
        return self._plain(self.core.read_namespaced_service(name, namespace))

    def pods(self, namespace: str, selector: str) -> list[Any]:
        found = self.core.list_namespaced_pod(namespace, label_selector=selector)
        return list(self._plain(found)["items"])

    def pod(self, namespace: str, name: str) -> Any:
        return self._plain(self.core.read_namespaced_pod(name, namespace))

    def logs(self, namespace: str, pod: str) -> str:
        return str(self.core.read_namespaced_pod_log(pod, namespace))

    # --- waits -------------------------------------------------------------------------
    def wait_rollout(self, namespace: str, name: str, timeout: float = 90) -> None:
        """Like `kubectl rollout status`: every replica updated and available, no old one left."""

        def complete() -> bool:
            d = self.deployment(namespace, name)
            want = d["spec"]["replicas"]
            s = d.get("status", {})
            return bool(
                s.get("observedGeneration", 0) >= d["metadata"]["generation"]
                and s.get("updatedReplicas", 0) == want
                and s.get("availableReplicas", 0) == want
                and s.get("replicas", 0) == want
                and not s.get("unavailableReplicas")
            )

        wait_for(
            complete,
            timeout,
            f"rollout of deployment {namespace}/{name}",
            describe=lambda: str(self.deployment(namespace, name).get("status")),
        )

    def wait_job(self, namespace: str, name: str, timeout: float = 90) -> str:
        """The Job's final condition: Complete, or Failed (which the caller asserts on)."""

        def finished() -> str | None:
            job = self._plain(self.batch.read_namespaced_job_status(name, namespace))
            for condition in job.get("status", {}).get("conditions", []):
                if condition["type"] in ("Complete", "Failed") and condition["status"] == "True":
                    return str(condition["type"])
            return None

        return wait_for(finished, timeout, f"job {namespace}/{name} to finish")

    def job_logs(self, namespace: str, name: str) -> str:
        pods = self.pods(namespace, f"job-name={name}")
        return "\n".join(self.logs(namespace, p["metadata"]["name"]) for p in pods)

    def ready_pods(self, namespace: str, app: str) -> list[Any]:
        return [
            p
            for p in self.pods(namespace, f"app={app}")
            if "deletionTimestamp" not in p["metadata"]
            and any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p.get("status", {}).get("conditions", [])
            )
        ]

    def wait_endpoints(self, namespace: str, name: str, count: int) -> None:
        def ready() -> bool:
            slices = self._plain(
                self.discovery.list_namespaced_endpoint_slice(
                    namespace, label_selector=f"kubernetes.io/service-name={name}"
                )
            )
            endpoints = [
                e
                for s in slices["items"]
                for e in s.get("endpoints") or []
                if e.get("conditions", {}).get("ready")
            ]
            return len(endpoints) == count

        wait_for(ready, 60, f"{count} ready endpoints behind service {namespace}/{name}")


def http_get(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - our own pods
        body: bytes = response.read()
    return body.decode().strip()
