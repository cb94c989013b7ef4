"""The hook's RBAC is least privilege, and the app gets no API access at all."""

from __future__ import annotations

import pytest

from tests.chart.helm import Helm, Manifest, find, one, pod_template

pytestmark = pytest.mark.chart

EVERYTHING = {
    "gate": {"preRollback": True},
    "podDisruptionBudget": {"enabled": True},
}


@pytest.fixture(scope="module")
def everything(helm: Helm) -> list[Manifest]:
    return helm.template(EVERYTHING)


def test_one_role_reading_pods_only(everything: list[Manifest]) -> None:
    role = one(everything, "Role")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
    ]


def test_nothing_cluster_wide(everything: list[Manifest]) -> None:
    kinds = {doc["kind"] for doc in everything}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}


def test_no_wildcard_or_write_verb_anywhere(everything: list[Manifest]) -> None:
    for role in find(everything, "Role"):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames"):
                assert "*" not in rule.get(field, []), (role["metadata"]["name"], field)
            assert set(rule["verbs"]) <= {"get", "list", "watch"}
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
    job = one(everything, "Job")
    assert pod_template(job)["spec"]["serviceAccountName"] == account["metadata"]["name"]


def test_app_pods_carry_no_api_credentials(everything: list[Manifest]) -> None:
    spec = pod_template(one(everything, "Deployment"))["spec"]
    assert spec["automountServiceAccountToken"] is False
    account = one(everything, "ServiceAccount")["metadata"]["name"]
    assert spec.get("serviceAccountName") != account, "the app must not borrow the hook's rights"


def test_hook_service_account_mounts_nothing_by_default(everything: list[Manifest]) -> None:
    # Only the Job's pod opts in; anything else using the account gets no token.
    assert one(everything, "ServiceAccount")["automountServiceAccountToken"] is False
