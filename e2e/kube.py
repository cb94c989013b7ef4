"""The harness's hands on the cluster: namespaces, pods, and the app through the API server.

The app is reached through the API server's pod proxy
(``/api/v1/namespaces/NS/pods/NAME:PORT/proxy/...``): it works the same on
every provider, needs no port-forward, and addresses one pod exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import requests
from kubernetes import client, config, dynamic
from kubernetes.client.exceptions import ApiException

from e2e.cluster.wait import eventually

T = TypeVar("T")
APP_PORT = 8080


def _selector(release: str, component: str) -> str:
    """The chart's labels for one component of a release: ``app`` or ``upgrade-gate`` (hooks)."""
    return f"app.kubernetes.io/instance={release},app.kubernetes.io/component={component}"


class Kube:
    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig)
        )
        # Any: the harness reads API objects dynamically, and asserts on what
        # matters; the client's Optional-everywhere models would only add noise.
        self.core: Any = client.CoreV1Api(self.api_client)
        self.batch: Any = client.BatchV1Api(self.api_client)
        self.rbac: Any = client.RbacAuthorizationV1Api(self.api_client)
        self.apps: Any = client.AppsV1Api(self.api_client)
        self._session, self._proxy_base = _proxy_session(self.api_client.configuration)
        self._dynamic: Any = None  # made at the first look at an arbitrary object

    # -- namespaces -----------------------------------------------------------

    def create_namespace(self, name: str, labels: dict[str, str]) -> None:
        body = client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels))
        self.core.create_namespace(body)

    def delete_namespace(self, name: str) -> None:
        try:
            self.core.delete_namespace(name, propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise

    # -- any object -------------------------------------------------------------

    def object(self, namespace: str, api_version: str, kind: str, name: str) -> Any:
        """Any namespaced object as a plain dict (None if there is none), found by the API
        server's discovery, as kubectl finds it."""
        if self._dynamic is None:
            self._dynamic = dynamic.DynamicClient(self.api_client)  # type: ignore[no-untyped-call]
        try:
            resource = self._dynamic.resources.get(api_version=api_version, kind=kind)
        except dynamic.exceptions.ResourceNotFoundError:
            raise LookupError(f"the API server serves no {kind} in {api_version}") from None
        try:
            found = resource.get(name=name, namespace=namespace)
        except dynamic.exceptions.NotFoundError:
            return None
        return found.to_dict()

    # -- pods -----------------------------------------------------------------

    def app_pods(self, namespace: str, release: str) -> list[Any]:
        """Running app pods of a release, not terminating, oldest first."""
        pods = self.core.list_namespaced_pod(
            namespace,
            label_selector=_selector(release, "app"),
        ).items
        live = [p for p in pods if p.metadata.deletion_timestamp is None]
        return sorted(live, key=lambda p: p.metadata.creation_timestamp)

    def pod(self, namespace: str, name: str) -> Any:
        try:
            return self.core.read_namespaced_pod(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def exec(
        self, namespace: str, pod: str, command: list[str], timeout: float = 30
    ) -> tuple[int, str]:
        """Run ``command`` in the pod's first container (kubectl exec): exit code, output."""
        from kubernetes.stream import stream

        # Its own client: stream() swaps the client's transport while it runs,
        # which would hijack the recorder's watches on the shared one.
        api = client.CoreV1Api(
            config.new_client_from_config(config_file=str(self.kubeconfig))  # type: ignore[no-untyped-call]
        )
        session = stream(
            api.connect_get_namespaced_pod_exec,
            pod,
            namespace,
            command=command,
            stdout=True,
            stderr=True,
            stdin=False,
            tty=False,
            _preload_content=False,
        )
        try:
            session.run_forever(timeout=timeout)
            output = str(session.read_stdout() or "") + str(session.read_stderr() or "")
            code = session.returncode
        finally:
            session.close()
        return (-1 if code is None else int(code)), output

    def rollout_done(self, namespace: str, release: str) -> bool:
        """The release's Deployment has rolled out its template: every pod updated and available.

        Helm 4's ``--wait`` can return before that: its watcher may start from a
        Deployment read a moment stale, which looks rolled out already.
        """
        deployments = self.apps.list_namespaced_deployment(
            namespace, label_selector=_selector(release, "app")
        ).items
        for deployment in deployments:
            want, status = deployment.spec.replicas or 0, deployment.status
            if (status.observed_generation or 0) < (deployment.metadata.generation or 0):
                return False
            counts = (status.replicas, status.updated_replicas, status.available_replicas)
            if any((count or 0) != want for count in counts):
                return False
        return True

    def hook_jobs(self, namespace: str, release: str) -> list[Any]:
        selector = _selector(release, "upgrade-gate")
        return list(self.batch.list_namespaced_job(namespace, label_selector=selector).items)

    def hook_pods(self, namespace: str, release: str) -> list[Any]:
        """The hook's pods: a hook Job's, or the bare hook Pod (gate.hookKind)."""
        selector = _selector(release, "upgrade-gate")
        return list(self.core.list_namespaced_pod(namespace, label_selector=selector).items)

    # -- the app, through the pod proxy ----------------------------------------

    def call(
        self,
        namespace: str,
        pod: str,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10,
    ) -> AppAnswer:
        url = f"{self._proxy_base}/namespaces/{namespace}/pods/{pod}:{APP_PORT}/proxy{path}"
        try:
            response = self._session.request(
                method, url, json=body, headers=headers, timeout=timeout
            )
        except requests.RequestException as exc:
            return AppAnswer(status=0, body={"error": f"unreachable: {exc}"})
        try:
            parsed = response.json()
        except ValueError:
            parsed = {"raw": response.text}
        return AppAnswer(
            status=response.status_code, body=parsed if isinstance(parsed, dict) else {}
        )

    def is_fenced(self, namespace: str, pod: str, timeout: float = 10) -> bool:
        """The pod's own answer: ``GET /upgradeable`` says it is draining (fenced)."""
        answer = self.call(namespace, pod, "GET", "/upgradeable", timeout=timeout)
        return bool(answer.body.get("draining"))

    def start_operation(self, namespace: str, pod: str, seconds: float) -> str:
        answer = self.call(namespace, pod, "POST", "/operations", {"seconds": seconds})
        assert answer.status == 202, f"starting an operation on {pod}: {answer}"
        op_id: str = answer.body["id"]
        return op_id

    def operations(self, namespace: str, pod: str) -> list[dict[str, Any]] | None:
        """The pod's operation records, or None if it does not answer."""
        answer = self.call(namespace, pod, "GET", "/operations", timeout=5)
        if answer.status != 200:
            return None
        ops: list[dict[str, Any]] = answer.body.get("operations", [])
        return ops


@dataclass(frozen=True)
class AppAnswer:
    status: int
    body: dict[str, Any]


def _proxy_session(cfg: Any) -> tuple[requests.Session, str]:
    """A requests session holding the kubeconfig's credentials, for the pod proxy.

    The client's own request plumbing changed shape between releases; its
    Configuration (host, CA, client certificate, bearer token) did not.
    """
    session = requests.Session()
    # Not the environment's CA bundle or proxies: this is the cluster's own
    # API server, with the kubeconfig's CA (requests lets the environment
    # override a session's verify otherwise).
    session.trust_env = False
    session.verify = cfg.ssl_ca_cert if cfg.verify_ssl and cfg.ssl_ca_cert else cfg.verify_ssl
    if cfg.cert_file:
        session.cert = (cfg.cert_file, cfg.key_file)
    token = cfg.get_api_key_with_prefix("authorization") or cfg.get_api_key_with_prefix(
        "BearerToken"
    )
    if token:
        session.headers["Authorization"] = token
    return session, f"{cfg.host.rstrip('/')}/api/v1"


def wait_for(
    check: Callable[[], T | Literal[False] | None],
    timeout: float,
    what: str,
    describe: Callable[[], str] | None = None,
) -> T:
    """:func:`e2e.cluster.wait.eventually` at the pace of a cluster: each try is an API call."""
    return eventually(check, timeout=timeout, interval=0.25, what=what, describe=describe)


def is_ready(pod: Any) -> bool:
    """A pod that runs and whose Ready condition is True (the kubelet's readiness, as the
    Service's endpoints see it)."""
    return pod.status.phase == "Running" and any(
        c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or [])
    )
