"""The Pod Security Standard "restricted" (baseline included), as checks on a pod spec.

Written from the published standard (Kubernetes 1.25+ "latest"), so that a
render test fails where a namespace labelled
``pod-security.kubernetes.io/enforce=restricted`` would refuse the pod. Also
asks for a read-only root filesystem, which the chart promises on top.
"""

from __future__ import annotations

from typing import Any

ALLOWED_VOLUME_SOURCES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
SECCOMP_OK = {"RuntimeDefault", "Localhost"}


def restricted_violations(pod_spec: dict[str, Any]) -> list[str]:
    """Every way ``pod_spec`` breaks "restricted"; empty when it complies."""
    problems: list[str] = []
    pod_sc: dict[str, Any] = pod_spec.get("securityContext") or {}
    containers = [
        *pod_spec.get("initContainers", []),
        *pod_spec.get("containers", []),
        *pod_spec.get("ephemeralContainers", []),
    ]
    if not containers:
        problems.append("no containers")

    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(field):
            problems.append(f"{field} is set")
    for volume in pod_spec.get("volumes", []):
        sources = set(volume) - {"name"}
        if not sources <= ALLOWED_VOLUME_SOURCES:
            problems.append(f"volume {volume['name']} uses {sorted(sources)}")
    for sysctl in pod_sc.get("sysctls", []):
        if sysctl["name"] not in SAFE_SYSCTLS:
            problems.append(f"unsafe sysctl {sysctl['name']}")
    problems += _selinux(pod_sc, "pod")
    if (pod_sc.get("windowsOptions") or {}).get("hostProcess"):
        problems.append("pod is a Windows host process")
    if pod_sc.get("runAsUser") == 0:
        problems.append("pod runs as user 0")
    if (pod_sc.get("appArmorProfile") or {}).get("type") == "Unconfined":
        problems.append("pod AppArmor profile is Unconfined")

    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
    for c in containers:
        name = f"container {c['name']}"
        sc: dict[str, Any] = c.get("securityContext") or {}
        if sc.get("privileged"):
            problems.append(f"{name} is privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name} does not set allowPrivilegeEscalation: false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"{name} does not drop ALL capabilities")
        added = set(caps.get("add") or []) - {"NET_BIND_SERVICE"}
        if added:
            problems.append(f"{name} adds capabilities {sorted(added)}")
        run_as_non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        if run_as_non_root is not True:
            problems.append(f"{name} may run as root (runAsNonRoot is not true)")
        if sc.get("runAsUser") == 0:
            problems.append(f"{name} runs as user 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in SECCOMP_OK:
            problems.append(f"{name} seccomp profile is {seccomp!r}, not RuntimeDefault/Localhost")
        if sc.get("procMount", "Default") != "Default":
            problems.append(f"{name} procMount is {sc['procMount']}")
        if (sc.get("appArmorProfile") or {}).get("type") == "Unconfined":
            problems.append(f"{name} AppArmor profile is Unconfined")
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            problems.append(f"{name} is a Windows host process")
        problems += _selinux(sc, name)
        for port in c.get("ports", []):
            if port.get("hostPort"):
                problems.append(f"{name} uses hostPort {port['hostPort']}")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name} root filesystem is writable")
    return problems


def _selinux(sc: dict[str, Any], where: str) -> list[str]:
    options = sc.get("seLinuxOptions") or {}
    problems = []
    if options.get("type", "") not in (
        "",
        "container_t",
        "container_init_t",
        "container_kvm_t",
        "container_engine_t",
    ):
        problems.append(f"{where} SELinux type {options['type']}")
    if options.get("user") or options.get("role"):
        problems.append(f"{where} sets a SELinux user or role")
    return problems
