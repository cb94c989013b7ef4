"""The Docker daemon that builds images: one that already answers, or our own.

Ours runs on its own socket with no bridge and no iptables rules, so it leaves nothing on the
host's network; builds against it use `--network none` (or host). Its data root is a cache
(base image and build layers survive `down`); its runtime files go with `down`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from e2e.builds.docker import DockerClient
from e2e.host.processes import Daemon, ProcessTable
from e2e.providers.base import ProviderError
from e2e.providers.local.settings import Settings

log = logging.getLogger("e2e.local.docker")

DOCKERD = "dockerd"


def own_client(settings: Settings) -> DockerClient:
    return DockerClient(env={"DOCKER_HOST": f"unix://{settings.docker_socket}"}, ours=True)


def start_own_daemon(settings: Settings, table: ProcessTable) -> DockerClient:
    client = own_client(settings)
    if table.get(DOCKERD) is not None and client.answers():
        return client
    settings.docker_data_root.mkdir(parents=True, exist_ok=True)
    log_file = settings.logs_dir / "dockerd.log"
    table.start(
        Daemon(
            DOCKERD,
            [
                "dockerd",
                "--host",
                f"unix://{settings.docker_socket}",
                "--data-root",
                str(settings.docker_data_root),
                "--exec-root",
                str(settings.docker_exec_root),
                "--pidfile",
                str(settings.run_dir / "dockerd.pid"),
                # Nothing on the host network: no docker0, no NAT, no rules.
                "--bridge",
                "none",
                "--iptables=false",
                "--ip-masq=false",
                "--ip-forward=false",
                "--userland-proxy=false",
                "--storage-driver",
                "overlay2",
                "--exec-opt",
                "native.cgroupdriver=cgroupfs",
            ],
            log_file,
        )
    )
    table.wait_until(DOCKERD, client.answers, timeout=60, log_file=log_file, what="answering")
    return client


def dockerd_children(settings: Settings) -> list[Path]:
    """Roots under which our dockerd and its containerd keep mounts."""
    return [settings.docker_exec_root, settings.docker_data_root]


def require(client: DockerClient | None) -> DockerClient:
    if client is None:
        raise ProviderError("no Docker daemon: run `up` first")
    return client
