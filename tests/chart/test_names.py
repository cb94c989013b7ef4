"""Names are scoped to the release; labels follow app.kubernetes.io/*."""

from __future__ import annotations

import re

import pytest

from tests.chart.helm import (
    Helm,
    Manifest,
    container,
    find,
    flag,
    gate_hook,
    hooks,
    labels_of,
    one,
    pod_template,
    release_job,
    selector_matches,
    token_secret,
)

pytestmark = pytest.mark.chart

NAME = "app.kubernetes.io/name"
EVERYTHING = {"podDisruptionBudget": {"enabled": True}, "gate": {"preRollback": True}}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_RELEASE = "r" * 52 + "a"  # helm refuses release names over 53 characters


def names(docs: list[Manifest]) -> set[tuple[str, str]]:
    return {(doc["kind"], doc["metadata"]["name"]) for doc in docs}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("alpha", "beta"),
        # The usual "release contains the chart name" rule maps both to "a-upgrade-gate".
        ("a", "a-upgrade-gate"),
        ("upgrade-gate", "upgrade-gate-upgrade-gate"),
        # Long names are cut; what is cut must not be all that tells them apart.
        ("r" * 52 + "a", "r" * 52 + "b"),
        # <release>-upgrade-gate of 52 characters: the longest kept whole, yet
        # too long for the release Job's suffix.
        ("r" * 38 + "a", "r" * 38 + "b"),
    ],
)
def test_two_releases_in_one_namespace_share_no_name(helm: Helm, first: str, second: str) -> None:
    one_release = helm.template(EVERYTHING, release=first)
    other = helm.template(EVERYTHING, release=second)
    assert names(one_release).isdisjoint(names(other))


def test_two_releases_do_not_gate_each_other(helm: Helm) -> None:
    alpha = helm.template(release="alpha")
    beta = helm.template(release="beta")
    for job in (gate_hook(alpha), release_job(alpha)):
        selector = flag(container(job, "gate")["args"], "--selector")
        assert selector_matches(selector, labels_of(pod_template(one(alpha, "Deployment"))))
        assert not selector_matches(selector, labels_of(pod_template(one(beta, "Deployment"))))
    assert one(alpha, "Service")["spec"]["selector"] != one(beta, "Service")["spec"]["selector"]


@pytest.mark.parametrize("release", ["rel", MAX_RELEASE])
def test_names_are_valid_and_leave_room_for_pod_suffixes(helm: Helm, release: str) -> None:
    for kind, name in names(helm.template(EVERYTHING, release=release)):
        # A Job's name becomes a pod label value (63 at most) and pods add suffixes.
        assert len(name) <= 58, (kind, name)
        assert DNS_LABEL.match(name), (kind, name)


def test_references_point_at_rendered_objects(helm: Helm) -> None:
    docs = helm.template(EVERYTHING)
    rendered = names(docs)
    for job in (gate_hook(docs), release_job(docs)):
        account = pod_template(job)["spec"]["serviceAccountName"]
        assert ("ServiceAccount", account) in rendered, job["metadata"]["name"]
    for binding in find(docs, "RoleBinding"):
        assert ("Role", binding["roleRef"]["name"]) in rendered
    for workload in (one(docs, "Deployment"), gate_hook(docs), release_job(docs)):
        main = pod_template(workload)["spec"]["containers"][0]
        secret = token_secret(workload, main["name"])["secretName"]
        assert ("Secret", secret) in rendered, workload["metadata"]["name"]


@pytest.mark.parametrize("release", ["rel", "other"])
def test_standard_labels_everywhere(helm: Helm, release: str) -> None:
    docs = helm.template(EVERYTHING, release=release)
    for doc in docs:
        found = labels_of(doc)
        where = (doc["kind"], doc["metadata"]["name"])
        assert found["app.kubernetes.io/name"] == "upgrade-gate", where
        assert found["app.kubernetes.io/instance"] == release, where
        assert found["app.kubernetes.io/managed-by"] == "Helm", where
        assert found["app.kubernetes.io/version"] == "0.1.0", where
        # The gate's objects are the dependency's (versioned with this chart).
        gate = found.get("app.kubernetes.io/component", "").startswith("upgrade-gate")
        gate = gate or doc["kind"] == "Secret"  # the drain token's, the gate's too
        chart = "upgrade-gate-hook-0.1.0" if gate else "upgrade-gate-0.1.0"
        assert found["helm.sh/chart"] == chart, where
    for doc in hooks(docs):
        assert labels_of(doc)["app.kubernetes.io/component"] == "upgrade-gate", doc["kind"]
    for kind in ("Deployment", "Service", "PodDisruptionBudget"):
        assert labels_of(one(docs, kind))["app.kubernetes.io/component"] == "app", kind


def test_selectors_use_only_stable_labels(default_render: list[Manifest]) -> None:
    # Deployment selectors are immutable: a versioned label there breaks every upgrade.
    selector = one(default_render, "Deployment")["spec"]["selector"]["matchLabels"]
    assert set(selector) == {
        "app.kubernetes.io/name",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/component",
    }


def test_overrides_rename_everything(helm: Helm) -> None:
    # The gate's objects are the dependency's: gate.fullnameOverride, gate.nameOverride.
    docs = helm.template({"fullnameOverride": "shop", "gate": {"fullnameOverride": "shop"}})
    assert one(docs, "Deployment")["metadata"]["name"] == "shop"
    assert gate_hook(docs)["metadata"]["name"] == "shop-hook"
    assert release_job(docs)["metadata"]["name"] == "shop-release"
    docs = helm.template({"fullnameOverride": "shop"})
    assert gate_hook(docs)["metadata"]["name"] == "rel-upgrade-gate-hook"
    renamed = {
        "nameOverride": "api",
        "gate": {"nameOverride": "api", "selector": {"matchLabels": {NAME: "api"}}},
    }
    docs = helm.template(renamed, release="prod")
    assert one(docs, "Deployment")["metadata"]["name"] == "prod-api"
    assert labels_of(one(docs, "Deployment"))["app.kubernetes.io/name"] == "api"
    assert gate_hook(docs)["metadata"]["name"] == "prod-api-hook"
    selector = flag(container(gate_hook(docs), "gate")["args"], "--selector")
    assert selector_matches(selector, labels_of(pod_template(one(docs, "Deployment"))))


def test_a_gate_selector_that_misses_the_app_pods_is_refused(helm: Helm) -> None:
    # A hook that selects no pod lets every upgrade through at once: refused at render.
    message = helm.template_error({"nameOverride": "api"})
    assert f"gate.selector.matchLabels.{NAME} renders " in message
    assert "the hook would not gate them" in message
    message = helm.template_error({"gate": {"selector": {"matchLabels": {"tier": "web"}}}})
    assert "gate.selector.matchLabels.tier" in message
    # Off, there is no hook to miss them.
    assert one(helm.template({"nameOverride": "api", "gate": {"enabled": False}}), "Deployment")
