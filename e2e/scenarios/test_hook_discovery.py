"""The hook's pod discovery against a real API server, and its answer to missing RBAC."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from e2e.kube import wait_for
from e2e.stage import Stage
from upgrade_gate.hook.pods import KubernetesSource

pytestmark = pytest.mark.e2e


def _selector(release: str) -> str:
    return (
        "app.kubernetes.io/component=app,app.kubernetes.io/instance="
        f"{release},app.kubernetes.io/name=upgrade-gate"
    )


def test_discovery_finds_the_release_pods_and_skips_terminating_ones(
    stage: Stage,
) -> None:
    stage.install("v1", replicaCount=2)
    kubeconfig = str(stage.kube.kubeconfig)
    source = KubernetesSource(_selector("demo"), "http", stage.namespace, kubeconfig)
    found = source.list_pods()
    pods = stage.app_pods()
    assert sorted(p.name for p in found) == sorted(p.metadata.name for p in pods)
    assert {p.port for p in found} == {8080}  # the port named "http", resolved from the spec
    assert {p.host for p in found} == {p.status.pod_ip for p in pods}
    # What the chart's hook asks for: the management port where a pod has one.
    preferred = KubernetesSource(
        _selector("demo"), "management,http", stage.namespace, kubeconfig
    ).list_pods()
    assert {p.port for p in preferred} == {8081}

    # A pod that is terminating (held by its operation in flight) does not count.
    doomed = pods[0].metadata.name
    stage.start_operation(doomed, 120)
    stage.kube.core.delete_namespaced_pod(doomed, stage.namespace)
    wait_for(
        lambda: stage.kube.pod(stage.namespace, doomed).metadata.deletion_timestamp,
        timeout=30,
        what="the pod terminating",
    )
    names = {p.name for p in source.list_pods()}
    assert doomed not in names
    assert pods[1].metadata.name in names


def test_another_release_in_the_namespace_is_not_gated(stage: Stage) -> None:
    stage.install("v1")
    other = Stage(
        stage.kube,
        stage.helm,
        stage.images,
        stage.namespace,
        stage.artifacts,
        stage.phases,
        release="other",
    )
    other.install("v1")
    source = KubernetesSource(
        _selector("demo"), "http", stage.namespace, str(stage.kube.kubeconfig)
    )
    assert [p.name for p in source.list_pods()] == [stage.only_pod().metadata.name]


@pytest.mark.parametrize(
    ("verbs", "resource"),
    [([], "pods"), (["get"], "pods"), (["list"], "replicasets")],
    ids=["no-role", "get-only", "pods-only"],
)
def test_missing_rbac_exits_3_naming_the_verb_and_resource(
    stage: Stage, tmp_path: Path, verbs: list[str], resource: str
) -> None:
    kube, namespace = stage.kube, stage.namespace
    kube.core.create_namespaced_service_account(namespace, {"metadata": {"name": "nobody"}})
    if verbs:
        rbac = kube.rbac
        rbac.create_namespaced_role(
            namespace,
            {
                "metadata": {"name": "too-little"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": verbs}],
            },
        )
        rbac.create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": "too-little"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "too-little",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "nobody", "namespace": namespace}],
            },
        )
    token = kube.core.create_namespaced_service_account_token(
        "nobody", namespace, {"spec": {"expirationSeconds": 600}}
    ).status.token
    config = _kubeconfig_with_token(kube.kubeconfig, token, tmp_path / "nobody.kubeconfig")

    result = _hook(stage, "--timeout", "20", kubeconfig=config)
    assert result.returncode == 3, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert f"cannot list {resource}" in last
    assert f"needs verb 'list' on resource '{resource}'" in last
    assert "system:serviceaccount:" in last  # the API server's own words
    assert "Traceback" not in result.stderr


def test_a_pod_without_an_address_blocks_the_gate_until_the_deadline(
    stage: Stage,
) -> None:
    stage.install("v1")
    (app,) = stage.app_pods()
    # A pod of the release that can never be scheduled: Pending, no IP.
    template = stage.pod_template()
    stuck = {
        "metadata": {"name": "stuck", "labels": template["metadata"]["labels"]},
        "spec": {**template["spec"], "nodeSelector": {"upgrade-gate/no-such-node": "true"}},
    }
    stuck_uid = stage.kube.core.create_namespaced_pod(stage.namespace, stuck).metadata.uid
    # The gate runs where the chart runs it, in the cluster: it reaches the pods at their
    # addresses, which a process on the host (a GitHub runner's, kind's pod network) may not.
    # Its deadline is long enough that the pods are listed on a loaded machine (4 s once was
    # not: the listing was still unanswered at the deadline).
    upgrade = stage.upgrade("v2", gate={"timeoutSeconds": 12})
    assert stage.finish(upgrade) != 0, upgrade.output
    verdicts = [line for line in upgrade.output.splitlines() if "deadline of 12s" in line]
    assert verdicts, upgrade.output
    # The pod with an address was gated (fenced, idle, its fence released at the end): only
    # the stuck one held the upgrade, and nothing changed.
    assert (
        "deadline of 12s reached, fences released: "
        "1 pod(s) not idle: stuck (not yet gated: no IP yet (Pending))"
    ) in verdicts[-1], verdicts[-1]
    assert {p.metadata.uid for p in stage.app_pods()} == {app.metadata.uid, stuck_uid}
    assert stage.status() == "failed"
    served = stage.kube.call(stage.namespace, app.metadata.name, "GET", "/version").body
    assert served.get("version") == "v1", served
    # Gone, it no longer counts.
    stage.kube.core.delete_namespaced_pod("stuck", stage.namespace, grace_period_seconds=0)
    source = KubernetesSource(
        _selector("demo"), "http", stage.namespace, str(stage.kube.kubeconfig)
    )
    wait_for(
        lambda: [p.name for p in source.list_pods()] == [stage.only_pod().metadata.name],
        timeout=30,
        what="the stuck pod no longer counted",
    )


def test_a_deleted_pod_is_waited_for_until_its_replacement_exists(stage: Stage) -> None:
    stage.install("v1", replicaCount=2)
    source = KubernetesSource(
        _selector("demo"), "http", stage.namespace, str(stage.kube.kubeconfig)
    )
    pods = stage.app_pods()
    stage.kube.core.delete_namespaced_pod(
        pods[0].metadata.name, stage.namespace, grace_period_seconds=0
    )
    # Whenever it lists, the hook counts two: the survivor and the replacement,
    # as a placeholder before the ReplicaSet has created it, then as a pod.
    for _ in range(20):
        listed = source.list_pods()
        assert len(listed) == 2, listed
        assert pods[0].metadata.uid not in {p.uid for p in listed}


def test_pods_on_the_new_template_are_not_gated_unless_some_will_go(stage: Stage) -> None:
    stage.install("v1", replicaCount=2)
    pods = stage.app_pods()
    (on_template,) = {p.metadata.annotations["upgrade-gate/template-hash"] for p in pods}
    kubeconfig = str(stage.kube.kubeconfig)

    def listed(template_hash: str, replicas: int) -> list[str]:
        source = KubernetesSource(
            _selector("demo"),
            "http",
            stage.namespace,
            kubeconfig,
            template_hash=template_hash,
            replicas=replicas,
        )
        return [p.name for p in source.list_pods()]

    names = sorted(p.metadata.name for p in pods)
    assert listed(on_template, 2) == []  # a config-only upgrade: nothing to gate
    assert listed("0123456789abcdef", 2) == names  # another template: all are replaced
    assert listed(on_template, 1) == names  # a scale-down: any of them may go


def _hook(
    stage: Stage, *args: str, kubeconfig: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "upgrade_gate.hook",
            "wait",
            "--selector",
            _selector("demo"),
            "--namespace",
            stage.namespace,
            "--kubeconfig",
            str(kubeconfig or stage.kube.kubeconfig),
            # As the chart runs it: the sample serves the gate on its management port only.
            "--port",
            "management,http",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )


def _kubeconfig_with_token(admin: Path, token: str, path: Path) -> Path:
    source = yaml.safe_load(admin.read_text())
    cluster = source["clusters"][0]["cluster"]
    if "certificate-authority" in cluster:
        ca = Path(cluster["certificate-authority"]).read_bytes()
        cluster = {**cluster, "certificate-authority-data": base64.b64encode(ca).decode()}
        del cluster["certificate-authority"]
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": cluster}],
                "users": [{"name": "nobody", "user": {"token": token}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "nobody"}}],
                "current-context": "c",
            }
        )
    )
    return path
