"""The hook's RBAC is least privilege, and the app gets no API access at all.

The hook lists pods (their IPs, their template hash) and ReplicaSets (a
replacement pod not created yet counts too), and gets one ConfigMap by name
(the pod template the upgrade rolls out, gate.skipUnchangedPods). It never
watches or writes.

Its identity (ServiceAccount, Role, RoleBinding) is rendered twice: as regular
objects of the release, and as hooks for the upgrades where those cannot serve
yet. ``helm template`` looks nothing up, so it renders both; which one the hook
runs as on a real cluster is the e2e suite's to show (test_hook_identity.py).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.chart.helm import (
    NAMESPACE,
    Helm,
    Manifest,
    annotations_of,
    find,
    gate_hook,
    hook_identity,
    identity,
    one,
    pod_template,
    release_job,
)

pytestmark = pytest.mark.chart

EVERYTHING = {
    "gate": {"preRollback": True},
    "podDisruptionBudget": {"enabled": True},
}
RBAC_KINDS = ("ServiceAccount", "Role", "RoleBinding")
RULES = [
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
    {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["list"]},
    {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": ["rel-upgrade-gate-template"],
        "verbs": ["get"],
    },
]


@pytest.fixture(scope="module")
def everything(helm: Helm) -> list[Manifest]:
    return helm.template(EVERYTHING)


def both(docs: list[Manifest], kind: str) -> list[Manifest]:
    """The regular object, then the hook one."""
    return [identity(docs, kind), hook_identity(docs, kind)]


def test_each_identity_is_one_role_listing_pods_and_replicasets_only(
    everything: list[Manifest],
) -> None:
    assert len(find(everything, "Role")) == 2
    for role in both(everything, "Role"):
        assert role["rules"] == RULES
    # The ConfigMap it may read is the one the chart renders for it.
    assert one(everything, "ConfigMap")["metadata"]["name"] == RULES[2]["resourceNames"][0]


def test_gating_every_pod_reads_no_configmap(helm: Helm) -> None:
    docs = helm.template({"gate": {"skipUnchangedPods": False}})
    for role in both(docs, "Role"):
        assert role["rules"] == RULES[:2]


def test_the_regular_identity_is_not_a_hook_and_the_other_one_is(
    everything: list[Manifest],
) -> None:
    for kind in RBAC_KINDS:
        regular, hook = both(everything, kind)
        assert regular["metadata"]["name"] == "rel-upgrade-gate-gate"
        assert hook["metadata"]["name"] == "rel-upgrade-gate-hook"
        assert "helm.sh/hook" not in annotations_of(regular)
        # Not component upgrade-gate: the cleanup command for hook leftovers
        # (NOTES, README) selects on it and must leave the release's own objects.
        assert regular["metadata"]["labels"]["app.kubernetes.io/component"] == (
            "upgrade-gate-identity"
        )
        assert hook["metadata"]["labels"]["app.kubernetes.io/component"] == "upgrade-gate"


def test_nothing_cluster_wide(everything: list[Manifest]) -> None:
    kinds = {doc["kind"] for doc in everything}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}


def test_no_wildcard_or_write_verb_anywhere(everything: list[Manifest]) -> None:
    for role in find(everything, "Role"):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(field, []), (role["metadata"]["name"], field)
            if rule["verbs"] == ["get"]:  # one object, by name
                assert rule["resources"] == ["configmaps"]
                assert len(rule["resourceNames"]) == 1
                continue
            assert set(rule["verbs"]) == {"list"}, "the hook never watches or writes"
            assert "secrets" not in rule["resources"], "the token comes from env, not the API"


def test_each_binding_gives_its_role_to_its_account_only(everything: list[Manifest]) -> None:
    accounts, roles, bindings = (both(everything, kind) for kind in RBAC_KINDS)
    for account, role, binding in zip(accounts, roles, bindings, strict=True):
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": role["metadata"]["name"],
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": NAMESPACE}
        ]


def test_with_nothing_in_the_cluster_the_hooks_run_as_the_hook_identity(
    everything: list[Manifest],
) -> None:
    # What `helm template` (no lookup) renders, and a first upgrade from a
    # chart without the regular identity: the one made as hooks.
    account = hook_identity(everything, "ServiceAccount")["metadata"]["name"]
    for job in (gate_hook(everything), release_job(everything)):
        assert pod_template(job)["spec"]["serviceAccountName"] == account


def test_app_pods_carry_no_api_credentials(everything: list[Manifest]) -> None:
    spec = pod_template(one(everything, "Deployment"))["spec"]
    assert spec["automountServiceAccountToken"] is False
    for account in find(everything, "ServiceAccount"):
        assert spec.get("serviceAccountName") != account["metadata"]["name"], (
            "the app must not borrow the hook's rights"
        )


def test_hook_service_accounts_mount_nothing_by_default(everything: list[Manifest]) -> None:
    # Only the hook pods opt in; anything else using an account gets no token.
    for account in find(everything, "ServiceAccount"):
        assert account["automountServiceAccountToken"] is False


# -- the Role against what the hook's code calls -----------------------------------

APP = Path(__file__).resolve().parents[2] / "app"
API_CALL = re.compile(
    r"^(?P<verb>list|read|watch|create|patch|replace|delete)_namespaced_(?P<kind>[a-z_]+?)"
    r"(?:_status)?$"
)
GROUPS = {"CoreV1Api": "", "AppsV1Api": "apps"}
# The hook's own client (upgrade_gate/hook/kubeapi.py) names API paths: /api/v1/... or
# /apis/GROUP/V/...
API_PATH = re.compile(
    r"^/api(?:s/(?P<group>[a-z0-9.-]+))?/v[0-9a-z]+/namespaces/\{\}/(?P<resource>[a-z]+)"
    r"(?:/\{\})?$"
)
# Its methods, by the verb each one needs.
PATH_VERBS = {"_list": "list", "list": "list", "get": "get"}


def _path_of(node: ast.expr) -> str | None:
    """An f-string or string argument as a path, with ``{}`` for its values."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(str(v.value) if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def api_calls() -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) of every namespaced API call the app makes.

    Through the kubernetes client (``list_namespaced_pod``...) or through the
    hook's own client, which names API paths (``/api/v1/namespaces/{ns}/pods``).
    """
    clients: dict[str, str] = {}  # attribute holding a client -> its API group
    methods: list[tuple[str, str]] = []  # (client attribute, method)
    paths: set[tuple[str, str, str]] = set()  # (apiGroup, resource, verb) of API paths
    for source in sorted(APP.rglob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                called = node.value.func
                name = called.attr if isinstance(called, ast.Attribute) else None
                for target in node.targets:
                    if name in GROUPS and isinstance(target, ast.Attribute):
                        clients[target.attr] = GROUPS[name]
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Attribute)
                and API_CALL.match(node.attr)
            ):
                methods.append((node.value.attr, node.attr))
            if isinstance(node, ast.Call):
                for arg in node.args:
                    path = _path_of(arg)
                    if path is None or not (match := API_PATH.match(path)):
                        continue
                    called = node.func
                    method = called.attr if isinstance(called, ast.Attribute) else ""
                    assert method in PATH_VERBS, f"{source}: {method}({path}): which verb?"
                    paths.add((match["group"] or "", match["resource"], PATH_VERBS[method]))
    calls = set(paths)
    for holder, method in methods:
        match = API_CALL.match(method)
        assert match
        assert holder in clients, f"{holder}.{method}: which API group?"
        resource = match["kind"].replace("_", "") + "s"
        calls.add((clients[holder], resource, match["verb"]))
    return calls


def test_the_role_grants_exactly_what_the_hook_calls(everything: list[Manifest]) -> None:
    # Least privilege that still works: a call the Role lacks fails every
    # upgrade with exit 3 (forbidden); a grant no call uses is privilege for nothing.
    calls = api_calls()
    assert calls == {
        ("", "pods", "list"),
        ("apps", "replicasets", "list"),
        ("", "configmaps", "get"),
    }, "the hook changed"
    for role in find(everything, "Role"):
        granted = {
            (group, resource, verb)
            for rule in role["rules"]
            for group in rule["apiGroups"]
            for resource in rule["resources"]
            for verb in rule["verbs"]
        }
        assert granted == calls, role["metadata"]["name"]
