"""The dependency chart (chart/charts/upgrade-gate-hook) and a chart that is not ours using it.

The dependency renders the gate's objects for any chart: rendered alone with a selector,
it must give the hook, its identity and RBAC, the token Secret and the rollback Job as
the upgrade-gate chart does, refuse what cannot work with a schema error or one line, and
leave the sample chart's render as it was. ``examples/batch-worker`` is rendered after a
real ``helm dependency build`` on a copy.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.helm import (
    CHART,
    NAMESPACE,
    RELEASE,
    TEMPLATE_HASH,
    Helm,
    Manifest,
    annotations_of,
    container,
    env,
    find,
    flag,
    gate_hook,
    hook_events,
    hook_identity,
    hooks_on,
    identity,
    labels_of,
    one,
    pod_template,
    release_job,
    rolled_out,
    token_secret,
)
from tests.chart.test_schema import required_gaps
from upgrade_gate.hook.cli import build_parser

pytestmark = pytest.mark.chart

ROOT = CHART.parent
DEPENDENCY = CHART / "charts" / "upgrade-gate-hook"
EXAMPLE = ROOT / "examples" / "batch-worker"
SELECT = {
    "selector": {
        "matchLabels": {"app": "worker", "app.kubernetes.io/instance": "{{ .Release.Name }}"}
    }
}
HOOK_LABEL = "app.kubernetes.io/component"


def render(helm: Helm, values: dict[str, Any] | None = None) -> list[Manifest]:
    return helm.template({**SELECT, **(values or {})}, chart=DEPENDENCY)


def refusal(helm: Helm, values: dict[str, Any]) -> str:
    return helm.template_error(values, chart=DEPENDENCY)


def matches(selector: str, labels: dict[str, str]) -> bool:
    """A label selector of ``k=v`` and ``k!=v`` terms, as the API server reads it."""
    for term in selector.split(","):
        if "!=" in term:
            key, value = term.split("!=")
            if labels.get(key) == value:
                return False
        else:
            key, value = term.split("=")
            if labels.get(key) != value:
                return False
    return True


# -- alone: the gate's objects --------------------------------------------------------


def test_it_renders_the_gate_for_the_pods_the_selector_names(helm: Helm) -> None:
    docs = render(helm, {"port": "web"})
    hook = gate_hook(docs)
    # auto: a bare Pod under Helm 4, a Job under Helm 3 (the upgrade-gate chart's rule).
    assert hook["kind"] == ("Pod" if helm.name == "helm4" else "Job")
    assert hook["metadata"]["name"] == f"{RELEASE}-upgrade-gate-hook"
    args = container(hook, "gate")["args"]
    assert args[0] == "wait"
    assert flag(args, "--selector") == (
        f"app.kubernetes.io/component!=upgrade-gate,app.kubernetes.io/instance={RELEASE},app=worker"
    )
    assert flag(args, "--port") == "web"
    assert [flag(args, f) for f in ("--timeout", "--lease", "--hold", "--poll")] == [
        "180",
        "30",
        "120",
        "10",
    ]
    # This chart cannot see the parent's pod template: the hook reads it from the ConfigMap
    # the parent renders (templateConfigMap), of this very revision; none here.
    assert "--template-hash" not in args
    assert "--replicas" not in args
    assert flag(args, "--template-from") == f"{RELEASE}-upgrade-gate-template"
    assert flag(args, "--template-revision") == "1"
    assert not find(docs, "ConfigMap")
    assert rolled_out(docs, hook) is None  # alone: every pod is gated
    assert hook_events(hook) == {"pre-upgrade"}
    assert annotations_of(hook)["upgrade-gate/helm-timeout"] == "300s"
    assert container(hook, "gate")["command"] == ["python3", "-m", "upgrade_gate.hook"]
    assert token_secret(hook, "gate") == {
        "secretName": f"{RELEASE}-upgrade-gate-token",
        "key": "token",
        "optional": True,
    }
    secret = one(docs, "Secret", f"{RELEASE}-upgrade-gate-token")
    assert len(secret["data"]["token"]) > 40
    job = release_job(docs)
    assert hook_events(job) == {"post-rollback"}
    assert flag(container(job, "gate")["args"], "--selector") == flag(args, "--selector")
    assert one(docs, "NetworkPolicy", f"{RELEASE}-upgrade-gate-hook")


def test_the_hook_never_selects_its_own_pods(helm: Helm) -> None:
    # A selector of the release alone would match the hook's pods too (they carry it).
    docs = render(
        helm, {"selector": {"matchLabels": {"app.kubernetes.io/instance": "{{ .Release.Name }}"}}}
    )
    hook = gate_hook(docs)
    selector = flag(container(hook, "gate")["args"], "--selector")
    for doc in [hook, release_job(docs)]:
        assert labels_of(pod_template(doc))[HOOK_LABEL] == "upgrade-gate"
        assert not matches(selector, labels_of(pod_template(doc)))
    assert matches(selector, {"app.kubernetes.io/instance": RELEASE, "app": "anything"})


@pytest.mark.parametrize(("port", "arg"), [(8081, "8081"), ("management,http", "management,http")])
def test_the_port_is_a_name_or_a_number(helm: Helm, port: Any, arg: str) -> None:
    docs = render(helm, {"port": port})
    assert flag(container(gate_hook(docs), "gate")["args"], "--port") == arg
    assert flag(container(release_job(docs), "gate")["args"], "--port") == arg


def test_the_hook_image_has_the_shape_of_the_main_charts(helm: Helm) -> None:
    image = {"repository": "registry.example/hook", "tag": "2.0.0", "pullPolicy": "Always"}
    gate = container(gate_hook(render(helm, {"image": image})), "gate")
    assert gate["image"] == "registry.example/hook:2.0.0"
    assert gate["imagePullPolicy"] == "Always"
    digest = "sha256:" + "a" * 64
    gate = container(gate_hook(render(helm, {"image": {**image, "digest": digest}})), "gate")
    assert gate["image"] == f"registry.example/hook:2.0.0@{digest}"
    default = container(gate_hook(render(helm)), "gate")
    chart = yaml.safe_load((DEPENDENCY / "Chart.yaml").read_text())
    assert default["image"] == f"upgrade-gate-hook:{chart['appVersion']}"


def test_the_identity_is_the_upgrade_gate_charts(helm: Helm) -> None:
    docs = render(helm)
    for kind in ("ServiceAccount", "Role", "RoleBinding"):
        assert identity(docs, kind)["metadata"]["name"] == f"{RELEASE}-upgrade-gate-gate"
        # helm template looks nothing up: the hook brings its own, as hooks.
        made = hook_identity(docs, kind)
        assert made["metadata"]["name"] == f"{RELEASE}-upgrade-gate-hook"
        assert hook_events(made) == {"pre-upgrade", "post-rollback"}
    rules = identity(docs, "Role")["rules"]
    assert rules == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
        {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["list"]},
        # skipUnchangedPods: the one ConfigMap naming the pod template, read, nothing else.
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [f"{RELEASE}-upgrade-gate-template"],
            "verbs": ["get"],
        },
    ]
    assert hook_identity(docs, "Role")["rules"] == rules
    weights = {
        doc["kind"]: int(annotations_of(doc)["helm.sh/hook-weight"])
        for doc in hooks_on(docs, "pre-upgrade")
    }
    hook_kind = gate_hook(docs)["kind"]
    assert weights["ServiceAccount"] < weights["Role"] < weights["RoleBinding"] < weights[hook_kind]


def test_the_same_safety_options_as_the_upgrade_gate_chart(helm: Helm) -> None:
    docs = render(
        helm,
        {
            "timeoutSeconds": 600,
            "leaseSeconds": 20,
            "holdSeconds": 60,
            "pollSeconds": 30,
            "fence": False,
            "preRollback": True,
            "hookKind": "Pod",
            "drainToken": {"existingSecret": "ops-token", "key": "drain"},
        },
    )
    hook = gate_hook(docs)
    args = container(hook, "gate")["args"]
    assert [flag(args, f) for f in ("--timeout", "--lease", "--hold", "--poll")] == [
        "600",
        "20",
        "60",
        "30",
    ]
    assert "--no-fence" in args
    assert hook["kind"] == "Pod"
    assert hook["spec"]["activeDeadlineSeconds"] == 660
    assert hook_events(hook) == {"pre-upgrade", "pre-rollback"}
    assert token_secret(hook, "gate")["secretName"] == "ops-token"
    assert not find(docs, "Secret")
    # No fence, no fences to lift after a rollback.
    assert not [d for d in find(docs, "Job") if container(d, "gate")["args"][0] == "release"]


def test_enabled_false_renders_nothing(helm: Helm) -> None:
    assert helm.template({"enabled": False}, chart=DEPENDENCY) == []


def test_skip_unchanged_pods_false_reads_no_configmap_and_may_read_none(helm: Helm) -> None:
    docs = render(helm, {"skipUnchangedPods": False})
    for hook in (gate_hook(docs), release_job(docs)):
        args = container(hook, "gate")["args"]
        assert not {"--template-from", "--template-revision", "--template-hash"} & set(args)
    for role in find(docs, "Role"):
        assert [r["resources"] for r in role["rules"]] == [["pods"], ["replicasets"]]


@pytest.mark.parametrize("subcommand", ["wait", "release"])
def test_the_hook_program_accepts_the_template_arguments(helm: Helm, subcommand: str) -> None:
    # The same parser the image runs: a flag it does not know fails every upgrade (exit 2).
    docs = render(helm)
    hook = gate_hook(docs) if subcommand == "wait" else release_job(docs)
    parsed = build_parser().parse_args(container(hook, "gate")["args"])
    assert parsed.command == subcommand
    assert parsed.template_from == f"{RELEASE}-upgrade-gate-template"
    assert parsed.template_revision == 1
    assert parsed.template_hash is None


# -- refusals ------------------------------------------------------------------------------

FAILS: list[tuple[dict[str, Any], str]] = [
    ({}, "selector.matchLabels is empty: set the labels of the pods to gate"),
    (
        {"selector": {"matchLabels": {HOOK_LABEL: "upgrade-gate"}}},
        "selects app.kubernetes.io/component=upgrade-gate, the hook's own pods",
    ),
    (
        {"selector": {"matchLabels": {"app": "{{ .Release.Name }} x"}}},
        'selector.matchLabels.app renders "rel x", which is not a label value',
    ),
    ({**SELECT, "leaseSeconds": 5, "pollSeconds": 10}, "leaseSeconds (5) must exceed half"),
    (
        {**SELECT, "timeoutSeconds": 300, "activeDeadlineSeconds": 300},
        "activeDeadlineSeconds (300) must be longer than timeoutSeconds (300)",
    ),
    (
        {**SELECT, "helmTimeoutSeconds": 200},
        "helmTimeoutSeconds (200) must be longer than the hook's activeDeadlineSeconds (240)",
    ),
    (
        {**SELECT, "drainToken": {"value": "x" * 20, "existingSecret": "mine"}},
        "drainToken.value and drainToken.existingSecret are both set",
    ),
]


@pytest.mark.parametrize(("values", "message"), FAILS, ids=[m[:40] for _, m in FAILS])
def test_what_cannot_work_is_refused_in_one_line(
    helm: Helm, values: dict[str, Any], message: str
) -> None:
    stderr = refusal(helm, values)
    lines = [line for line in stderr.splitlines() if message in line]
    assert lines, stderr
    assert "upgrade-gate-hook: " in lines[0]


SCHEMA: list[tuple[dict[str, Any], str]] = [
    ({"port": 0}, "/port"),
    ({"port": "Not A Name"}, "/port"),
    ({"port": "a-name-longer-than-15"}, "/port"),
    ({"selector": {"matchLabels": {"app": 1}}}, "/selector/matchLabels/app"),
    ({"selector": {"matchLabels": {"not a key": "x"}}}, "invalid propertyName 'not a key'"),
    ({"selector": {"matchExpressions": []}}, "matchExpressions"),
    ({"hookKind": "Deployment"}, "/hookKind"),
    ({"timeoutSeconds": 0}, "/timeoutSeconds"),
    ({"timeoutSeconds": "3m"}, "/timeoutSeconds"),
    ({"pollSeconds": 61}, "/pollSeconds"),
    ({"fence": "false"}, "/fence"),
    ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ({"image": {"digest": "sha256:short"}}, "/image/digest"),
    ({"drainToken": {"value": "short"}}, "/drainToken/value"),
    ({"outputLogPolicy": ["always"]}, "/outputLogPolicy"),
    ({"enabled": None}, "enabled"),
    ({"timeout": 60}, "timeout"),
]


@pytest.mark.parametrize(("values", "field"), SCHEMA, ids=[f"{f}={v}" for v, f in SCHEMA])
def test_the_schema_refuses(helm: Helm, values: dict[str, Any], field: str) -> None:
    message = refusal(helm, {**SELECT, **values})
    assert "schema" in message
    assert field in message


def test_every_value_with_a_default_is_required() -> None:
    schema = json.loads((DEPENDENCY / "values.schema.json").read_text())
    defaults = yaml.safe_load((DEPENDENCY / "values.yaml").read_text())
    assert required_gaps(schema, defaults) == []


def test_lint_strict_is_clean(helm: Helm) -> None:
    for values in (SELECT, {**SELECT, "preRollback": True, "hookKind": "Job"}):
        result = helm.lint(values, chart=DEPENDENCY)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "[WARNING]" not in result.stdout
        assert "[ERROR]" not in result.stdout


def test_it_is_versioned_with_the_main_chart() -> None:
    main = yaml.safe_load((CHART / "Chart.yaml").read_text())
    dependency = yaml.safe_load((DEPENDENCY / "Chart.yaml").read_text())
    assert dependency["type"] == "application"
    assert (dependency["version"], dependency["appVersion"]) == (
        main["version"],
        main["appVersion"],
    )
    (entry,) = main["dependencies"]
    assert (entry["name"], entry["version"]) == (dependency["name"], dependency["version"])


# -- the sample chart, built on it (alias gate) ----------------------------------------


def test_the_sample_chart_gates_through_it_under_the_alias_gate(helm: Helm) -> None:
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    (entry,) = meta["dependencies"]
    assert entry["alias"] == "gate"
    # Off with gate.enabled, never with a condition: the pod template includes its templates.
    assert "condition" not in entry
    out = helm.run("template", RELEASE, str(CHART), "--namespace", NAMESPACE).stdout
    assert "# Source: upgrade-gate/charts/gate/templates/hook.yaml" in out
    assert not list((CHART / "templates").glob("gate-*job.yaml"))


def test_the_sample_chart_refuses_the_dependencys_own_name(helm: Helm) -> None:
    # Values under the chart's name would go nowhere: the gate is set under its alias.
    message = helm.template_error({"upgrade-gate-hook": {"enabled": False}})
    assert "upgrade-gate-hook" in message
    assert "schema" in message


# -- a chart that is not ours --------------------------------------------------------------


@contextmanager
def example(helm: Helm, edit: Any = None) -> Iterator[Path]:
    """examples/batch-worker and the dependency copied as they lie in the repository (the
    file:// path is relative), ``edit`` applied, and ``helm dependency build`` run."""
    with tempfile.TemporaryDirectory(prefix="example-") as tmp:
        chart = Path(tmp) / EXAMPLE.relative_to(ROOT)
        shutil.copytree(EXAMPLE, chart, ignore=shutil.ignore_patterns("charts", "Chart.lock"))
        shutil.copytree(DEPENDENCY, Path(tmp) / DEPENDENCY.relative_to(ROOT))
        if edit is not None:
            edit(chart)
        result = helm.run("dependency", "build", str(chart))
        assert (chart / "charts" / "upgrade-gate-hook-0.1.0.tgz").is_file(), result.stdout
        yield chart


def test_the_example_is_gated_through_the_dependency(helm: Helm) -> None:
    with example(helm) as chart:
        docs = helm.template(chart=chart)
        lint = helm.lint(chart=chart)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    workload = one(docs, "StatefulSet")
    pod_labels = labels_of(pod_template(workload))
    hook = gate_hook(docs)
    args = container(hook, "gate")["args"]
    # The hook gates the example's pods by its labels and its port name, and not itself.
    assert matches(flag(args, "--selector"), pod_labels)
    assert not matches(flag(args, "--selector"), labels_of(pod_template(hook)))
    assert flag(args, "--port") == "api"
    ports = {p["name"] for p in container(workload, "worker")["ports"]}
    assert ports == {"api"}
    # The worker reads the token from the Secret the dependency renders, as the hook does.
    secret = one(docs, "Secret")["metadata"]["name"]
    assert token_secret(workload, "worker") == {
        "secretName": secret,
        "key": "token",
        "optional": False,
    }
    assert token_secret(hook, "gate")["secretName"] == secret
    assert re.fullmatch(
        "[0-9a-f]{64}", annotations_of(pod_template(workload))["checksum/upgrade-gate-token"]
    )
    for kind in ("ServiceAccount", "Role", "RoleBinding"):
        assert identity(docs, kind)
    assert release_job(docs)


def test_the_token_checksum_follows_the_token_settings(helm: Helm) -> None:
    def checksum(values: dict[str, Any]) -> str:
        docs = helm.template(values, chart=chart)
        return annotations_of(pod_template(one(docs, "StatefulSet")))["checksum/upgrade-gate-token"]

    with example(helm) as chart:
        plain = checksum({})
        assert checksum({}) == plain  # a generated token is kept, not rolled
        assert checksum({"upgrade-gate-hook": {"drainToken": {"value": "t" * 20}}}) != plain


def test_the_example_without_the_gate_has_no_trace_of_it(helm: Helm) -> None:
    with example(helm) as chart:
        docs = helm.template({"upgrade-gate-hook": {"enabled": False}}, chart=chart)
    assert {doc["kind"] for doc in docs} == {"Service", "StatefulSet"}
    workload = one(docs, "StatefulSet")
    assert "UPGRADE_GATE_TOKEN_FILE" not in env(container(workload, "worker"))
    assert "checksum/upgrade-gate-token" not in annotations_of(pod_template(workload))


def test_the_named_templates_find_the_dependency_under_an_alias(helm: Helm) -> None:
    def alias(chart: Path) -> None:
        meta = yaml.safe_load((chart / "Chart.yaml").read_text())
        meta["dependencies"][0]["alias"] = "gate"
        (chart / "Chart.yaml").write_text(yaml.safe_dump(meta))
        values = yaml.safe_load((chart / "values.yaml").read_text())
        values["gate"] = values.pop("upgrade-gate-hook")
        (chart / "values.yaml").write_text(yaml.safe_dump(values))

    with example(helm, alias) as chart:
        docs = helm.template({"gate": {"drainToken": {"existingSecret": "mine"}}}, chart=chart)
    assert token_secret(one(docs, "StatefulSet"), "worker")["secretName"] == "mine"
    assert token_secret(gate_hook(docs), "gate")["secretName"] == "mine"


def test_the_parent_notes_say_which_helm_timeout_to_use(helm: Helm) -> None:
    def notes_as_configmap(chart: Path) -> None:
        (chart / "templates" / "notes.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n"
            'data:\n  notes: {{ include "upgrade-gate-hook.notes" . | toJson }}\n'
        )

    with example(helm, notes_as_configmap) as chart:
        docs = helm.template(chart=chart)
    notes = one(docs, "ConfigMap", "notes")["data"]["notes"]
    assert f"helm upgrade {RELEASE} <chart> --namespace {NAMESPACE} --timeout 300s" in notes
    assert "app.kubernetes.io/name=batch-worker" in notes


# -- the pod template, passed by the parent (skipUnchangedPods) -----------------------------


def test_the_example_passes_its_pod_template_to_the_hook(helm: Helm) -> None:
    with example(helm) as chart:
        docs = helm.template({"replicas": 3}, chart=chart)
    workload = one(docs, "StatefulSet")
    hook, job = gate_hook(docs), release_job(docs)
    configmap = one(docs, "ConfigMap", f"{RELEASE}-upgrade-gate-template")
    # What the hook will read is the hash the pods carry and the replicas the upgrade keeps.
    carried = annotations_of(pod_template(workload))[TEMPLATE_HASH]
    assert re.fullmatch("[0-9a-f]{16}", carried)
    assert rolled_out(docs, hook) == rolled_out(docs, job) == (carried, 3)
    assert configmap["data"]["revision"] == "1"
    # A hook of the events that read it, made before the identity and the hook, and gone
    # with them when they succeed (after a failure, the next one's before-hook-creation).
    assert hook_events(configmap) == hook_events(hook_identity(docs, "Role"))
    assert hook_events(configmap) == {"pre-upgrade", "post-rollback"}
    weights = {
        doc["kind"]: int(annotations_of(doc)["helm.sh/hook-weight"])
        for doc in hooks_on(docs, "pre-upgrade")
    }
    assert weights["ConfigMap"] < weights["ServiceAccount"] < weights[hook["kind"]]
    assert annotations_of(configmap)["helm.sh/hook-delete-policy"] == (
        "before-hook-creation,hook-succeeded"
    )
    assert labels_of(configmap)[HOOK_LABEL] == "upgrade-gate"


def test_the_examples_hash_follows_its_pod_template_only(helm: Helm) -> None:
    def carried(values: dict[str, Any]) -> str:
        docs = helm.template(values, chart=chart)
        hash_ = annotations_of(pod_template(one(docs, "StatefulSet")))[TEMPLATE_HASH]
        assert rolled_out(docs, gate_hook(docs)) == (hash_, values.get("replicas", 1))
        return str(hash_)

    with example(helm) as chart:
        plain = carried({})
        # A change that no pod sees: the pods stay, and the hook leaves them alone.
        assert carried({"replicas": 2}) == plain
        assert carried({"upgrade-gate-hook": {"timeoutSeconds": 300}}) == plain
        # A change of the pod template: every pod is replaced, and gated.
        assert carried({"image": {"tag": "0.2.0"}}) != plain
        assert carried({"drainSeconds": 30}) != plain


def test_pre_rollback_and_skip_unchanged_pods_follow_into_the_configmap(helm: Helm) -> None:
    with example(helm) as chart:
        values = {"upgrade-gate-hook": {"preRollback": True, "releaseOnRollback": False}}
        docs = helm.template(values, chart=chart)
        assert hook_events(one(docs, "ConfigMap")) == {"pre-upgrade", "pre-rollback"}
        docs = helm.template({"upgrade-gate-hook": {"skipUnchangedPods": False}}, chart=chart)
        assert not find(docs, "ConfigMap")
        assert rolled_out(docs, gate_hook(docs)) is None


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ('(dict "context" . "replicas" 1)', ".template must be your pod template"),
        ('(dict "context" . "template" "x")', ".replicas must be your workload's replica count"),
        ('(dict "context" . "template" "x" "replicas" "two")', 'got "two"'),
    ],
    ids=["no-template", "no-replicas", "bad-replicas"],
)
def test_the_configmap_template_refuses_what_it_cannot_pass_on(
    helm: Helm, call: str, message: str
) -> None:
    def broken(chart: Path) -> None:
        (chart / "templates" / "gate-template.yaml").write_text(
            '{{- include "upgrade-gate-hook.templateConfigMap" ' + call + " }}\n"
        )

    with example(helm, broken) as chart:
        stderr = helm.template_error(chart=chart)
    assert message in stderr
