"""A Docker daemon of our own: on its own socket, data root and exec root, known by PID.

Both providers start one where no Docker daemon answers: the local provider's adds nothing
to the host's network (no bridge, no rules), the kind provider's runs in a network namespace
of its own (``wrap`` puts `nsenter --net` in front). What they share is here: the flags that
keep it apart from any other dockerd, starting it once, and waiting until it answers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from e2e.builds.docker import DockerClient
from e2e.host.processes import Daemon, ProcessTable

DOCKERD = "dockerd"


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
    beside the socket unless named); ``flags`` are the provider's own."""
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
