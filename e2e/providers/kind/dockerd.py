"""The kind provider's own Docker daemon, in a network namespace of its own.

kind needs a Docker daemon with bridges, NAT and port publishing, which would add interfaces
and iptables rules to the host. This one runs inside a network namespace the provider makes
(`unshare --net=<file>`, a bind mount under /run/upgrade-gate/kind), entered with
`nsenter --net` so that the host's mount namespace (and its cgroup mounts) stay in view;
`ip netns exec` would remount /sys and dockerd would then find no devices cgroup. Its bridges,
rules and the kind nodes exist only in that namespace; the host sees a daemon process and a
socket.

Where the host's capability bounding set lacks CAP_SYS_RESOURCE, runc refuses every
privileged container ("unable to apply caps"); the daemon then runs runc through a wrapper,
written here at run time, that removes that capability from the container's spec.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

from e2e.builds.docker import DockerClient
from e2e.host.commands import run
from e2e.host.dockerd import DOCKERD, socket_client, start_dockerd
from e2e.host.processes import ProcessTable
from e2e.providers.base import ProviderError
from e2e.providers.kind import nodes
from e2e.providers.kind.settings import CGROUP_PARENT, KindSettings

log = logging.getLogger("e2e.kind.dockerd")

__all__ = ["DOCKERD", "client", "kind_clusters", "start"]

RUNTIME = "ugate-runc"
CAP_SYS_RESOURCE = 24

RUNC_WRAPPER = '''#!{python} -I
"""runc without CAP_SYS_RESOURCE: written by upgrade-gate's kind provider at run time
(e2e/providers/kind/dockerd.py) for the Docker daemon it runs.

This host's capability bounding set lacks CAP_SYS_RESOURCE, so runc cannot grant it and
refuses any spec that asks for it, as every privileged container's does. Remove it from the
bundle's config.json (create, run) and from an exec's --process file, then run runc with
the arguments unchanged.
"""

import json
import os
import sys

RUNC = {runc!r}
CAPABILITY = "CAP_SYS_RESOURCE"


def strip(path, in_process):
    try:
        with open(path) as handle:
            spec = json.load(handle)
    except (OSError, ValueError):
        return
    holder = spec.get("process", {{}}) if in_process else spec
    sets = holder.get("capabilities") or {{}}
    changed = False
    for name, capabilities in sets.items():
        if isinstance(capabilities, list) and CAPABILITY in capabilities:
            sets[name] = [c for c in capabilities if c != CAPABILITY]
            changed = True
    if changed:
        partial = path + ".nosysresource"
        with open(partial, "w") as handle:
            json.dump(spec, handle)
        os.replace(partial, path)


args = sys.argv[1:]
for index, arg in enumerate(args):
    following = args[index + 1] if index + 1 < len(args) else ""
    if arg in ("--bundle", "-b"):
        strip(os.path.join(following, "config.json"), True)
    elif arg.startswith("--bundle="):
        strip(os.path.join(arg.split("=", 1)[1], "config.json"), True)
    elif arg in ("--process", "-p"):
        strip(following, False)
    elif arg.startswith("--process="):
        strip(arg.split("=", 1)[1], False)
os.execv(RUNC, [RUNC, *args])
'''


def lacks_cap_sys_resource() -> bool:
    """Whether this host's capability bounding set lacks CAP_SYS_RESOURCE."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            return not (int(line.split()[1], 16) >> CAP_SYS_RESOURCE) & 1
    return False


def client(settings: KindSettings) -> DockerClient:
    return socket_client(settings.docker_socket)


def netns_exists(settings: KindSettings) -> bool:
    """Whether our namespace file is there and still a namespace (bind-mounted nsfs)."""
    path = str(settings.netns)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] == path:
            return True
    return False


def ensure_netns(settings: KindSettings) -> None:
    if netns_exists(settings):
        return
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    settings.netns.touch()
    run(["unshare", f"--net={settings.netns}", "true"])
    run(["nsenter", f"--net={settings.netns}", "ip", "link", "set", "lo", "up"])
    log.info("network namespace %s made", settings.netns)


def delete_netns(settings: KindSettings) -> None:
    if netns_exists(settings):
        run(["umount", str(settings.netns)])
        log.info("network namespace %s deleted", settings.netns)
    settings.netns.unlink(missing_ok=True)


def in_netns(settings: KindSettings, *argv: str) -> list[str]:
    return ["nsenter", f"--net={settings.netns}", *argv]


def write_runc_wrapper(settings: KindSettings) -> Path:
    runc = shutil.which("runc", path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin")
    if runc is None:
        raise ProviderError("runc not found: the docker.io package installs it")
    python = "/usr/bin/python3" if Path("/usr/bin/python3").is_file() else sys.executable
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    settings.runc_wrapper.write_text(RUNC_WRAPPER.format(python=python, runc=runc))
    settings.runc_wrapper.chmod(0o755)
    return settings.runc_wrapper


def start(settings: KindSettings, table: ProcessTable) -> DockerClient:
    """Our dockerd in our namespace: running already, or started now."""
    if table.get(DOCKERD) is not None and client(settings).answers():
        return client(settings)
    ensure_netns(settings)
    flags = ["--cgroup-parent", f"/{CGROUP_PARENT}"]
    if lacks_cap_sys_resource():
        wrapper = write_runc_wrapper(settings)
        flags += ["--add-runtime", f"{RUNTIME}={wrapper}", "--default-runtime", RUNTIME]
    return start_dockerd(
        table,
        socket=settings.docker_socket,
        data_root=settings.docker_data_root,
        exec_root=settings.docker_exec_root,
        log_file=settings.logs_dir / "dockerd.log",
        flags=flags,
        wrap=lambda argv: in_netns(settings, *argv),
    )


def kind_clusters(docker: DockerClient) -> set[str]:
    """Names of the kind clusters whose node containers this daemon holds."""
    done = subprocess.run(
        docker.command(
            "ps",
            "-a",
            "--filter",
            f"label={nodes.CLUSTER_LABEL}",
            "--format",
            f'{{{{.Label "{nodes.CLUSTER_LABEL}"}}}}',
        ),
        env=docker.full_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    return set(done.stdout.split()) if done.returncode == 0 else set()
