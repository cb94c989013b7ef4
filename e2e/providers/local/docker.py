"""The Docker daemon that builds images: one that already answers, or our own.

Ours runs on its own socket with no bridge and no iptables rules, so it leaves nothing on the
host's network; builds against it use `--network none` (or host). Its data root is a cache
(base image and build layers survive `down`); its runtime files go with `down`.
"""

from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from e2e.providers.base import ProviderError
from e2e.providers.local.processes import Daemon, ProcessTable
from e2e.providers.local.settings import Settings

log = logging.getLogger("e2e.local.docker")

DOCKERD = "dockerd"


@dataclass
class DockerClient:
    """`docker` pointed at one daemon."""

    env: dict[str, str] = field(default_factory=dict)
    ours: bool = False

    def command(self, *args: str) -> list[str]:
        return ["docker", *args]

    def full_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        # The 28.x client's buildx is absent here; the classic builder works with dockerd 20.10.
        env.setdefault("DOCKER_BUILDKIT", "0")
        return env

    def answers(self, timeout: float = 5.0) -> bool:
        try:
            done = subprocess.run(
                self.command("version", "--format", "{{.Server.Version}}"),
                env=self.full_env(),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0 and bool(done.stdout.strip())

    def has_image(self, ref: str) -> bool:
        done = subprocess.run(
            self.command("image", "inspect", "--format", "{{.Id}}", ref),
            env=self.full_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        return done.returncode == 0


def existing_daemon() -> DockerClient | None:
    """The daemon DOCKER_HOST (or the default socket) names, if one answers."""
    client = DockerClient()
    return client if client.answers() else None


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
