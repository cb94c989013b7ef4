"""The local cluster's images: built by e2e.builds, kept as tarballs, imported into containerd.

- the base image `upgrade-gate/debian-python:bookworm` (debootstrap with python3,
  python3-venv and ca-certificates), which app/Dockerfile builds FROM;
- the pod sandbox (pause) image, from upstream's pause.c;
- the CoreDNS image: the binary alone in an image.

A warm `up` imports the tarballs into containerd without building or even asking Docker.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence
from pathlib import Path

from e2e.builds import images
from e2e.builds.docker import DockerClient
from e2e.builds.images import normalize
from e2e.builds.record import Built
from e2e.host.commands import run
from e2e.providers.base import ProviderError
from e2e.providers.local.settings import Settings

log = logging.getLogger("e2e.local.images")

BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
K8S_NAMESPACE = "k8s.io"


def ensure_base(settings: Settings, docker: DockerClient, log_file: Path) -> Built:
    """The app's base image in Docker: already there, loaded from its tarball, or built."""
    return images.ensure_debian_image(
        docker,
        "debian-python-bookworm",
        settings.base_image,
        BASE_PACKAGES,
        ['CMD ["python3"]', "ENV LANG=C.UTF-8"],
        settings.images_dir,
        log_file,
    )


def ensure_pause(settings: Settings, docker: DockerClient, log_file: Path) -> Built:
    return images.ensure_pause(
        docker,
        settings.kubernetes_version,
        settings.pause_version,
        settings.pause_image,
        settings.images_dir,
        log_file,
    )


def ensure_coredns(settings: Settings, docker: DockerClient, binary: Built) -> Built:
    return images.ensure_binary_image(
        docker,
        "coredns",
        binary,
        settings.coredns_image,
        settings.images_dir,
        recipe={"coredns": settings.coredns_version},
    )


def _ctr(settings: Settings, *args: str) -> list[str]:
    return [
        "ctr",
        "--address",
        str(settings.containerd_socket),
        "--namespace",
        K8S_NAMESPACE,
        *args,
    ]


def import_tarball(settings: Settings, tarball: Path) -> None:
    run(_ctr(settings, "images", "import", str(tarball)))


def import_from_docker(settings: Settings, docker: DockerClient, refs: Sequence[str]) -> None:
    """`docker save | ctr images import`: the images, unpacked for the CRI snapshotter."""
    missing = [ref for ref in refs if not docker.has_image(ref)]
    if missing:
        raise ProviderError(f"images not in the provider's Docker daemon: {missing}")
    save = subprocess.Popen(
        docker.command("save", *refs), env=docker.full_env(), stdout=subprocess.PIPE
    )
    try:
        done = subprocess.run(
            _ctr(settings, "images", "import", "-"),
            stdin=save.stdout,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        if save.stdout is not None:
            save.stdout.close()
        save.wait()
    if done.returncode != 0 or save.returncode != 0:
        raise ProviderError(f"importing {list(refs)} into containerd failed: {done.stderr}")
    present = containerd_images(settings)
    absent = [ref for ref in refs if normalize(ref) not in present]
    if absent:
        raise ProviderError(f"containerd did not list {absent} after the import")


def containerd_images(settings: Settings) -> set[str]:
    done = run(_ctr(settings, "images", "list", "--quiet"))
    return set(done.stdout.split())
