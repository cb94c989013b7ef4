"""The pod template's hash: on the app pods, and given to the hook Jobs.

The hook does not gate a pod whose ``upgrade-gate/template-hash`` annotation
equals the hash it is given (in the ConfigMap its ``--template-from`` names, of
its ``--template-revision``): the upgrade does not replace that pod. So the
hash must change with every change to the pod template (or the hook lets the
upgrade kill work on a pod it never gated) and with nothing else (or a
config-only upgrade fences pods for nothing, and the annotation itself
would roll them). The reference is the rendered pod template: two renders
whose pod templates are equal, the hash aside, must carry the same hash, and
two whose templates differ must not.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from e2e.cluster import tools
from tests.chart.helm import (
    TEMPLATE_HASH,
    Helm,
    Manifest,
    chart_copy,
    container,
    find,
    gate_hook,
    one,
    pod_template,
    release_job,
    rolled_out,
    template_hash,
)

pytestmark = pytest.mark.chart

# Upgrades that change objects other than the pod template: no pod is replaced.
CONFIG_ONLY: dict[str, dict[str, Any]] = {
    "gate.timeoutSeconds": {"gate": {"timeoutSeconds": 170}},
    "gate.holdSeconds": {"gate": {"holdSeconds": 30}},
    "gate.leaseSeconds": {"gate": {"leaseSeconds": 45}},
    "gate.pollSeconds": {"gate": {"pollSeconds": 20}},
    "gate.fence": {"gate": {"fence": False}},
    "gate.preRollback": {"gate": {"preRollback": True}},
    "gate.skipUnchangedPods": {"gate": {"skipUnchangedPods": False}},
    "gate.releaseOnRollback": {"gate": {"releaseOnRollback": False}},
    "gate.image": {"gate": {"image": {"repository": "hook", "tag": "9"}}},
    "gate.resources": {"gate": {"resources": {"requests": {"cpu": "1"}}}},
    "gate.podAnnotations": {"gate": {"podAnnotations": {"a": "b"}}},
    "gate.logLevel": {"gate": {"logLevel": "DEBUG"}},
    "gate.hookWeight": {"gate": {"hookWeight": 7}},
    "podDisruptionBudget.enabled": {"podDisruptionBudget": {"enabled": True}},
    "service.port": {"service": {"port": 8081}},
    "service.type": {"service": {"type": "LoadBalancer", "annotations": {"a": "b"}}},
    # The Deployment's, not the pods': a scale changes how many pods, not which.
    "replicaCount": {"replicaCount": 5},
    "strategy": {"strategy": {"type": "Recreate"}},
}

# Upgrades that change the pod template: every pod is replaced.
POD_TEMPLATE: dict[str, dict[str, Any]] = {
    "image.tag": {"image": {"tag": "2.0.0"}},
    "image.repository": {"image": {"repository": "registry.example/app"}},
    "image.digest": {"image": {"digest": "sha256:" + "b" * 64}},
    "image.pullPolicy": {"image": {"pullPolicy": "Always"}},
    "app.extraEnv": {"app": {"extraEnv": [{"name": "FEATURE", "value": "on"}]}},
    "app.threads": {"app": {"threads": 16}},
    "app.logLevel": {"app": {"logLevel": "DEBUG"}},
    "app.version": {"app": {"version": "2.0.0"}},
    "app.shutdownTimeoutSeconds": {"app": {"shutdownTimeoutSeconds": 60}},
    "app.preStopSleepSeconds": {"app": {"preStopSleepSeconds": 0}},
    "resources": {"resources": {"requests": {"cpu": "100m", "memory": "96Mi"}}},
    "podAnnotations": {"podAnnotations": {"example.com/owner": "team-a"}},
    "podLabels": {"podLabels": {"tier": "backend"}},
    "readinessProbe": {"readinessProbe": {"periodSeconds": 7}},
    "securityContext": {"securityContext": {"runAsUser": 20000}},
    "podSecurityContext": {"podSecurityContext": {"fsGroup": 10001}},
    "nodeSelector": {"nodeSelector": {"kubernetes.io/os": "linux"}},
    "tolerations": {"tolerations": [{"key": "k", "operator": "Exists"}]},
    "priorityClassName": {"priorityClassName": "high"},
    "imagePullSecrets": {"imagePullSecrets": [{"name": "pull"}]},
    "gate.drainToken.value": {"gate": {"drainToken": {"value": "t" * 32}}},
    "gate.drainToken.existingSecret": {"gate": {"drainToken": {"existingSecret": "ops-token"}}},
    # The drain token comes with the gate: off, the app's pods have none to read.
    "gate.enabled": {"gate": {"enabled": False}},
}


def template_without_hash(docs: list[Manifest]) -> Manifest:
    template = copy.deepcopy(pod_template(one(docs, "Deployment")))
    del template["metadata"]["annotations"][TEMPLATE_HASH]
    return template


def test_the_hash_is_16_hex_digits_on_the_pods(default_render: list[Manifest]) -> None:
    assert re.fullmatch(r"[0-9a-f]{16}", template_hash(default_render))


def test_every_render_gives_the_same_hash(helm: Helm) -> None:
    # A generated token differs on every render without a cluster; the pods
    # must not roll for it, nor the hook gate pods that stay.
    assert template_hash(helm.template()) == template_hash(helm.template())


def test_helm_3_and_helm_4_give_the_same_hash() -> None:
    # Moving a release from helm 3 to helm 4 must neither roll its pods (the
    # annotation is in the template) nor gate pods the upgrade keeps.
    values = {**POD_TEMPLATE["app.extraEnv"], **POD_TEMPLATE["tolerations"]}
    hashes = {
        name: template_hash(Helm(name, tools.path(name)).template(values))
        for name in ("helm3", "helm4")
    }
    assert hashes["helm3"] == hashes["helm4"], hashes


@pytest.mark.parametrize("change", sorted(CONFIG_ONLY))
def test_a_config_only_change_keeps_the_hash(
    helm: Helm, default_render: list[Manifest], change: str
) -> None:
    docs = helm.template(CONFIG_ONLY[change])
    assert template_without_hash(docs) == template_without_hash(default_render), (
        "not config-only: the pod template changed"
    )
    assert template_hash(docs) == template_hash(default_render)


@pytest.mark.parametrize("change", sorted(POD_TEMPLATE))
def test_a_pod_template_change_changes_the_hash(
    helm: Helm, default_render: list[Manifest], change: str
) -> None:
    docs = helm.template(POD_TEMPLATE[change])
    assert template_without_hash(docs) != template_without_hash(default_render), (
        "the change did not reach the pod template"
    )
    assert template_hash(docs) != template_hash(default_render)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({"image": {"tag": "1.0.0"}}, {"image": {"tag": "1.0.1"}}),
        (
            {"app": {"extraEnv": [{"name": "FEATURE", "value": "on"}]}},
            {"app": {"extraEnv": [{"name": "FEATURE", "value": "off"}]}},
        ),
        (
            {"resources": {"limits": {"memory": "256Mi"}}},
            {"resources": {"limits": {"memory": "512Mi"}}},
        ),
        ({"podAnnotations": {"a": "1"}}, {"podAnnotations": {"a": "2"}}),
        ({"podLabels": {"tier": "a"}}, {"podLabels": {"tier": "b"}}),
    ],
    ids=["tag", "env-value", "memory-limit", "annotation-value", "label-value"],
)
def test_one_value_changed_inside_the_template_changes_the_hash(
    helm: Helm, before: dict[str, Any], after: dict[str, Any]
) -> None:
    assert template_hash(helm.template(before)) != template_hash(helm.template(after))


def test_a_new_chart_version_changes_the_hash(helm: Helm) -> None:
    # The chart's version is in the pod labels: its pods are replaced, so gated.
    with chart_copy() as old_chart:
        chart_yaml = old_chart / "Chart.yaml"
        text = chart_yaml.read_text().replace("\nversion: 0.1.0", "\nversion: 0.0.1")
        chart_yaml.write_text(text)
        old = helm.template(chart=old_chart)
    assert pod_template(one(old, "Deployment"))["metadata"]["labels"]["helm.sh/chart"] == (
        "upgrade-gate-0.0.1"
    ), "the old chart copy did not take"
    assert template_hash(old) != template_hash(helm.template())


# -- what the hook Jobs are given ------------------------------------------------


@pytest.mark.parametrize("values", [{}, POD_TEMPLATE["image.tag"], {"replicaCount": 0}], ids=str)
def test_the_jobs_get_the_hash_the_pods_carry(helm: Helm, values: dict[str, Any]) -> None:
    docs = helm.template(values)
    expected = template_hash(docs)
    for job in (gate_hook(docs), release_job(docs)):
        found = rolled_out(docs, job)
        assert found is not None, job["metadata"]["name"]
        assert found[0] == expected, job["metadata"]["name"]


@pytest.mark.parametrize("replicas", [0, 1, 2, 7])
def test_the_gate_gets_the_replicas_the_upgrade_keeps(helm: Helm, replicas: int) -> None:
    docs = helm.template({"replicaCount": replicas})
    assert one(docs, "Deployment")["spec"]["replicas"] == replicas
    assert rolled_out(docs, gate_hook(docs)) == (template_hash(docs), replicas)


def test_gating_every_pod_drops_the_template(helm: Helm) -> None:
    docs = helm.template({"gate": {"skipUnchangedPods": False}})
    for job in (gate_hook(docs), release_job(docs)):
        args = container(job, "gate")["args"]
        assert not {"--template-hash", "--replicas", "--template-from"} & set(args)
        assert rolled_out(docs, job) is None
    assert find(docs, "ConfigMap") == []
    # The pods still carry the hash, for the next upgrade that uses it.
    assert re.fullmatch(r"[0-9a-f]{16}", template_hash(docs))


def test_the_configmap_is_of_the_revision_the_hook_expects(helm: Helm) -> None:
    # A ConfigMap left by a failed upgrade is of another revision: the hook gates every pod.
    docs = helm.template()
    (configmap,) = find(docs, "ConfigMap")
    stale = copy.deepcopy(configmap)
    stale["data"]["revision"] = "0"
    assert rolled_out(docs, gate_hook(docs)) is not None
    assert rolled_out([d for d in docs if d is not configmap] + [stale], gate_hook(docs)) is None
