"""Every pod (the app's, both hook Jobs') passes Pod Security "restricted".

Also: the app's shutdown timing adds up.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.chart.helm import (
    Helm,
    Manifest,
    container,
    env,
    gate_hook,
    one,
    pod_template,
    release_job,
)
from tests.chart.podsecurity import restricted_violations

pytestmark = pytest.mark.chart

WORKLOADS: dict[str, Callable[[list[Manifest]], Manifest]] = {
    "app": lambda docs: one(docs, "Deployment"),
    "gate-hook": gate_hook,
    "release-job": release_job,
}


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_pods_are_restricted(default_render: list[Manifest], workload: str) -> None:
    assert restricted_violations(pod_template(WORKLOADS[workload](default_render))["spec"]) == []


def test_read_only_root_gets_a_writable_tmp(default_render: list[Manifest]) -> None:
    spec = pod_template(one(default_render, "Deployment"))["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    (main,) = spec["containers"]
    mounts = {m["mountPath"]: m["name"] for m in main["volumeMounts"]}
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert "emptyDir" in volumes[mounts["/tmp"]]


@pytest.mark.parametrize("workload", ["gate-hook", "release-job"])
def test_hook_pods_write_nothing_and_mount_only_the_tokens(
    default_render: list[Manifest], workload: str
) -> None:
    # The hook writes no file: its only volume is the drain token, read-only.
    spec = pod_template(WORKLOADS[workload](default_render))["spec"]
    (main,) = spec["containers"]
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert [v["name"] for v in spec["volumes"]] == ["drain-token"]
    assert [(m["name"], m["readOnly"]) for m in main["volumeMounts"]] == [("drain-token", True)]
    assert spec["automountServiceAccountToken"] is True


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_the_drain_token_is_never_in_the_environment(
    default_render: list[Manifest], workload: str
) -> None:
    """Environment leaks: crash dumps, /proc/*/environ, child processes."""
    spec = pod_template(WORKLOADS[workload](default_render))["spec"]
    for main in spec["containers"]:
        for item in main.get("env", []):
            assert item["name"] != "UPGRADE_GATE_TOKEN", workload
            assert "secretKeyRef" not in item.get("valueFrom", {}), (workload, item)
        assert "envFrom" not in main, workload


@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_every_container_has_a_memory_limit_by_default(
    default_render: list[Manifest], workload: str
) -> None:
    spec = pod_template(WORKLOADS[workload](default_render))["spec"]
    for main in spec["containers"]:
        assert main["resources"]["limits"]["memory"], workload


def test_the_hook_as_a_bare_pod_is_restricted(helm: Helm) -> None:
    (pod,) = [d for d in helm.template({"gate": {"hookKind": "Pod"}}) if d["kind"] == "Pod"]
    assert restricted_violations(pod["spec"]) == []
    assert pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


def test_security_values_merge_key_by_key(helm: Helm) -> None:
    # Changing one field must not drop the others (Helm merges maps): a user
    # setting runAsUser keeps seccomp and the dropped capabilities. The hook pods'
    # are the gate's own (gate.podSecurityContext, gate.securityContext).
    contexts = {
        "podSecurityContext": {"runAsUser": 20000},
        "securityContext": {"privileged": False},
    }
    docs = helm.template({**contexts, "gate": contexts})
    for workload, pick in WORKLOADS.items():
        spec = pod_template(pick(docs))["spec"]
        assert spec["securityContext"]["runAsUser"] == 20000, workload
        assert restricted_violations(spec) == []


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(spec: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = spec
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        node[last] = value

    return mutate


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(spec: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = spec
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        del node[last]

    return mutate


def _both(*mutations: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def mutate(spec: dict[str, Any]) -> None:
        for mutation in mutations:
            mutation(spec)

    return mutate


BREAKAGES: dict[str, Callable[[dict[str, Any]], None]] = {
    "privileged": _set("containers.0.securityContext.privileged", True),
    "escalation": _set("containers.0.securityContext.allowPrivilegeEscalation", True),
    "escalation unset": _drop("containers.0.securityContext.allowPrivilegeEscalation"),
    "capabilities kept": _set("containers.0.securityContext.capabilities", {"drop": []}),
    "capability added": _set("containers.0.securityContext.capabilities.add", ["NET_ADMIN"]),
    "root allowed": _set("containers.0.securityContext.runAsNonRoot", False),
    "root allowed everywhere": _both(
        _drop("securityContext.runAsNonRoot"), _drop("containers.0.securityContext.runAsNonRoot")
    ),
    "uid 0": _set("securityContext.runAsUser", 0),
    "no seccomp": _drop("securityContext.seccompProfile"),
    "seccomp unconfined": _set(
        "containers.0.securityContext.seccompProfile", {"type": "Unconfined"}
    ),
    "host network": _set("hostNetwork", True),
    "host path": lambda s: s["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
    "host port": _set("containers.0.ports.0.hostPort", 8080),
    "writable root": _set("containers.0.securityContext.readOnlyRootFilesystem", False),
    "unsafe sysctl": _set("securityContext.sysctls", [{"name": "kernel.msgmax", "value": "1"}]),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_the_check_catches_a_broken_pod(default_render: list[Manifest], breakage: str) -> None:
    # The restricted check is ours, not the API server's: prove it can fail.
    spec = copy.deepcopy(pod_template(one(default_render, "Deployment"))["spec"])
    BREAKAGES[breakage](spec)
    assert restricted_violations(spec) != []


# -- shutdown timing -------------------------------------------------------------


def _grace_parts(docs: list[Manifest]) -> tuple[int, int, int]:
    spec = pod_template(one(docs, "Deployment"))["spec"]
    app = container(one(docs, "Deployment"), "app")
    shutdown = int(env(app)["SHUTDOWN_TIMEOUT_SECONDS"])
    pre_stop = app.get("lifecycle", {}).get("preStop")
    sleep = int(pre_stop["exec"]["command"][-1]) if pre_stop else 0
    return int(spec["terminationGracePeriodSeconds"]), shutdown, sleep


@pytest.mark.parametrize(
    "app_values",
    [
        {},
        {"shutdownTimeoutSeconds": 30, "preStopSleepSeconds": 0},
        {"shutdownTimeoutSeconds": 3600},
    ],
    ids=["defaults", "short-no-prestop", "hour"],
)
def test_kill_comes_after_the_drain(helm: Helm, app_values: dict[str, int]) -> None:
    # SIGKILL at terminationGracePeriodSeconds must come after the preStop, the
    # app's wait for work in flight and gunicorn's own 10 s, or it cuts work off.
    grace, shutdown, sleep = _grace_parts(helm.template({"app": app_values}))
    assert shutdown == app_values.get("shutdownTimeoutSeconds", 300)
    assert grace >= sleep + shutdown + 10 + 1
    assert grace == sleep + shutdown + 10 + 5, (
        "derived in one helper: preStop + drain + 10 + margin"
    )


def test_prestop_sleeps_then_the_app_drains(default_render: list[Manifest]) -> None:
    app = container(one(default_render, "Deployment"), "app")
    assert app["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]


def test_app_container_contract(default_render: list[Manifest]) -> None:
    app = container(one(default_render, "Deployment"), "app")
    assert app["ports"] == [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
        {"name": "management", "containerPort": 8081, "protocol": "TCP"},
    ]
    assert app["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "management"}
    assert app["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "management"}
    assert app["args"][:5] == ["serve", "--host", "0.0.0.0", "--port", "8080"]
    assert app["args"][-2:] == ["--management-port", "8081"]
    variables = env(app)
    assert "APP_VERSION" not in variables, "the image's build-time version shows by default"
    assert variables["LOG_LEVEL"] == "INFO"
    assert int(variables["OPERATION_DEFAULT_SECONDS"]) <= int(variables["OPERATION_MAX_SECONDS"])


def test_app_version_when_given(helm: Helm) -> None:
    docs = helm.template({"app": {"version": "1.2.3-rc1"}})
    assert env(container(one(docs, "Deployment"), "app"))["APP_VERSION"] == "1.2.3-rc1"
