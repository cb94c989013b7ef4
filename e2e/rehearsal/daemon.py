"""The runner's Docker daemon: on the default socket, in the host's network, group docker, as
a GitHub runner has one. The jobs reach it the way they reach GitHub's: no DOCKER_HOST, the
socket ``/var/run/docker.sock``, which the docker group may use.

Where a daemon that is not the rehearsal's answers there already, the rehearsal refuses: it
would have to undo its networks and rules without knowing which are whose. Otherwise one is
started (a Debian ``dockerd``): its images in the rehearsal's cache (kept between rehearsals,
so the node image is built once), its runtime state under ``/run/upgrade-gate-rehearsal``,
its containers under the cgroup ``upgrade-gate-rehearsal``; where the host's capability
bounding set lacks CAP_SYS_RESOURCE, it runs runc through the kind provider's wrapper. Unlike
the kind provider's own daemon it lives in the host's network: its bridges, NAT rules and
published ports are the host's, and `stop` leaves them for the ledger's undo.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from e2e.builds.docker import DockerClient
from e2e.host import mounts
from e2e.host.dockerd import DOCKERD, start_dockerd
from e2e.host.processes import ProcessTable, processes_matching, stop_all
from e2e.providers.base import ProviderError
from e2e.providers.kind import dockerd as kind_dockerd
from e2e.providers.kind.settings import KindSettings

SOCKET = Path("/var/run/docker.sock")
CGROUP_PARENT = "upgrade-gate-rehearsal"


@dataclass(frozen=True)
class RunnerDaemon:
    data_root: Path  # kept between rehearsals
    run_dir: Path  # removed by stop
    log_file: Path

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
            raise ProviderError(
                f"a Docker daemon that is not the rehearsal's answers on {SOCKET}: the "
                "rehearsal runs its own there (as a runner has one) and undoes what it made; "
                "stop that daemon first"
            )
        # The kind provider's wrapper, written into our runtime directory.
        wrapper_settings = KindSettings(run_dir=self.run_dir)
        flags = ["--group", "docker", "--cgroup-parent", f"/{CGROUP_PARENT}"]
        if kind_dockerd.lacks_cap_sys_resource():
            wrapper = kind_dockerd.write_runc_wrapper(wrapper_settings)
            flags += ["--add-runtime", f"{kind_dockerd.RUNTIME}={wrapper}"]
            flags += ["--default-runtime", kind_dockerd.RUNTIME]
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
        """Every container of our daemon (kind's nodes, a registry), removed with its volumes."""
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
        mounts.remove_cgroups(CGROUP_PARENT)
        subprocess.run(["rm", "-rf", "--one-file-system", str(self.run_dir)], check=False)

    def processes(self) -> list[tuple[int, list[str]]]:
        markers = (str(self.run_dir), str(self.data_root))
        return processes_matching(lambda _pid, argv: any(m in a for a in argv for m in markers))

    def leftovers(self) -> list[str]:
        found = [f"process PID {pid}: {' '.join(argv)[:160]}" for pid, argv in self.processes()]
        found += [f"mount {p}" for p in mounts.mounts_under([self.run_dir, self.data_root])]
        found += [f"cgroup {p}" for p in mounts.cgroup_leftovers(CGROUP_PARENT)]
        if self.run_dir.exists():
            found.append(f"directory {self.run_dir}")
        return found


def image_info(docker: DockerClient, ref: str) -> dict[str, object] | None:
    done = subprocess.run(
        docker.command("image", "inspect", ref),
        env=docker.full_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return None
    found: list[dict[str, object]] = json.loads(done.stdout)
    return found[0] if found else None
