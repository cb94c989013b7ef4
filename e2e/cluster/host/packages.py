"""Debian packages a provider needs, installed with apt-get when missing (and said so)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from e2e.cluster.base import ClusterError, Progress
from e2e.cluster.host.commands import run


def missing_packages(packages: Sequence[str]) -> list[str]:
    missing = []
    for package in packages:
        done = subprocess.run(
            ["dpkg-query", "-W", "-f=${db:Status-Status}", package],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.stdout.strip() != "installed":
            missing.append(package)
    return missing


def ensure_packages(packages: Sequence[str], progress: Progress, log_file: Path) -> None:
    missing = missing_packages(packages)
    if not missing:
        return
    progress.line(f"host-prerequisites: installing {' '.join(missing)} with apt-get")
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    # The packages' init scripts would start a system etcd, containerd and dockerd (with its
    # bridge and NAT rules); the providers run their own, so forbid service starts meanwhile.
    policy = Path("/usr/sbin/policy-rc.d")
    placed = not policy.exists()
    if placed:
        policy.write_text(
            "#!/bin/sh\n# upgrade-gate: installing packages starts no service\nexit 101\n"
        )
        policy.chmod(0o755)
    try:
        run(["apt-get", "update"], env=env, log_file=log_file)
        run(
            ["apt-get", "install", "-y", "--no-install-recommends", *missing],
            env=env,
            log_file=log_file,
        )
    finally:
        if placed:
            policy.unlink(missing_ok=True)
    still = missing_packages(packages)
    if still:
        raise ClusterError(f"apt-get left these packages uninstalled: {still}; see {log_file}")
