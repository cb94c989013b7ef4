"""The drain token: generated once, shared by app and hook, rolled into pods when changed.

The gate's (gate.drainToken): the dependency renders the Secret, and the app's pod
template takes the token's file and checksum from its named templates."""

from __future__ import annotations

import base64
import re

import pytest

from tests.chart.helm import (
    Helm,
    Manifest,
    annotations_of,
    find,
    gate_hook,
    one,
    pod_template,
    release_job,
    token_secret,
)

pytestmark = pytest.mark.chart


def token(docs: list[Manifest]) -> str:
    secret = one(docs, "Secret")
    return base64.b64decode(secret["data"]["token"]).decode()


def workloads(docs: list[Manifest]) -> list[tuple[Manifest, str]]:
    """(workload, its main container): the app and both hooks read the token."""
    return [
        (one(docs, "Deployment"), "app"),
        (gate_hook(docs), "gate"),
        (release_job(docs), "gate"),
    ]


def checksum(docs: list[Manifest]) -> str:
    return annotations_of(pod_template(one(docs, "Deployment")))["checksum/upgrade-gate-token"]


def test_a_strong_token_is_generated(default_render: list[Manifest]) -> None:
    assert re.fullmatch(r"[A-Za-z0-9]{48}", token(default_render))


def test_app_and_hook_read_the_same_secret(default_render: list[Manifest]) -> None:
    name = one(default_render, "Secret")["metadata"]["name"]
    for workload, main in workloads(default_render):
        ref = token_secret(workload, main)
        assert (ref["secretName"], ref["key"]) == (name, "token"), workload["metadata"]["name"]


def test_an_explicit_token_is_used(helm: Helm) -> None:
    assert token(helm.template({"gate": {"drainToken": {"value": "x" * 32}}})) == "x" * 32


def test_generated_tokens_do_not_roll_the_pods(helm: Helm) -> None:
    # Without a cluster every render generates a new token; in a cluster lookup
    # keeps the first. Either way the pod template must not change with it.
    first, second = helm.template(), helm.template()
    assert token(first) != token(second)
    assert checksum(first) == checksum(second)


def test_changing_the_token_rolls_the_pods(helm: Helm) -> None:
    # The token is read at start: pods left on the old one would refuse the next fence.
    one_token = helm.template({"gate": {"drainToken": {"value": "a" * 32}}})
    other = helm.template({"gate": {"drainToken": {"value": "b" * 32}}})
    assert checksum(one_token) != checksum(other)
    assert "a" * 32 not in checksum(one_token), "a hash, not the token itself"


def test_existing_secret_replaces_the_charts(helm: Helm) -> None:
    docs = helm.template({"gate": {"drainToken": {"existingSecret": "ops-token", "key": "drain"}}})
    assert find(docs, "Secret") == []
    for workload, main in workloads(docs):
        ref = token_secret(workload, main)
        assert (ref["secretName"], ref["key"]) == ("ops-token", "drain"), workload["metadata"][
            "name"
        ]


def test_the_token_secret_keeps_its_name(default_render: list[Manifest]) -> None:
    # The Secret of charts before the gate came from the dependency, and its token: an
    # upgrade onto this chart looks it up by that name and keeps the token the running
    # pods accept.
    assert one(default_render, "Secret")["metadata"]["name"] == "rel-upgrade-gate-token"
