"""The hooks: which objects are hooks, on which events, in which order, and what they run.

Two hooks share the hook's ServiceAccount: the pre-upgrade gate (``app wait``;
a Job, or a bare Pod with ``gate.hookKind=Pod``, and ``auto`` chooses the Pod
when Helm 4 renders) and, with ``gate.releaseOnRollback`` and ``gate.fence``,
the post-rollback release Job (``app release``), which lifts the fences on
the pods that stay. Both read the pod template the upgrade rolls out from a
hook ConfigMap made before them (``gate.skipUnchangedPods``). They all come
from the dependency chart (alias ``gate``). Tests of what only a Job has
render ``hookKind: Job``.
"""

from __future__ import annotations

import pytest

from tests.chart.helm import (
    NAMESPACE,
    RELEASE,
    Helm,
    Manifest,
    annotations_of,
    chart_copy,
    container,
    find,
    flag,
    gate_hook,
    hook_events,
    hook_identity,
    hooks,
    hooks_on,
    labels_of,
    one,
    pod_template,
    release_job,
    rolled_out,
    selector_matches,
    template_hash,
    token_secret,
)
from upgrade_gate.hook.cli import build_parser

pytestmark = pytest.mark.chart

HOOK_KINDS = ["ConfigMap", "ServiceAccount", "Role", "RoleBinding", "Job"]
AS_JOB = {"gate": {"hookKind": "Job"}}
HOOK_NAME = f"{RELEASE}-upgrade-gate-hook"
RELEASE_JOB_NAME = f"{RELEASE}-upgrade-gate-release"
TEMPLATE_NAME = f"{RELEASE}-upgrade-gate-template"
RBAC_KINDS = {"ServiceAccount", "Role", "RoleBinding"}
DIGEST = "sha256:" + "a" * 64


def weight(doc: Manifest) -> int:
    return int(annotations_of(doc)["helm.sh/hook-weight"])


def test_the_hooks_are_the_jobs_and_their_rbac(helm: Helm) -> None:
    docs = helm.template(AS_JOB)
    found = sorted((doc["kind"], doc["metadata"]["name"]) for doc in hooks(docs))
    assert found == sorted(
        [
            *((kind, HOOK_NAME) for kind in HOOK_KINDS if kind != "ConfigMap"),
            ("ConfigMap", TEMPLATE_NAME),
            ("Job", RELEASE_JOB_NAME),
        ]
    )
    events = {(doc["kind"], doc["metadata"]["name"]): hook_events(doc) for doc in hooks(docs)}
    assert events == {
        # The hook's identity and the template's ConfigMap serve both Jobs: on both events.
        **{(kind, HOOK_NAME): {"pre-upgrade", "post-rollback"} for kind in RBAC_KINDS},
        ("ConfigMap", TEMPLATE_NAME): {"pre-upgrade", "post-rollback"},
        ("Job", HOOK_NAME): {"pre-upgrade"},
        ("Job", RELEASE_JOB_NAME): {"post-rollback"},
    }


@pytest.mark.parametrize("event", ["pre-upgrade", "post-rollback"])
def test_rbac_hooks_are_created_before_the_job(helm: Helm, event: str) -> None:
    # Helm creates an event's hooks in weight order and runs a Job's pod at
    # once: its ServiceAccount must exist by then, the binding and the
    # template's ConfigMap before the first API call.
    ordered = sorted(hooks_on(helm.template(AS_JOB), event), key=weight)
    assert [doc["kind"] for doc in ordered] == HOOK_KINDS
    assert len({weight(doc) for doc in ordered}) == len(HOOK_KINDS), "weights must be distinct"


def test_hook_weight_value_moves_the_whole_group(helm: Helm) -> None:
    docs = helm.template({"gate": {"hookWeight": 5}})
    weights = {doc["kind"]: weight(doc) for doc in hooks(docs) if doc["kind"] != "Job"}
    assert weight(gate_hook(docs)) == weight(release_job(docs)) == 5
    assert weights["ServiceAccount"] < weights["Role"] < weights["RoleBinding"] < 5


