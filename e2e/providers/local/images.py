"""Container images without a registry: made here, kept as tarballs, imported into containerd.

- the base image: a Debian bookworm root filesystem from debootstrap (Debian's mirror is a
  package registry this machine reaches) with python3, python3-venv and ca-certificates,
  `docker import`ed; app/Dockerfile builds FROM it;
- the pod sandbox (pause) image: upstream's pause.c from the k8s.io/kubernetes module,
  compiled static, alone in an image;
- the CoreDNS image: the binary built by binaries.py, alone in an image.

Each is saved as `docker save` tarball in <cache>/images/ under a key of what it is made from,
so a warm `up` imports tarballs into containerd without building or even asking Docker.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

from e2e.providers.base import ProviderError
from e2e.providers.local.binaries import KUBERNETES_MODULE, download_module
from e2e.providers.local.commands import run
from e2e.providers.local.docker import DockerClient
from e2e.providers.local.mounts import unmount_under
from e2e.providers.local.settings import Settings

log = logging.getLogger("e2e.local.images")

BASE_SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
K8S_NAMESPACE = "k8s.io"


def _key(recipe: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def debian_mirror() -> str:
    """The mirror apt uses on this host (deb822 or one-line sources), else deb.debian.org."""
    candidates = [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]
    for path in candidates:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            line = line.strip()
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
            if line.startswith("deb ") and "security" not in line:
                return next(w for w in line.split()[1:] if "://" in w)
    return DEFAULT_MIRROR


class ImageStore:
    def __init__(self, settings: Settings, log_file: Path) -> None:
        self.settings = settings
        self.dir = settings.images_dir
        self.log_file = log_file

    def tarball(self, name: str, key: str) -> Path:
        return self.dir / f"{name}-{key}.tar"

    # --- recipes -------------------------------------------------------------------------------
    def base_recipe(self) -> dict[str, object]:
        return {
            "suite": BASE_SUITE,
            "variant": "minbase",
            "packages": list(BASE_PACKAGES),
            "mirror": debian_mirror(),
            "recipe": 1,
        }

    def base_tarball(self) -> Path:
        return self.tarball("debian-python-bookworm", _key(self.base_recipe()))

    def pause_tarball(self) -> Path:
        key = _key({"k8s": self.settings.kubernetes_version, "pause": self.settings.pause_version})
        return self.tarball("pause", key)

    def coredns_tarball(self) -> Path:
        return self.tarball("coredns", _key({"coredns": self.settings.coredns_version}))

    # --- building ----------------------------------------------------------------------------
    def ensure_base(self, docker: DockerClient) -> str:
        """The base image in Docker: already there, loaded from its tarball, or built."""
        tag = self.settings.base_image
        key = _key(self.base_recipe())
        keyed = f"{tag}-{key}"
        if docker.has_image(keyed):
            return "present"
        tarball = self.base_tarball()
        if tarball.is_file():
            run(docker.command("load", "-i", str(tarball)), env=docker.full_env())
            return "loaded from cache"
        self.dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.dir, prefix=".rootfs-") as tmp:
            rootfs = Path(tmp) / "rootfs"
            try:
                run(
                    [
                        "debootstrap",
                        "--variant=minbase",
                        f"--include={','.join(BASE_PACKAGES)}",
                        BASE_SUITE,
                        str(rootfs),
                        debian_mirror(),
                    ],
                    log_file=self.log_file,
                )
            finally:
                # debootstrap mounts /proc and /sys inside the target; never leave them.
                unmount_under([rootfs])
            for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for item in (rootfs / junk).glob("*"):
                    if item.is_file():
                        item.unlink()
            self._import_rootfs(
                docker,
                rootfs,
                [tag, keyed],
                ['CMD ["python3"]', "ENV LANG=C.UTF-8"],
            )
        self._save(docker, [tag, keyed], tarball)
        return "built with debootstrap"

    def _import_rootfs(
        self, docker: DockerClient, rootfs: Path, tags: Sequence[str], changes: Sequence[str]
    ) -> None:
        args = docker.command("import")
        for change in changes:
            args += ["--change", change]
        args += ["-", tags[0]]
        tar = subprocess.Popen(
            ["tar", "-C", str(rootfs), "--numeric-owner", "-cf", "-", "."],
            stdout=subprocess.PIPE,
        )
        try:
            done = subprocess.run(
                args,
                stdin=tar.stdout,
                env=docker.full_env(),
                capture_output=True,
                text=True,
                check=False,
            )
        finally:
            if tar.stdout is not None:
                tar.stdout.close()
            tar.wait()
        if done.returncode != 0 or tar.returncode != 0:
            raise ProviderError(f"docker import {tags[0]} failed: {done.stderr.strip()}")
        for extra in tags[1:]:
            run(docker.command("tag", tags[0], extra), env=docker.full_env())

    def _save(self, docker: DockerClient, tags: Sequence[str], tarball: Path) -> None:
        partial = tarball.with_suffix(".partial")
        run(docker.command("save", "-o", str(partial), *tags), env=docker.full_env())
        partial.replace(tarball)
        log.info("saved %s to %s", tags[0], tarball)

    def _single_binary_image(
        self, docker: DockerClient, binary: Path, tag: str, tarball: Path, entrypoint: list[str]
    ) -> None:
        """An image holding one static binary at / and nothing else."""
        with tempfile.TemporaryDirectory(dir=self.dir, prefix=".img-") as tmp:
            rootfs = Path(tmp) / "rootfs"
            rootfs.mkdir()
            shutil.copy2(binary, rootfs / binary.name)
            self._import_rootfs(docker, rootfs, [tag], [f"ENTRYPOINT {json.dumps(entrypoint)}"])
        self._save(docker, [tag], tarball)

    def ensure_pause(self, docker: DockerClient) -> str:
        tarball = self.pause_tarball()
        if tarball.is_file():
            return "cached"
        self.dir.mkdir(parents=True, exist_ok=True)
        version = self.settings.kubernetes_version
        module = download_module(KUBERNETES_MODULE, version, self.dir, self.log_file)
        source = module.dir / "build" / "pause" / "linux" / "pause.c"
        with tempfile.TemporaryDirectory(dir=self.dir, prefix=".pause-") as tmp:
            binary = Path(tmp) / "pause"
            # The flags of build/pause/Makefile; the version says where this one came from.
            run(
                [
                    "gcc",
                    "-Os",
                    "-Wall",
                    "-Werror",
                    "-static",
                    f"-DVERSION=v{self.settings.pause_version}-{version}",
                    "-o",
                    str(binary),
                    str(source),
                ],
                log_file=self.log_file,
            )
            self._single_binary_image(
                docker, binary, self.settings.pause_image, tarball, ["/pause"]
            )
        return "built from pause.c"

    def ensure_coredns(self, docker: DockerClient, binary: Path) -> str:
        tarball = self.coredns_tarball()
        if tarball.is_file():
            return "cached"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._single_binary_image(
            docker, binary, self.settings.coredns_image, tarball, ["/coredns"]
        )
        return "built"


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


def normalize(ref: str) -> str:
    """The name containerd (and kubelet) give a Docker-style reference."""
    name, _, tag = ref.rpartition(":")
    if not name or "/" in tag:
        name, tag = ref, "latest"
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    return f"{name}:{tag}"


def tarball_tags(tarball: Path) -> list[str]:
    with tarfile.open(tarball) as archive:
        member = archive.extractfile("manifest.json")
        if member is None:
            return []
        manifest = json.load(member)
    return [tag for entry in manifest for tag in entry.get("RepoTags") or []]
