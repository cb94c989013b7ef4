"""What this machine cannot pull or reach, built here and named as the jobs ask for it, each
with a line that says what stands in for what: the node image for the pinned kindest/node,
Debian's python3 (with this machine's CA bundle) for the app's python:3.12-slim, a registry on
loopback for ghcr.io, the classic builder for BuildKit."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from e2e.cluster.base import Progress
from e2e.cluster.builds.images import ensure_debian_image
from e2e.cluster.host.commands import run
from e2e.cluster.host.docker import DockerClient
from e2e.cluster.providers.kind.nodeimage import NodeImageBuild
from e2e.cluster.providers.kind.settings import BASE_IMAGE, KindSettings
from e2e.cluster.providers.registry import LocalRegistry, ensure_registry
from e2e.images import _dockerfile_default_base

# A variable the e2e workflow reads in place of the pinned kindest/node (vars.KIND_NODE_IMAGE).
NODE_IMAGE_VAR = "KIND_NODE_IMAGE"
# This machine's trust store: its registries answer through a TLS proxy with a CA of its own.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# What release.yml reads in place of ghcr.io and of its BuildKit builder.
REGISTRY_VAR = "RELEASE_REGISTRY"
BUILDER_VAR = "RELEASE_BUILDER"


@dataclass
class StandIns:
    """The variables act passes the jobs (vars.*), the registry started, a line for each."""

    variables: dict[str, str] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    registry: LocalRegistry | None = None


def needed(texts: list[str]) -> tuple[bool, bool, bool]:
    """Which stand-ins the workflows' texts ask for: (node image, app base, registry)."""
    node = any(NODE_IMAGE_VAR in t for t in texts)
    registry = any(REGISTRY_VAR in t for t in texts)
    base = node or registry or any("docker build" in t for t in texts)
    return node, base, registry


def build(
    docker: DockerClient,
    progress: Progress,
    run_dir: Path,
    *,
    node: bool,
    base: bool,
    registry: bool,
    node_named_by: str = f"vars.{NODE_IMAGE_VAR}",
) -> StandIns:
    """Each stand-in asked for; `node_named_by` is how the jobs are told the node image."""
    made = StandIns()
    settings = KindSettings()
    if node:
        built = NodeImageBuild(settings, docker, progress).run()
        made.variables[NODE_IMAGE_VAR] = built.ref
        made.lines.append(
            f"{node_named_by}={built.ref}: the node image built here (Kubernetes "
            f"{settings.kubernetes_version}, {built.how}) stands in for the pinned "
            "kindest/node, which cannot be pulled here"
        )
    if base:
        debian = ensure_debian_image(
            docker,
            "debian-python-bookworm",
            BASE_IMAGE,
            ("python3", "python3-venv", "ca-certificates"),
            ['CMD ["python3"]', "ENV LANG=C.UTF-8"],
            settings.images_dir,
            settings.build_log,
        )
        wanted = _dockerfile_default_base()
        with_host_trust(docker, debian.ref or BASE_IMAGE, wanted)
        made.lines.append(
            f"{wanted}: the app's base image, {BASE_IMAGE} (Debian bookworm's python3, "
            f"{debian.how}) with this machine's CA bundle for pip (its registries answer "
            "through a TLS proxy of their own) stands in for it"
        )
    if registry:
        binary = ensure_registry(progress)
        # Under the daemon's run directory: whatever stops the daemon stops it too.
        made.registry = LocalRegistry(binary.path, root=run_dir)
        made.registry.start()
        made.variables[REGISTRY_VAR] = made.registry.address
        made.variables[BUILDER_VAR] = "classic"
        made.lines.append(
            f"vars.{REGISTRY_VAR}={made.registry.address}: a registry on loopback (CNCF "
            "distribution, built here) stands in for ghcr.io"
        )
        made.lines.append(
            f"vars.{BUILDER_VAR}=classic: the image is built for linux/amd64 only, with the "
            "classic builder and no SBOM or provenance: BuildKit's builder image, its SBOM "
            "scanner and QEMU's image cannot be pulled here, nor an arm64 base image"
        )
    return made


def with_host_trust(docker: DockerClient, base: str, tag: str) -> None:
    """`base` with the host's CA bundle, which pip in a build container then trusts, as `tag`:
    a release build installs from PyPI inside its container, as on GitHub."""
    with tempfile.TemporaryDirectory(prefix="rehearsal-base-") as context:
        shutil.copy(HOST_CA_BUNDLE, Path(context) / "ca-certificates.crt")
        (Path(context) / "Dockerfile").write_text(
            f"FROM {base}\n"
            f"COPY ca-certificates.crt {HOST_CA_BUNDLE}\n"
            f"ENV PIP_CERT={HOST_CA_BUNDLE} REQUESTS_CA_BUNDLE={HOST_CA_BUNDLE}\n"
        )
        env = {**docker.full_env(), "DOCKER_BUILDKIT": "0"}
        run(docker.command("build", "--quiet", "--tag", tag, context), env=env)