def test_no_leftover_can_block_the_next_upgrade(default_render: list[Manifest]) -> None:
    # Only hook-succeeded/hook-failed would leave an interrupted run's Job in
    # place, and the next upgrade would fail "already exists".
    for doc in hooks(default_render):
        policies = set(annotations_of(doc)["helm.sh/hook-delete-policy"].split(","))
        assert policies == {"before-hook-creation", "hook-succeeded"}, doc["kind"]


def test_helm_prints_the_hook_log(default_render: list[Manifest]) -> None:
    job = gate_hook(default_render)  # a Job or a Pod: Helm prints either's log
    policy = set(annotations_of(job)["helm.sh/hook-output-log-policy"].split(","))
    assert policy == {"hook-failed", "hook-succeeded"}


def test_job_retries_only_within_its_deadline(helm: Helm) -> None:
    job = gate_hook(helm.template(AS_JOB))
    assert job["spec"]["backoffLimit"] == 2
    assert job["spec"]["activeDeadlineSeconds"] > 0
    assert pod_template(job)["spec"]["restartPolicy"] == "Never"
    assert "ttlSecondsAfterFinished" not in job["spec"], "a failed Job is kept for its log"


def test_a_killed_hook_pod_is_replaced_and_the_hooks_verdicts_are_final(helm: Helm) -> None:
    rules = gate_hook(helm.template(AS_JOB))["spec"]["podFailurePolicy"]["rules"]
    assert {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]} in rules
    assert {
        "action": "FailJob",
        "onExitCodes": {"containerName": "gate", "operator": "In", "values": [1, 2, 3]},
    } in rules
    assert {
        "action": "Ignore",
        "onExitCodes": {"containerName": "gate", "operator": "In", "values": [143]},
    } in rules


def test_the_hook_can_be_a_bare_pod_with_the_same_command_and_deadline(helm: Helm) -> None:
    docs = helm.template({"gate": {"hookKind": "Pod", "podAnnotations": {"team": "a"}}})
    job = gate_hook(helm.template(AS_JOB))
    (pod,) = find(docs, "Pod")
    assert pod["metadata"]["name"] == HOOK_NAME
    assert not [d for d in find(docs, "Job") if d["metadata"]["name"] == HOOK_NAME]
    # Where the Job was: same events, weight, delete policy, log policy, helm timeout.
    expected = dict(annotations_of(job))
    expected["team"] = "a"
    assert annotations_of(pod) == expected
    assert labels_of(pod) == labels_of(job)
    # What it runs and how long it may: the Job's container, the Job's deadline.
    spec = pod["spec"]
    job_spec = pod_template(job)["spec"]
    assert spec["containers"] == job_spec["containers"]
    assert spec["activeDeadlineSeconds"] == job["spec"]["activeDeadlineSeconds"]
    assert spec["serviceAccountName"] == job_spec["serviceAccountName"]
    # Any failure fails the upgrade: a restarted hook would repeat its own
    # verdicts (deadline 1, usage 2, RBAC 3) until the pod's deadline.
    assert spec["restartPolicy"] == "Never"
    assert sorted(d["kind"] for d in hooks_on(docs, "pre-upgrade")) == sorted(
        ["ConfigMap", "ServiceAccount", "Role", "RoleBinding", "Pod"]
    )
    # The post-rollback release stays a Job.
    assert release_job(docs)["spec"]["activeDeadlineSeconds"] > 0


