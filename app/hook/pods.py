"""Where the pods of a release are: the Kubernetes API, or a static list.

A source answers "which pods must be idle right now?". It is asked again and
again during the wait, so pods that appear are gated too and pods that are
gone stop counting.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class SourceError(Exception):
    """The pods cannot be listed; ``exit_code`` says how the hook should end."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True, order=True)
class Pod:
    """One pod to gate: ``name`` identifies it across listings."""

    name: str
    host: str
    port: int

    @property
    def base_url(self) -> str:
        host = self.host
        try:
            if ipaddress.ip_address(host).version == 6:
                host = f"[{host}]"
        except ValueError:
            pass
        return f"http://{host}:{self.port}"


class PodSource(Protocol):
    @property
    def description(self) -> str: ...

    def list_pods(self) -> list[Pod]: ...


def parse_endpoint(text: str) -> Pod:
    """``host:port`` (or ``[v6]:port``) as a :class:`Pod` named after itself."""
    text = text.strip()
    host, sep, port_text = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"endpoint must be host:port, got {text!r}")
    return Pod(name=text, host=host, port=int(port_text))


@dataclass
class StaticSource:
    pods: list[Pod]

    @property
    def description(self) -> str:
        return f"{len(self.pods)} static endpoint(s)"

    def list_pods(self) -> list[Pod]:
        return list(self.pods)


@dataclass
class FileSource:
    """Endpoints, one ``host:port`` per line, re-read at every listing.

    Removing a line is how a static pod "goes away"; a missing file means no
    pods. Lines starting with ``#`` are comments.
    """

    path: Path

    @property
    def description(self) -> str:
        return f"endpoints listed in {self.path}"

    def list_pods(self) -> list[Pod]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise SourceError(f"cannot read {self.path}: {exc.strerror}", 2) from None
        try:
            return [
                parse_endpoint(line)
                for line in text.splitlines()
                if line.strip() and not line.lstrip().startswith("#")
            ]
        except ValueError as exc:
            raise SourceError(f"{self.path}: {exc}", 2) from None


class KubernetesSource:
    """Running pods matching a label selector, through the Kubernetes API.

    Terminating pods (with a deletion timestamp) and finished pods do not
    count: they take no new work and Helm is not waiting on them. A pod that
    has no IP yet cannot be running work; it is gated once it has one.
    """

    def __init__(
        self,
        selector: str,
        port: str,
        namespace: str | None = None,
        kubeconfig: str | None = None,
        request_timeout: float = 10.0,
    ) -> None:
        from kubernetes import client, config

        try:
            if kubeconfig is None and _in_cluster():
                config.load_incluster_config()  # type: ignore[no-untyped-call]
            else:
                config.load_kube_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        except config.ConfigException as exc:
            raise SourceError(f"no Kubernetes configuration: {exc}", 2) from None
        self.namespace = namespace or _default_namespace(kubeconfig)
        self.selector = selector
        self.port = port
        self.request_timeout = request_timeout
        self.api = client.CoreV1Api()

    @property
    def description(self) -> str:
        return f"pods matching {self.selector!r} in namespace {self.namespace!r}"

    def list_pods(self) -> list[Pod]:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            pods = self.api.list_namespaced_pod(
                self.namespace,
                label_selector=self.selector,
                _request_timeout=self.request_timeout,
            )
        except ApiException as exc:
            if exc.status in (401, 403):
                raise SourceError(
                    f"forbidden: cannot list pods in namespace {self.namespace!r}; the hook's "
                    f"ServiceAccount needs verb 'list' on resource 'pods' (API: "
                    f"{_api_message(exc)})",
                    3,
                ) from None
            raise SourceError(f"listing pods failed: {exc.status} {_api_message(exc)}", 1) from exc
        except HTTPError as exc:
            # The API server itself being away is transient: the caller retries.
            raise SourceError(f"Kubernetes API unreachable: {exc}", 1) from exc
        found = []
        for item in pods.items:
            meta, status = item.metadata, item.status
            if meta is None or status is None or meta.deletion_timestamp is not None:
                continue
            if status.phase not in ("Pending", "Running") or not status.pod_ip:
                continue
            port = self._resolve_port(item)
            if port is None:
                raise SourceError(f"pod {meta.name} has no container port named {self.port!r}", 2)
            found.append(Pod(name=str(meta.name), host=str(status.pod_ip), port=port))
        return sorted(found)

    def _resolve_port(self, pod: Any) -> int | None:
        if self.port.isdigit():
            return int(self.port)
        for container in pod.spec.containers:
            for port in container.ports or []:
                if port.name == self.port:
                    return int(port.container_port)
        return None


def _in_cluster() -> bool:
    import os

    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and SERVICE_ACCOUNT_NAMESPACE.exists()


def _default_namespace(kubeconfig: str | None) -> str:
    if kubeconfig is None and SERVICE_ACCOUNT_NAMESPACE.exists():
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    from kubernetes import config

    try:
        _, context = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=kubeconfig
        )
    except (config.ConfigException, OSError):
        return "default"
    namespace: str = (context or {}).get("context", {}).get("namespace") or "default"
    return namespace


def _api_message(exc: Any) -> str:
    import json

    try:
        return str(json.loads(exc.body)["message"])
    except (TypeError, ValueError, KeyError):
        return str(exc.reason)
