"""The post-rollback Job: lifts the fences on the pods a rollback keeps.

The pre-upgrade gate leaves the pods it let go fenced for ``holdSeconds``; a
rollback keeps them, and nothing else would lift those fences before the lease
runs out. The Job runs ``python3 -m upgrade_gate.hook release`` with the gate's identity and
pod, only where there can be fences to lift.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.chart.helm import (
    RELEASE,
    Helm,
    Manifest,
    annotations_of,
    container,
    flag,
    gate_hook,
    hook_events,
    hooks,
    hooks_running,
    pod_template,
    rolled_out,
    template_hash,
)
from upgrade_gate.hook.cli import build_parser

pytestmark = pytest.mark.chart

RBAC_KINDS = ["ServiceAccount", "Role", "RoleBinding"]


def release_jobs(docs: list[Manifest]) -> list[Manifest]:
    return hooks_running(docs, "release")


@pytest.mark.parametrize(
    ("gate_values", "expected"),
    [
        ({}, True),
        ({"preRollback": True}, True),
        ({"skipUnchangedPods": False}, True),
        ({"releaseOnRollback": False}, False),
        # Without fences there is nothing to lift.
        ({"fence": False, "leaseSeconds": 1, "pollSeconds": 60}, False),
        ({"enabled": False}, False),
        ({"enabled": False, "releaseOnRollback": True}, False),
    ],
    ids=str,
)
def test_the_release_job_exists_only_where_there_are_fences_to_lift(
    helm: Helm, gate_values: dict[str, Any], expected: bool
) -> None:
    docs = helm.template({"gate": gate_values})
    assert len(release_jobs(docs)) == int(expected)
    # The hook's identity is created on post-rollback for the release Job and
    # for nothing else: an empty hook phase on every rollback is noise at best.
    # So is the ConfigMap naming the template rolled back to (skipUnchangedPods).
    on_post_rollback = [doc["kind"] for doc in hooks(docs) if "post-rollback" in hook_events(doc)]
    template = [] if gate_values.get("skipUnchangedPods") is False else ["ConfigMap"]
    assert sorted(on_post_rollback) == (sorted([*RBAC_KINDS, *template, "Job"]) if expected else [])


def test_it_runs_after_a_rollback_only(default_render: list[Manifest]) -> None:
    (job,) = release_jobs(default_render)
    assert hook_events(job) == {"post-rollback"}
    assert job["metadata"]["name"] == f"{RELEASE}-upgrade-gate-release"


def test_it_is_the_gates_pod_with_other_arguments(helm: Helm) -> None:
    # Same ServiceAccount (the Role allows what 'release' lists), image, pull
    # policy, token, security context, scheduling: only the arguments differ
    # (from the gate as a Job: a bare Pod carries its own deadline too).
    docs = helm.template({"gate": {"hookKind": "Job"}})
    (job,) = release_jobs(docs)
    gate, release = (copy.deepcopy(pod_template(j)) for j in (gate_hook(docs), job))
    assert release["spec"]["containers"][0].pop("args")[0] == "release"
    assert gate["spec"]["containers"][0].pop("args")[0] == "wait"
    assert release == gate


def test_same_pod_with_every_hook_pod_value(helm: Helm) -> None:
    docs = helm.template(
        {
            "image": {"tag": "2.0.0"},
            "imagePullSecrets": [{"name": "pull"}],
            "priorityClassName": "high",
            "podSecurityContext": {"runAsUser": 20000},
            "securityContext": {"runAsUser": 20000},
            "gate": {
                "hookKind": "Job",
                "image": {"repository": "hook", "pullPolicy": "Always"},
                "logLevel": "DEBUG",
                "resources": {"limits": {"memory": "128Mi"}},
                "podAnnotations": {"a": "b"},
                "nodeSelector": {"kubernetes.io/os": "linux"},
                "tolerations": [{"key": "k", "operator": "Exists"}],
                "affinity": {"nodeAffinity": {}},
            },
        }
    )
    (job,) = release_jobs(docs)
    gate, release = (copy.deepcopy(pod_template(j)) for j in (gate_hook(docs), job))
    for template in (gate, release):
        del template["spec"]["containers"][0]["args"]
    assert release == gate
    assert container(job, "gate")["image"] == "hook:0.1.0"


def test_it_gives_up_soon_and_retries_little(default_render: list[Manifest]) -> None:
    # Lifting fences takes one request per pod; a rollback must not wait long
    # for it (an unreachable pod's lease runs out on its own).
    (job,) = release_jobs(default_render)
    gate = gate_hook(default_render)
    assert 0 < job["spec"]["activeDeadlineSeconds"] <= 60
    assert job["spec"]["activeDeadlineSeconds"] < gate["spec"]["activeDeadlineSeconds"]
    assert job["spec"]["backoffLimit"] <= 1
    assert pod_template(job)["spec"]["restartPolicy"] == "Never"


@pytest.mark.parametrize(
    "gate_values",
    [
        {},
        {"timeoutSeconds": 30, "activeDeadlineSeconds": 45, "helmTimeoutSeconds": 46},
        {"timeoutSeconds": 1, "activeDeadlineSeconds": 2, "helmTimeoutSeconds": 3},
    ],
    ids=str,
)
def test_it_ends_before_helm_stops_waiting(helm: Helm, gate_values: dict[str, int]) -> None:
    # The same rule as the gate's: the Job fails on its own before helm's
    # --timeout, so helm reports the Job's failure, not "timed out waiting".
    docs = helm.template({"gate": gate_values})
    (job,) = release_jobs(docs)
    helm_timeout = annotations_of(gate_hook(docs))["upgrade-gate/helm-timeout"]
    assert job["spec"]["activeDeadlineSeconds"] < int(helm_timeout.removesuffix("s"))


@pytest.mark.parametrize(
    "values",
    [{}, {"image": {"tag": "2.0.0"}}, {"gate": {"skipUnchangedPods": False}}],
    ids=str,
)
def test_the_hook_program_accepts_the_rendered_arguments(
    helm: Helm, values: dict[str, Any]
) -> None:
    # The same parser the image runs: a flag 'release' does not know would
    # fail every rollback with exit 2.
    docs = helm.template(values)
    (job,) = release_jobs(docs)
    release = container(job, "gate")
    assert release["command"] == ["python3", "-m", "upgrade_gate.hook"]
    parsed = build_parser().parse_args(release["args"])
    assert parsed.command == "release"
    assert parsed.selector == flag(container(gate_hook(docs), "gate")["args"], "--selector")
    assert parsed.port == "management,http"
    # The template the rollback goes back to, from the ConfigMap of the same revision;
    # with gate.skipUnchangedPods false, none: every pod's fence is lifted (a pod the
    # rollback replaces is terminating, and refuses work on SIGTERM anyway).
    if values.get("gate", {}).get("skipUnchangedPods", True):
        assert parsed.template_from == f"{RELEASE}-upgrade-gate-template"
        assert rolled_out(docs, job) == (template_hash(docs), 2)
    else:
        assert parsed.template_from is None
        assert rolled_out(docs, job) is None
    assert parsed.namespace is None, "the namespace comes from the ServiceAccount"
    assert parsed.token_env == "UPGRADE_GATE_TOKEN"


def test_exact_release_command(default_render: list[Manifest]) -> None:
    (job,) = release_jobs(default_render)
    assert container(job, "gate")["args"] == [
        "release",
        "--selector",
        f"app.kubernetes.io/component=app,app.kubernetes.io/instance={RELEASE},"
        "app.kubernetes.io/name=upgrade-gate",
        "--port",
        "management,http",
        "--template-from",
        f"{RELEASE}-upgrade-gate-template",
        "--template-revision",
        "1",
    ]