def test_pre_rollback_is_opt_in(helm: Helm, default_render: list[Manifest]) -> None:
    docs = helm.template({"gate": {"preRollback": True, "hookKind": "Job"}})
    # The gate and its RBAC run before a rollback too; the release Job stays post-rollback only.
    assert sorted(doc["kind"] for doc in hooks_on(docs, "pre-rollback")) == sorted(HOOK_KINDS)
    assert gate_hook(docs) in hooks_on(docs, "pre-rollback")
    assert hook_events(gate_hook(docs)) == {"pre-upgrade", "pre-rollback"}
    assert hook_events(release_job(docs)) == {"post-rollback"}
    assert hook_events(one(docs, "ConfigMap", TEMPLATE_NAME)) == {
        "pre-upgrade",
        "pre-rollback",
        "post-rollback",
    }
    for kind in RBAC_KINDS:
        assert hook_events(hook_identity(docs, kind)) == {
            "pre-upgrade",
            "pre-rollback",
            "post-rollback",
        }
    assert hooks_on(default_render, "pre-rollback") == []


def test_gate_off_renders_no_hook_at_all(helm: Helm) -> None:
    docs = helm.template({"gate": {"enabled": False}})
    assert hooks(docs) == []
    assert find(docs, "Job") == find(docs, "Role") == find(docs, "ServiceAccount") == []
    # The drain token comes with the gate (the dependency renders nothing): no fence to
    # take, no token to take it with, and no hook pod for a policy to hold.
    assert {doc["kind"] for doc in docs} == {"Deployment", "Service", "NetworkPolicy"}
    assert len(find(docs, "NetworkPolicy")) == 1, "the app's only"


def test_no_regular_object_is_a_hook(default_render: list[Manifest]) -> None:
    regular = [doc for doc in default_render if doc not in hooks(default_render)]
    assert sorted(doc["kind"] for doc in regular) == sorted(
        ["Deployment", "Service", "Secret", "NetworkPolicy", "NetworkPolicy", *RBAC_KINDS]
    )


@pytest.mark.parametrize("kind", ["Job", "Pod"])
def test_hook_kind_auto_is_a_pod_under_helm_4_and_a_job_under_helm_3(
    helm: Helm, default_render: list[Manifest], kind: str
) -> None:
    # Helm 3 takes a hook Pod deleted with --grace-period=0 for one that
    # succeeded (e2e: bare-pod-hook-force-deleted); Helm 4 fails such an upgrade.
    auto = gate_hook(default_render)["kind"]
    assert auto == ("Pod" if helm.name == "helm4" else "Job")
    assert gate_hook(helm.template({"gate": {"hookKind": kind}}))["kind"] == kind


def test_hook_kind_auto_is_a_job_for_a_gate_that_a_rollback_may_run(helm: Helm) -> None:
    # The stored pre-rollback hook runs at a later `helm rollback`, maybe with Helm 3.
    docs = helm.template({"gate": {"preRollback": True}})
    assert gate_hook(docs)["kind"] == "Job"


# -- the command ---------------------------------------------------------------


def test_exact_hook_command(default_render: list[Manifest]) -> None:
    gate = container(gate_hook(default_render), "gate")
    assert gate["command"] == ["python3", "-m", "upgrade_gate.hook"]
    assert gate["args"] == [
        "wait",
        "--selector",
        f"app.kubernetes.io/component=app,app.kubernetes.io/instance={RELEASE},"
        "app.kubernetes.io/name=upgrade-gate",
        "--port",
        "management,http",
        "--timeout",
        "180",
        "--lease",
        "30",
        "--hold",
        "120",
        "--poll",
        "10",
        # The pod template the upgrade rolls out: the ConfigMap rendered beside it, of
        # this revision (the dependency cannot see the Deployment's template itself).
        "--template-from",
        f"{RELEASE}-upgrade-gate-template",
        "--template-revision",
        "1",
    ]
    assert rolled_out(default_render, gate_hook(default_render)) == (
        template_hash(default_render),
        2,
    )


