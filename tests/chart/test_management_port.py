"""The management port: the probes and the hook use it, the Service does not expose it,
and a NetworkPolicy (on by default) admits only the release's hook pods to it.

No cluster here enforces NetworkPolicies (the local and kind clusters route
pods themselves), so what the policy admits is checked on the rendered object.
"""

from __future__ import annotations

import pytest

from tests.chart.helm import (
    RELEASE,
    Helm,
    Manifest,
    container,
    find,
    flag,
    gate_hook,
    labels_of,
    one,
    pod_template,
    release_job,
)

pytestmark = pytest.mark.chart


def ports(docs: list[Manifest]) -> dict[str, int]:
    app = container(one(docs, "Deployment"), "app")
    return {p["name"]: p["containerPort"] for p in app["ports"]}


def test_the_app_serves_the_management_port_its_container_declares(
    default_render: list[Manifest],
) -> None:
    app = container(one(default_render, "Deployment"), "app")
    assert int(flag(app["args"], "--management-port")) == ports(default_render)["management"]
    assert int(flag(app["args"], "--port")) == ports(default_render)["http"]


def test_the_probes_use_the_management_port(default_render: list[Manifest]) -> None:
    app = container(one(default_render, "Deployment"), "app")
    for probe in ("readinessProbe", "livenessProbe"):
        assert app[probe]["httpGet"]["port"] == "management", probe


def test_the_service_does_not_expose_the_management_port(default_render: list[Manifest]) -> None:
    service = one(default_render, "Service")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]


def test_the_hooks_prefer_the_management_port_and_fall_back_to_the_app_port(
    default_render: list[Manifest],
) -> None:
    # Pods of an earlier release have no management port: their app port serves the gate.
    for job in (gate_hook(default_render), release_job(default_render)):
        assert flag(container(job, "gate")["args"], "--port") == "management,http"


def policy(docs: list[Manifest], component: str = "app") -> Manifest:
    (found,) = [
        doc
        for doc in find(docs, "NetworkPolicy")
        if labels_of(doc)["app.kubernetes.io/component"] == component
    ]
    return found


def test_the_policy_selects_the_app_pods_only(default_render: list[Manifest]) -> None:
    selector = policy(default_render)["spec"]["podSelector"]["matchLabels"]
    app_labels = labels_of(pod_template(one(default_render, "Deployment")))
    assert selector.items() <= app_labels.items()
    for job in (gate_hook(default_render), release_job(default_render)):
        assert not selector.items() <= labels_of(pod_template(job)).items()
    assert policy(default_render)["spec"]["policyTypes"] == ["Ingress"]


def test_the_app_port_stays_open_to_all(default_render: list[Manifest]) -> None:
    rules = policy(default_render)["spec"]["ingress"]
    open_rules = [r for r in rules if "from" not in r]
    assert [p["port"] for r in open_rules for p in r["ports"]] == ["http"]


def test_the_management_port_admits_the_releases_hook_pods(
    default_render: list[Manifest],
) -> None:
    (rule,) = [r for r in policy(default_render)["spec"]["ingress"] if "from" in r]
    assert [p["port"] for p in rule["ports"]] == ["management"]
    (peer,) = rule["from"]
    assert set(peer) == {"podSelector"}, "pods of this namespace only"
    selector = peer["podSelector"]["matchLabels"]
    for job in (gate_hook(default_render), release_job(default_render)):
        assert selector.items() <= labels_of(pod_template(job)).items()
    assert (
        not selector.items() <= labels_of(pod_template(one(default_render, "Deployment"))).items()
    )
    assert "helm.sh/chart" not in selector, "a hook of another chart version must match too"


def test_more_peers_may_reach_the_management_port(helm: Helm) -> None:
    scraper = {"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}
    docs = helm.template({"networkPolicy": {"managementFrom": [scraper]}})
    (rule,) = [r for r in policy(docs)["spec"]["ingress"] if "from" in r]
    assert rule["from"][1:] == [scraper]


def test_the_hook_pods_admit_nothing(default_render: list[Manifest]) -> None:
    """They serve nothing; and checkov asks that every pod have a policy (CKV2_K8S_6)."""
    hooks = policy(default_render, "upgrade-gate")
    assert hooks["spec"]["policyTypes"] == ["Ingress"]
    assert "ingress" not in hooks["spec"], "no rule: no ingress at all"
    selector = hooks["spec"]["podSelector"]["matchLabels"]
    for job in (gate_hook(default_render), release_job(default_render)):
        assert selector.items() <= labels_of(pod_template(job)).items()
    assert (
        not selector.items() <= labels_of(pod_template(one(default_render, "Deployment"))).items()
    )


def test_the_policy_can_be_left_out(helm: Helm) -> None:
    # The app's (networkPolicy) and the hook pods' (the gate's own: gate.networkPolicy).
    docs = helm.template({"networkPolicy": {"enabled": False}})
    assert [p["metadata"]["name"] for p in find(docs, "NetworkPolicy")] == [
        f"{RELEASE}-upgrade-gate-hook"
    ]
    values = {"networkPolicy": {"enabled": False}, "gate": {"networkPolicy": {"enabled": False}}}
    assert find(helm.template(values), "NetworkPolicy") == []


def test_without_the_gate_the_management_port_admits_only_the_peers_given(helm: Helm) -> None:
    # No hook pods to admit: an empty `from` would admit every pod, not none.
    docs = helm.template({"gate": {"enabled": False}})
    (app,) = find(docs, "NetworkPolicy")
    assert [rule["ports"][0]["port"] for rule in app["spec"]["ingress"]] == ["http"]
    scraper = {"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}
    values = {"gate": {"enabled": False}, "networkPolicy": {"managementFrom": [scraper]}}
    docs = helm.template(values)
    (app,) = find(docs, "NetworkPolicy")
    assert app["spec"]["ingress"][1]["from"] == [scraper]


def test_peers_must_be_a_list(helm: Helm) -> None:
    with pytest.raises(Exception, match="managementFrom"):
        helm.template({"networkPolicy": {"managementFrom": "everyone"}})
