"""`docker` pointed at one daemon: the one a provider builds its images with.

    python -m e2e.cluster.host.docker     # exit 0 where a Docker daemon answers, else 1; says which

Standard library only: ci/ asks it before any virtualenv has the harness's needs.
"""

from __future__ import annotations

import os
import subprocess
import sys
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


def main() -> int:
    where = os.environ.get("DOCKER_HOST") or "the default socket"
    if environment_daemon() is None:
        print(f"docker: no daemon answers at {where}", file=sys.stderr)
        return 1
    print(f"docker: a daemon answers at {where}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