@pytest.mark.parametrize(
    "gate_values",
    [
        {},
        {"fence": False, "timeoutSeconds": 45, "holdSeconds": 0, "pollSeconds": 60},
        {"leaseSeconds": 600, "holdSeconds": 900, "timeoutSeconds": 3000},
        {"skipUnchangedPods": False},
        {"skipUnchangedPods": False, "fence": False, "leaseSeconds": 1},
    ],
    ids=["defaults", "no-fence", "long", "gate-every-pod", "gate-every-pod-no-fence"],
)
def test_the_hook_program_accepts_the_rendered_arguments(
    helm: Helm, gate_values: dict[str, object]
) -> None:
    # The same parser the image runs: a flag the chart renders and the hook
    # does not know would fail every upgrade with exit 2.
    docs = helm.template({"gate": gate_values, "replicaCount": 3})
    gate = container(gate_hook(docs), "gate")
    parsed = build_parser().parse_args(gate["args"])
    assert parsed.command == "wait"
    assert parsed.port == "management,http"
    assert parsed.timeout == gate_values.get("timeoutSeconds", 180)
    assert parsed.hold == gate_values.get("holdSeconds", 120)
    assert parsed.poll == gate_values.get("pollSeconds", 10)
    assert parsed.fence is gate_values.get("fence", True)
    if parsed.fence:
        assert parsed.lease > parsed.poll / 2, "the hook refuses a lease shorter than half a poll"
    assert parsed.template_hash is None
    assert parsed.replicas is None
    if gate_values.get("skipUnchangedPods", True):
        assert parsed.template_from == TEMPLATE_NAME
        assert parsed.template_revision == 1
        assert rolled_out(docs, gate_hook(docs)) == (template_hash(docs), 3)
    else:
        assert parsed.template_from is None
        assert rolled_out(docs, gate_hook(docs)) is None


def test_hook_runs_the_hook_image_of_the_charts_version_by_default(
    default_render: list[Manifest],
) -> None:
    app = container(one(default_render, "Deployment"), "app")
    assert app["image"] == "upgrade-gate-app:0.1.0"
    for job in (gate_hook(default_render), release_job(default_render)):
        gate = container(job, "gate")
        assert gate["image"] == "upgrade-gate-hook:0.1.0"
        assert gate["imagePullPolicy"] == app["imagePullPolicy"] == "IfNotPresent"


def test_the_app_image_values_do_not_move_the_hook(helm: Helm) -> None:
    # The app image carries no hook: pointing image.* elsewhere leaves the hook's own.
    docs = helm.template(
        {"image": {"repository": "registry.example/app", "tag": "2.0.0", "digest": DIGEST}}
    )
    app = container(one(docs, "Deployment"), "app")
    assert app["image"] == f"registry.example/app:2.0.0@{DIGEST}"
    for job in (gate_hook(docs), release_job(docs)):
        assert container(job, "gate")["image"] == "upgrade-gate-hook:0.1.0"


@pytest.mark.parametrize(
    ("hook_image", "expected"),
    [
        ({"repository": "registry.example/hook"}, "registry.example/hook:0.1.0"),
        ({"repository": "registry.example/hook", "tag": "2.0.0"}, "registry.example/hook:2.0.0"),
        ({"digest": DIGEST}, f"upgrade-gate-hook:0.1.0@{DIGEST}"),
        (
            {"repository": "registry.example:5000/team/hook", "tag": "1", "digest": DIGEST},
            f"registry.example:5000/team/hook:1@{DIGEST}",
        ),
    ],
    ids=["repository", "tag", "digest", "all"],
)
def test_hook_image_values(helm: Helm, hook_image: dict[str, str], expected: str) -> None:
    docs = helm.template({"image": {"tag": "9.9.9"}, "gate": {"image": hook_image}})
    for job in (gate_hook(docs), release_job(docs)):
        assert container(job, "gate")["image"] == expected


def test_notes_name_the_hook_image(helm: Helm) -> None:
    notes = helm.notes({"gate": {"image": {"repository": "registry.example/hook", "tag": "3"}}})
    assert "hook image               registry.example/hook:3  (gate.image;" in notes, notes


