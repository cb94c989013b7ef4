"""Container images without a registry: made here from root filesystems and binaries.

- `ensure_debian_image`: a Debian root filesystem from debootstrap, `docker import`ed (the
  app's base image, and the kind provider's node base and small Debian images);
- `ensure_pause`: upstream's pause.c from the k8s.io/kubernetes module, compiled static,
  alone in an image;
- `ensure_binary_image`: one static binary alone in an image (CoreDNS, etcd, ...);
- `write_archive`: a `docker save` archive rewritten so that whoever reads its tags (kind's
  node-image build reads only the first of `manifest.json` or `repositories`) sees every
  image in it, under the names containerd and kubelet use.

Images kept as tarballs live in <cache>/images/<name>-<key>.tar, so a warm run loads a tarball
(or finds the image already in Docker) without building.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from e2e.cluster.base import ClusterError
from e2e.cluster.builds.golang import KUBERNETES_MODULE, download_module
from e2e.cluster.builds.record import Built, recipe_key
from e2e.cluster.builds.rootfs import SUITE, debian_mirror, debootstrap
from e2e.cluster.host.commands import run
from e2e.cluster.host.docker import DockerClient

log = logging.getLogger("e2e.cluster.builds.images")


def tarball(images_dir: Path, name: str, key: str) -> Path:
    return images_dir / f"{name}-{key}.tar"


# --- docker steps ------------------------------------------------------------------------------
def import_rootfs(
    docker: DockerClient, rootfs: Path, tags: Sequence[str], changes: Sequence[str]
) -> None:
    """`tar | docker import` of a directory, with Dockerfile `changes`, under every tag."""
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
        raise ClusterError(f"docker import {tags[0]} failed: {done.stderr.strip()}")
    for extra in tags[1:]:
        tag(docker, tags[0], extra)


def tag(docker: DockerClient, source: str, target: str) -> None:
    run(docker.command("tag", source, target), env=docker.full_env())


def save(docker: DockerClient, tags: Sequence[str], path: Path) -> None:
    partial = path.with_suffix(".partial")
    run(docker.command("save", "-o", str(partial), *tags), env=docker.full_env())
    partial.replace(path)
    log.info("saved %s to %s", tags[0], path)


def load(docker: DockerClient, path: Path) -> None:
    run(docker.command("load", "-i", str(path)), env=docker.full_env())


def ensure_loaded(docker: DockerClient, built: Built) -> None:
    """The image of a tarball step present in Docker (loaded from its tarball if need be)."""
    if not docker.has_image(built.ref):
        load(docker, built.path)


def build(docker: DockerClient, context: Path, ref: str, log_file: Path, dockerfile: str) -> None:
    """`docker build` of a generated Dockerfile; no network inside (nothing to reach)."""
    (context / "Dockerfile").write_text(dockerfile)
    run(
        docker.command("build", "--network", "none", "--tag", ref, str(context)),
        env=docker.full_env(),
        log_file=log_file,
    )


# --- keyed images ------------------------------------------------------------------------------
def ensure_debian_image(
    docker: DockerClient,
    name: str,
    ref: str,
    packages: Sequence[str],
    changes: Sequence[str],
    images_dir: Path,
    log_file: Path,
    recipe_extra: Mapping[str, object] | None = None,
    drop_docs: bool = False,
) -> Built:
    """A debootstrap image in Docker: already there, loaded from its tarball, or built.

    It is tagged `ref` and `ref-<key>`; the keyed tag says the image in Docker is this recipe's.
    """
    recipe: dict[str, object] = {
        "suite": SUITE,
        "variant": "minbase",
        "packages": list(packages),
        "mirror": debian_mirror(),
        "recipe": 1,
        **(recipe_extra or {}),
    }
    key = recipe_key(recipe)
    keyed = f"{ref}-{key}"
    path = tarball(images_dir, name, key)
    if docker.has_image(keyed):
        if not docker.has_image(ref):
            tag(docker, keyed, ref)
        return Built(name, path, SUITE, key, "present", ref)
    if path.is_file():
        load(docker, path)
        return Built(name, path, SUITE, key, "loaded from cache", ref)
    images_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=images_dir, prefix=".rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        debootstrap(rootfs, packages, log_file, drop_docs=drop_docs)
        import_rootfs(docker, rootfs, [ref, keyed], changes)
    save(docker, [ref, keyed], path)
    return Built(name, path, SUITE, key, "built with debootstrap", ref)


def single_binary_rootfs(
    binary: Path, rootfs: Path, directory: str = "/", passwd: bool = False
) -> None:
    """A root filesystem holding one static binary (in `directory`) and nothing else,
    or with `passwd` a root user and a /tmp, which some programs expect."""
    target = rootfs / directory.lstrip("/")
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(binary, target / binary.name)
    if passwd:
        (rootfs / "etc").mkdir(exist_ok=True)
        (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/sbin/nologin\n")
        (rootfs / "etc" / "group").write_text("root:x:0:\n")
        (rootfs / "tmp").mkdir(mode=0o1777, exist_ok=True)
        (rootfs / "tmp").chmod(0o1777)


def ensure_binary_image(
    docker: DockerClient,
    name: str,
    binary: Built,
    ref: str,
    images_dir: Path,
    recipe: Mapping[str, object] | None = None,
) -> Built:
    """`binary` alone at / of an image, ENTRYPOINT it; kept as a tarball."""
    key = recipe_key(recipe if recipe is not None else {"binary": binary.key, "ref": ref})
    path = tarball(images_dir, name, key)
    if path.is_file():
        return Built(name, path, binary.version, key, "cached", ref)
    images_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=images_dir, prefix=".img-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        single_binary_rootfs(binary.path, rootfs)
        import_rootfs(docker, rootfs, [ref], [f"ENTRYPOINT {json.dumps(['/' + binary.path.name])}"])
    save(docker, [ref], path)
    return Built(name, path, binary.version, key, "built", ref)


def ensure_pause(
    docker: DockerClient,
    kubernetes_version: str,
    pause_version: str,
    ref: str,
    images_dir: Path,
    log_file: Path,
) -> Built:
    """The pod sandbox image: build/pause/linux/pause.c of the Kubernetes module, static."""
    key = recipe_key({"k8s": kubernetes_version, "pause": pause_version})
    path = tarball(images_dir, "pause", key)
    if path.is_file():
        return Built("pause", path, pause_version, key, "cached", ref)
    images_dir.mkdir(parents=True, exist_ok=True)
    module = download_module(KUBERNETES_MODULE, kubernetes_version, images_dir, log_file)
    source = module.dir / "build" / "pause" / "linux" / "pause.c"
    with tempfile.TemporaryDirectory(dir=images_dir, prefix=".pause-") as tmp:
        binary = Path(tmp) / "pause"
        # The flags of build/pause/Makefile; the version says where this one came from.
        run(
            [
                "gcc",
                "-Os",
                "-Wall",
                "-Werror",
                "-static",
                f"-DVERSION=v{pause_version}-{kubernetes_version}",
                "-o",
                str(binary),
                str(source),
            ],
            log_file=log_file,
        )
        rootfs = Path(tmp) / "rootfs"
        single_binary_rootfs(binary, rootfs)
        import_rootfs(docker, rootfs, [ref], ['ENTRYPOINT ["/pause"]'])
    save(docker, [ref], path)
    return Built("pause", path, pause_version, key, "built from pause.c", ref)


# --- names and archives ------------------------------------------------------------------------
def normalize(ref: str) -> str:
    """The name containerd (and kubelet) give a Docker-style reference."""
    name, _, tag_ = ref.rpartition(":")
    if not name or "/" in tag_:
        name, tag_ = ref, "latest"
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    return f"{name}:{tag_}"


def tarball_tags(path: Path) -> list[str]:
    with tarfile.open(path) as archive:
        member = archive.extractfile("manifest.json")
        if member is None:
            return []
        manifest = json.load(member)
    return [t for entry in manifest for t in entry.get("RepoTags") or []]


def archive_tags(path: Path) -> list[str]:
    """The tags a reader that stops at the first `manifest.json` or `repositories` sees,
    as kind's node-image build does (its GetArchiveTags)."""
    with tarfile.open(path) as archive:
        for member in archive:
            if member.name not in ("manifest.json", "repositories"):
                continue
            data = archive.extractfile(member)
            if data is None:
                break
            parsed = json.load(data)
            if member.name == "repositories":
                return [f"{repo}:{t}" for repo, tags in parsed.items() for t in tags]
            return list(parsed[0].get("RepoTags") or [])
    return []


