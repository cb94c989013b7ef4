"""`docker` pointed at one daemon: the one a provider builds its images with."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field


@dataclass
class DockerClient:
    """`docker` pointed at one daemon (DOCKER_HOST in env, else the environment's)."""

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
        except (subprocess.TimeoutExpired, FileNotFoundError):
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


def environment_daemon() -> DockerClient | None:
    """The daemon DOCKER_HOST (or the default socket) names, if one answers."""
    client = DockerClient()
    return client if client.answers() else None