def test_hook_pull_policy_is_its_own(helm: Helm) -> None:
    # gate.image.pullPolicy, IfNotPresent by default: the dependency cannot see the app's.
    docs = helm.template({"image": {"pullPolicy": "Never"}})
    for job in (gate_hook(docs), release_job(docs)):
        assert container(job, "gate")["imagePullPolicy"] == "IfNotPresent"
    docs = helm.template(
        {"image": {"pullPolicy": "Never"}, "gate": {"image": {"pullPolicy": "Always"}}}
    )
    app = container(one(docs, "Deployment"), "app")
    assert app["imagePullPolicy"] == "Never"
    for job in (gate_hook(docs), release_job(docs)):
        assert container(job, "gate")["imagePullPolicy"] == "Always"


def test_hook_reads_the_token_and_tolerates_its_absence(default_render: list[Manifest]) -> None:
    # A first Argo CD sync runs the hook (PreSync) before the Secret exists;
    # with no pods there is nothing to fence, so the pod must still start.
    secret = one(default_render, "Secret")
    for job in (gate_hook(default_render), release_job(default_render)):
        assert token_secret(job, "gate") == {
            "secretName": secret["metadata"]["name"],
            "key": "token",
            "optional": True,
        }
    app_token = token_secret(one(default_render, "Deployment"), "app")
    assert app_token["optional"] is False, "the app must not start unfenceable"


# -- what the hook gates -------------------------------------------------------


def hook_selector(docs: list[Manifest]) -> str:
    return flag(container(gate_hook(docs), "gate")["args"], "--selector")


def test_selector_matches_the_app_pods_and_not_the_hook_pod(
    default_render: list[Manifest],
) -> None:
    selector = hook_selector(default_render)
    app_pod = labels_of(pod_template(one(default_render, "Deployment")))
    assert selector_matches(selector, app_pod)
    for job in (gate_hook(default_render), release_job(default_render)):
        hook_pod = labels_of(pod_template(job))
        assert not selector_matches(selector, hook_pod), "the hook would wait for itself"


def test_service_does_not_route_to_the_hook_pod(default_render: list[Manifest]) -> None:
    service_selector = one(default_render, "Service")["spec"]["selector"]
    app_pod = labels_of(pod_template(one(default_render, "Deployment")))
    assert service_selector.items() <= app_pod.items()
    for job in (gate_hook(default_render), release_job(default_render)):
        assert not service_selector.items() <= labels_of(pod_template(job)).items()


def test_selector_matches_pods_of_the_previous_chart_version(helm: Helm) -> None:
    # The hook of release N+1 gates the pods of release N: a selector that
    # includes anything versioned (app.kubernetes.io/version, helm.sh/chart)
    # would find no pods and let every upgrade through.
    with chart_copy() as old_chart:
        chart_yaml = old_chart / "Chart.yaml"
        text = chart_yaml.read_text()
        chart_yaml.write_text(
            text.replace("\nversion: 0.1.0", "\nversion: 0.0.1").replace(
                'appVersion: "0.1.0"', 'appVersion: "0.0.1"'
            )
        )
        old = helm.template({"image": {"tag": "old"}}, chart=old_chart)
    new = helm.template({"image": {"tag": "new"}})
    old_pod = labels_of(pod_template(one(old, "Deployment")))
    assert old_pod["app.kubernetes.io/version"] == "0.0.1", "the old chart copy did not take"
    assert selector_matches(hook_selector(new), old_pod)


def test_hook_sees_the_namespace_through_its_service_account(
    default_render: list[Manifest],
) -> None:
    for job in (gate_hook(default_render), release_job(default_render)):
        spec = pod_template(job)["spec"]
        assert spec["serviceAccountName"] == HOOK_NAME
        assert spec["automountServiceAccountToken"] is True
        assert "--namespace" not in container(job, "gate")["args"]
    binding = hook_identity(default_render, "RoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": HOOK_NAME, "namespace": NAMESPACE}
    ]
