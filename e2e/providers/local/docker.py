"""The Docker daemon that builds images: one that already answers, or our own.

Ours runs on its own socket with no bridge and no iptables rules, so it leaves nothing on the
host's network; builds against it use `--network none` (or host). Its data root is a cache
(base image and build layers survive `down`); its runtime files go with `down`.
"""

from __future__ import annotations

from pathlib import Path

from e2e.builds.docker import DockerClient
from e2e.host.dockerd import DOCKERD, socket_client, start_dockerd
from e2e.host.processes import ProcessTable
from e2e.providers.base import ProviderError
from e2e.providers.local.settings import Settings

__all__ = ["DOCKERD", "dockerd_children", "own_client", "require", "start_own_daemon"]


def own_client(settings: Settings) -> DockerClient:
    return socket_client(settings.docker_socket)


def start_own_daemon(settings: Settings, table: ProcessTable) -> DockerClient:
    return start_dockerd(
        table,
        socket=settings.docker_socket,
        data_root=settings.docker_data_root,
        exec_root=settings.docker_exec_root,
        log_file=settings.logs_dir / "dockerd.log",
        # Nothing on the host network: no docker0, no NAT, no rules.
        flags=[
            *("--bridge", "none", "--iptables=false", "--ip-masq=false"),
            *("--ip-forward=false", "--userland-proxy=false"),
        ],
    )


def dockerd_children(settings: Settings) -> list[Path]:
    """Roots under which our dockerd and its containerd keep mounts."""
    return [settings.docker_exec_root, settings.docker_data_root]


def require(client: DockerClient | None) -> DockerClient:
    if client is None:
        raise ProviderError("no Docker daemon: run `up` first")
    return client