def write_archive(docker: DockerClient, refs: Sequence[str], dest: Path) -> None:
    """`docker save` of refs, rewritten: `repositories` first, every name fully qualified."""
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".archive-") as tmp:
        saved = Path(tmp) / "saved.tar"
        run(docker.command("save", "-o", str(saved), *refs), env=docker.full_env())
        with tarfile.open(saved) as source, tarfile.open(dest, "w") as out:
            members = source.getmembers()
            rewritten: dict[str, bytes] = {}
            for member in members:
                if member.name not in ("manifest.json", "repositories"):
                    continue
                handle = source.extractfile(member)
                parsed = json.load(handle) if handle is not None else {}
                if member.name == "repositories":
                    parsed = {
                        normalize(f"{repo}:x").rsplit(":", 1)[0]: tags
                        for repo, tags in parsed.items()
                    }
                else:
                    for entry in parsed:
                        entry["RepoTags"] = [normalize(t) for t in entry.get("RepoTags") or []]
                rewritten[member.name] = json.dumps(parsed).encode()
            if "repositories" not in rewritten:
                raise ClusterError(f"docker save of {list(refs)} wrote no `repositories` file")
            first = [m for m in members if m.name == "repositories"]
            for member in first + [m for m in members if m.name != "repositories"]:
                if member.name in rewritten:
                    member.size = len(rewritten[member.name])
                    out.addfile(member, io.BytesIO(rewritten[member.name]))
                elif member.isfile():
                    out.addfile(member, source.extractfile(member))
                else:
                    out.addfile(member)
    expected = {normalize(ref) for ref in refs}
    missing = expected - set(archive_tags(dest))
    if missing:
        raise ClusterError(f"{dest} does not name {sorted(missing)} in its first tags file")
