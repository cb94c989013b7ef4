"""Docker daemons of ours, known by PID: started where none answers, stopped by `down`.

`DefaultSocketDaemon` is the one the kind provider and the rehearsal run: on the default
socket ``/var/run/docker.sock``, in the host's network, group docker, as a GitHub runner has
one, so kind and the jobs reach it the way they reach GitHub's (no DOCKER_HOST). Its images
live in a data root kept between runs (the node image is built once), its runtime state in a
directory `stop` removes, its containers under a cgroup of its own. Its bridges, NAT rules
and published ports are the host's: a `HostLedger` (hostledger.py) records the host before
it starts and puts it back after it stops.

Where the host's capability bounding set lacks CAP_SYS_RESOURCE, runc refuses every
privileged container ("unable to apply caps"); the daemon then runs runc through a wrapper,
written at run time, that removes that capability from the container's spec.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from e2e.cluster.base import ClusterError
from e2e.cluster.host import mounts
from e2e.cluster.host.docker import DockerClient
from e2e.cluster.host.processes import Daemon, ProcessTable, processes_matching, stop_all

DOCKERD = "dockerd"
SOCKET = Path("/var/run/docker.sock")

RUNTIME = "ugate-runc"
CAP_SYS_RESOURCE = 24

RUNC_WRAPPER = '''#!{python} -I
"""runc without CAP_SYS_RESOURCE: written by upgrade-gate at run time
(e2e/cluster/host/dockerd.py) for the Docker daemon it runs.

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


def write_runc_wrapper(path: Path) -> Path:
    runc = shutil.which("runc", path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin")
    if runc is None:
        raise ClusterError("runc not found: the docker.io package installs it")
    python = "/usr/bin/python3" if Path("/usr/bin/python3").is_file() else sys.executable
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(RUNC_WRAPPER.format(python=python, runc=runc))
    path.chmod(0o755)
    return path


def socket_client(socket: Path) -> DockerClient:
    """`docker` pointed at our daemon's socket."""
    return DockerClient(env={"DOCKER_HOST": f"unix://{socket}"}, ours=True)


def start_dockerd(
    table: ProcessTable,
    *,
    socket: Path,
    data_root: Path,
    exec_root: Path,
    log_file: Path,
    flags: Sequence[str] = (),
    wrap: Callable[[list[str]], list[str]] | None = None,
    pidfile: Path | None = None,
) -> DockerClient:
    """Our dockerd: the one running already if it answers, else started now (its pidfile
    beside the socket unless named); ``flags`` are the caller's own."""
    docker = socket_client(socket)
    if table.get(DOCKERD) is not None and docker.answers():
        return docker
    data_root.mkdir(parents=True, exist_ok=True)
    argv = [
        *("dockerd", "--host", f"unix://{socket}"),
        *("--data-root", str(data_root), "--exec-root", str(exec_root)),
        *("--pidfile", str(pidfile or socket.parent / "dockerd.pid")),
        *("--storage-driver", "overlay2", "--exec-opt", "native.cgroupdriver=cgroupfs"),
        *flags,
    ]
    table.start(Daemon(DOCKERD, wrap(argv) if wrap else argv, log_file))
    table.wait_until(DOCKERD, docker.answers, timeout=60, log_file=log_file, what="answering")
    return docker


@dataclass(frozen=True)
class DefaultSocketDaemon:
    data_root: Path  # kept between runs
    run_dir: Path  # removed by stop
    log_file: Path
    cgroup_parent: str
    who: str  # says whose daemon it is in errors: "the kind provider's", "the rehearsal's"

    @property
    def table(self) -> ProcessTable:
        return ProcessTable(self.run_dir / "pids")

    @property
    def client(self) -> DockerClient:
        return DockerClient(env={"DOCKER_HOST": f"unix://{SOCKET}"})

    def ours(self) -> bool:
        return self.table.get(DOCKERD) is not None

    def start(self) -> str:
        """Our daemon answering on the socket: running already, or started now."""
        if self.client.answers() and not self.ours():
            raise ClusterError(
                f"a Docker daemon that is not {self.who} answers on {SOCKET}, but {self.who} "
                "was asked to run its own there (and to undo what it makes): stop that daemon "
                "first"
            )
        flags = ["--group", "docker", "--cgroup-parent", f"/{self.cgroup_parent}"]
        if lacks_cap_sys_resource():
            wrapper = write_runc_wrapper(self.run_dir / "runc-nosysresource")
            flags += ["--add-runtime", f"{RUNTIME}={wrapper}", "--default-runtime", RUNTIME]
        start_dockerd(
            self.table,
            socket=SOCKET,
            data_root=self.data_root,
            exec_root=self.run_dir / "docker",
            log_file=self.log_file,
            flags=flags,
            pidfile=self.run_dir / "dockerd.pid",
        )
        return f"dockerd started on {SOCKET} (data root {self.data_root}, log {self.log_file})"

    def remove_containers(self) -> list[str]:
        """Every container of our daemon (kind's nodes, a registry), removed with its volumes,
        and its networks."""
        if not self.ours():
            return []
        docker = self.client
        listed = subprocess.run(
            docker.command("ps", "-aq"), env=docker.full_env(), capture_output=True, text=True
        )
        ids = listed.stdout.split()
        if ids:
            subprocess.run(
                docker.command("rm", "-f", "-v", *ids),
                env=docker.full_env(),
                capture_output=True,
                check=False,
            )
        networks = subprocess.run(
            docker.command("network", "ls", "--filter", "type=custom", "-q"),
            env=docker.full_env(),
            capture_output=True,
            text=True,
        ).stdout.split()
        if networks:
            subprocess.run(
                docker.command("network", "rm", *networks),
                env=docker.full_env(),
                capture_output=True,
                check=False,
            )
        return ids

    def stop(self, proxies: set[int] | None = None) -> None:
        """Stop our daemon and whatever of it is left (containerd and its shims; the
        docker-proxy processes among `proxies`), unmount under its directories and remove its
        cgroups and runtime directory. Works on a daemon that died, too."""
        table = self.table
        table.stop(DOCKERD, grace=30)
        for name in table.recorded():
            table.stop(name)
        stop_all({pid for pid, _argv in self.processes()}, "leftover daemon processes", grace=5)
        stop_all(proxies or set(), "docker-proxy processes of the daemon", grace=5)
        mounts.unmount_under([self.run_dir, self.data_root])
        mounts.remove_cgroups(self.cgroup_parent)
        subprocess.run(["rm", "-rf", "--one-file-system", str(self.run_dir)], check=False)

    def processes(self) -> list[tuple[int, list[str]]]:
        markers = (str(self.run_dir), str(self.data_root))
        return processes_matching(lambda _pid, argv: any(m in a for a in argv for m in markers))

    def leftovers(self) -> list[str]:
        found = [f"process PID {pid}: {' '.join(argv)[:160]}" for pid, argv in self.processes()]
        found += [f"mount {p}" for p in mounts.mounts_under([self.run_dir, self.data_root])]
        found += [f"cgroup {p}" for p in mounts.cgroup_leftovers(self.cgroup_parent)]
        if self.run_dir.exists():
            found.append(f"directory {self.run_dir}")
        return found
