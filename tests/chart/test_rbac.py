"""The hook's RBAC is least privilege, and the app gets no API access at all.

The hook only lists: pods (their IPs, their template hash) and ReplicaSets (a
replacement pod not created yet counts too). It never gets, watches or writes.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.chart.helm import Helm, Manifest, find, gate_job, one, pod_template, release_job

pytestmark = pytest.mark.chart

EVERYTHING = {
    "gate": {"preRollback": True},
    "podDisruptionBudget": {"enabled": True},
}


@pytest.fixture(scope="module")
def everything(helm: Helm) -> list[Manifest]:
    return helm.template(EVERYTHING)


def test_one_role_listing_pods_and_replicasets_only(everything: list[Manifest]) -> None:
    role = one(everything, "Role")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
        {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["list"]},
    ]


def test_nothing_cluster_wide(everything: list[Manifest]) -> None:
    kinds = {doc["kind"] for doc in everything}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}


def test_no_wildcard_or_write_verb_anywhere(everything: list[Manifest]) -> None:
    for role in find(everything, "Role"):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(field, []), (role["metadata"]["name"], field)
            assert set(rule["verbs"]) == {"list"}, "the hook never gets, watches or writes"
            assert "secrets" not in rule["resources"], "the token comes from env, not the API"


def test_binding_gives_the_role_to_the_hook_only(everything: list[Manifest]) -> None:
    binding = one(everything, "RoleBinding")
    role = one(everything, "Role")
    account = one(everything, "ServiceAccount")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert [(s["kind"], s["name"]) for s in binding["subjects"]] == [
        ("ServiceAccount", account["metadata"]["name"])
    ]
    for job in (gate_job(everything), release_job(everything)):
        assert pod_template(job)["spec"]["serviceAccountName"] == account["metadata"]["name"]


def test_app_pods_carry_no_api_credentials(everything: list[Manifest]) -> None:
    spec = pod_template(one(everything, "Deployment"))["spec"]
    assert spec["automountServiceAccountToken"] is False
    account = one(everything, "ServiceAccount")["metadata"]["name"]
    assert spec.get("serviceAccountName") != account, "the app must not borrow the hook's rights"


def test_hook_service_account_mounts_nothing_by_default(everything: list[Manifest]) -> None:
    # Only the Job's pod opts in; anything else using the account gets no token.
    assert one(everything, "ServiceAccount")["automountServiceAccountToken"] is False


# -- the Role against what the hook's code calls -----------------------------------

APP = Path(__file__).resolve().parents[2] / "app"
API_CALL = re.compile(
    r"^(?P<verb>list|read|watch|create|patch|replace|delete)_namespaced_(?P<kind>[a-z_]+?)"
    r"(?:_status)?$"
)
GROUPS = {"CoreV1Api": "", "AppsV1Api": "apps"}
# The hook's own client (app/hook/kubeapi.py) names API paths: /api/v1/... or /apis/GROUP/V/...
API_PATH = re.compile(
    r"^/api(?:s/(?P<group>[a-z0-9.-]+))?/v[0-9a-z]+/namespaces/\{\}/(?P<resource>[a-z]+)$"
)
# Its methods, by the verb each one needs.
PATH_VERBS = {"_list": "list", "list": "list"}


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
    assert calls == {("", "pods", "list"), ("apps", "replicasets", "list")}, "the hook changed"
    granted = {
        (group, resource, verb)
        for rule in one(everything, "Role")["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert granted == calls
