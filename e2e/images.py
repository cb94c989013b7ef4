"""Build the app image and the hook image (tags v1 and v2 each) and hand them to the cluster.

The build never needs the network from inside a container: the Python
dependencies are fetched on the host, as wheels for the base image's Python,
into ``.wheelhouse/`` (ignored by git), and the Dockerfiles install from
there with ``--no-index``. The same path works on a laptop, on a GitHub
runner and on a machine that reaches only a package index.

The app image (``app/Dockerfile``) is built once per tag (its ``APP_VERSION``
is the tag); the hook image (``app/hook.Dockerfile``) once, tagged with each
of the same tags, so that an upgrade to v2 runs ``upgrade-gate-hook:v2`` as a
release's chart does with both images at its appVersion, and with the chart's
appVersion itself, the hook the chart runs when ``gate.image.tag`` is empty
(``helm upgrade --set image.tag=v2`` then finds its hook). Each image is
started once after its build (``--help``, read-only, as user 10001, no
network): an image that cannot start its program fails here, not in a
scenario.

    python -m e2e.images                      # build both, v1 and v2, load them into kind
    python -m e2e.images --cluster existing --kubeconfig K --registry HOST:PORT  # push them
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2e.cluster.providers.interface import ClusterProvider

log = logging.getLogger("e2e.images")

ROOT = Path(__file__).resolve().parent.parent
WHEELHOUSE = ROOT / ".wheelhouse"
REPOSITORY = "upgrade-gate-app"
HOOK_REPOSITORY = "upgrade-gate-hook"
TAGS = ("v1", "v2")
APP_DOCKERFILE = ROOT / "app" / "Dockerfile"
HOOK_DOCKERFILE = ROOT / "app" / "hook.Dockerfile"
# What each image installs from the wheelhouse.
APP_PACKAGE = "upgrade-gate-sample"
HOOK_PACKAGE = "helm-upgrade-gate[hook]"
# Every module the hook imports, some only once it runs (the API client, urllib3 and ssl).
HOOK_IMPORTS = (
    "ssl, urllib3, upgrade_gate.hook.cli, upgrade_gate.hook.wait, upgrade_gate.hook.pods, "
    "upgrade_gate.hook.kubeapi, upgrade_gate.hook.release"
)


class ImageError(RuntimeError):
    """An image could not be built; the message carries the build's last lines."""


@dataclass(frozen=True)
class AppImages:
    """The app image and the hook image, both under each of ``tags``."""

    repository: str
    tags: tuple[str, ...]
    hook_repository: str = HOOK_REPOSITORY

    def ref(self, tag: str) -> str:
        return f"{self.repository}:{tag}"

    def hook_ref(self, tag: str) -> str:
        return f"{self.hook_repository}:{tag}"

    @property
    def hook_tags(self) -> tuple[str, ...]:
        """The app's tags, and the chart's appVersion."""
        return tuple(dict.fromkeys([*self.tags, chart_app_version()]))

    @property
    def refs(self) -> list[str]:
        """Every reference: the app's, then the hook's."""
        app = [self.ref(tag) for tag in self.tags]
        return app + [self.hook_ref(tag) for tag in self.hook_tags]

    def values(self, tag: str) -> dict[str, Any]:
        """The chart's values that run ``tag`` of both: the app, and the hook."""
        return {
            "image": {"repository": self.repository, "tag": tag},
            "gate": {"image": {"repository": self.hook_repository, "tag": tag}},
        }


def build_app_images(
    provider: ClusterProvider,
    tags: Sequence[str] = TAGS,
    repository: str = REPOSITORY,
    push_to: str | None = None,
    base_image: str | None = None,
    hook_repository: str = HOOK_REPOSITORY,
) -> AppImages:
    """Build ``repository:tag`` (APP_VERSION = tag) and ``hook_repository:tag`` for each tag,
    then load or push them."""
    env = _docker_env(provider)
    base = base_image or provider.base_image or _dockerfile_default_base()
    python_tag = _python_tag(base, env)
    _prepare_wheelhouse(python_tag)
    for tag in tags:
        build_image(env, APP_DOCKERFILE, f"{repository}:{tag}", base, APP_PACKAGE, tag)
    local = AppImages(repository, tuple(tags), hook_repository)
    first, *others = local.hook_tags
    build_image(env, HOOK_DOCKERFILE, local.hook_ref(first), base, HOOK_PACKAGE)
    for tag in others:
        _docker(["tag", local.hook_ref(first), local.hook_ref(tag)], env, what="tag")
    check_app_image(env, local.ref(tags[0]))
    check_hook_image(env, local.hook_ref(first))
    if not push_to:
        provider.load_images(local.refs)
        return local
    images = AppImages(f"{push_to}/{repository}", tuple(tags), f"{push_to}/{hook_repository}")
    for here, there in zip(local.refs, images.refs, strict=True):
        _docker(["tag", here, there], env, what="tag")
        _docker(["push", there], env, what=f"push {there}")
    return images


def build_image(
    env: dict[str, str],
    dockerfile: Path,
    ref: str,
    base: str,
    package: str,
    app_version: str | None = None,
) -> None:
    """``docker build`` of ``dockerfile`` into ``ref``, installing ``package`` from the
    wheelhouse (which ``_prepare_wheelhouse`` filled), with no network."""
    version = ["--build-arg", f"APP_VERSION={app_version}"] if app_version else []
    _docker(
        [
            "build",
            "--file",
            str(dockerfile),
            "--build-arg",
            f"BASE_IMAGE={base}",
            *version,
            "--build-arg",
            "PIP_ARGS=--no-index --find-links /src/.wheelhouse",
            "--build-arg",
            f"PACKAGE={package}",
            "--network",
            "none",
            "--tag",
            ref,
            str(ROOT),
        ],
        env,
        what=f"build {ref}",
    )
    log.info("built %s on %s", ref, base)


def _run_image(env: dict[str, str], what: str, *args: str) -> str:
    """``docker run`` as the chart runs a pod: read-only, user 10001, and no network."""
    return _docker(
        ["run", "--rm", "--network", "none", "--read-only", "--user", "10001:10001", *args],
        env,
        what=what,
    )


def check_app_image(env: dict[str, str], ref: str) -> None:
    """The app image starts its own program (its default command's first word, ``serve``)."""
    _run_image(env, f"start {ref} serve --help", ref, "serve", "--help")


def check_hook_image(env: dict[str, str], ref: str, entrypoint: bool = True) -> None:
    """The image runs the hook as the chart does (``python3 -m upgrade_gate.hook``), and every
    module the hook imports loads; with ``entrypoint``, the image's own starts the hook too."""
    if entrypoint:
        _run_image(env, f"start {ref} wait --help", ref, "wait", "--help")
    hook = ("--entrypoint", "python3", ref, "-m", "upgrade_gate.hook", "release", "--help")
    _run_image(env, f"start python3 -m upgrade_gate.hook in {ref}", *hook)
    _run_image(
        env,
        f"import the hook's modules in {ref}",
        "--entrypoint",
        "python3",
        ref,
        "-c",
        f"import {HOOK_IMPORTS}",
    )


def chart_app_version() -> str:
    """The chart's appVersion: the tag of both images when the chart's values leave it empty."""
    for line in (ROOT / "chart" / "Chart.yaml").read_text().splitlines():
        if line.startswith("appVersion:"):
            return line.split(":", 1)[1].strip().strip("\"'")
    raise ImageError("chart/Chart.yaml has no appVersion")


def _docker_env(provider: ClusterProvider) -> dict[str, str]:
    import os

    # The legacy builder: BuildKit would try to resolve the base image in a
    # registry even when it exists locally, which fails with no registry.
    return {**os.environ, "DOCKER_BUILDKIT": "0", **provider.docker_env()}


def _docker(args: list[str], env: dict[str, str], what: str) -> str:
    docker = shutil.which("docker", path=env.get("PATH"))
    if docker is None:
        raise ImageError("docker CLI not found on PATH")
    result = subprocess.run([docker, *args], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
        raise ImageError(f"docker {what} failed ({result.returncode}):\n{tail}")
    return result.stdout


def _dockerfile_default_base() -> str:
    for line in APP_DOCKERFILE.read_text().splitlines():
        if line.startswith("ARG BASE_IMAGE="):
            return line.split("=", 1)[1].strip()
    raise ImageError("app/Dockerfile has no ARG BASE_IMAGE default")


def _python_tag(base: str, env: dict[str, str]) -> str:
    """The base image's CPython as a wheel tag, e.g. ``311``."""
    out = _docker(
        [
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "python3",
            base,
            "-c",
            "import sys; print(f'{sys.version_info[0]}{sys.version_info[1]}')",
        ],
        env,
        what=f"probe Python in {base}",
    )
    return out.strip()


def _prepare_wheelhouse(python_tag: str) -> None:
    """Wheels of the two projects under app/ (the library and the sample app) and of what
    the images install from them, for CPython ``python_tag`` on x86_64."""
    stamp = WHEELHOUSE / f".cp{python_tag}"
    project_files = [
        ROOT / "pyproject.toml",
        ROOT / "app" / "sample" / "pyproject.toml",
        *sorted((ROOT / "app").rglob("*.py")),
    ]
    newest = max(f.stat().st_mtime for f in project_files)
    if stamp.exists() and stamp.stat().st_mtime >= newest:
        log.info("wheelhouse for cp%s is up to date", python_tag)
        return
    shutil.rmtree(WHEELHOUSE, ignore_errors=True)
    WHEELHOUSE.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    wheels = []
    for project in (ROOT, ROOT / "app" / "sample"):
        with tempfile.TemporaryDirectory() as build:
            _run(
                [*pip, "wheel", "--no-deps", "--wheel-dir", build, str(project)],
                f"build the wheel of {project.relative_to(ROOT.parent)}",
            )
            (built,) = Path(build).glob("*.whl")
            wheels.append(Path(shutil.copy(built, WHEELHOUSE)))
    library, sample = wheels
    platforms = ["manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64"]
    _run(
        [
            *pip,
            "download",
            "--dest",
            str(WHEELHOUSE),
            # The sample's own dependency on the library is the wheel just built.
            "--find-links",
            str(WHEELHOUSE),
            "--only-binary=:all:",
            "--python-version",
            python_tag,
            "--implementation",
            "cp",
            "--abi",
            f"cp{python_tag}",
            *(arg for platform in platforms for arg in ("--platform", platform)),
            f"{library}[hook]",
            str(sample),
        ],
        "download the dependencies' wheels",
    )
    stamp.touch()


def _run(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
        raise ImageError(f"{what} failed:\n{tail}")


def main(argv: list[str] | None = None) -> int:
    from e2e.cluster.base import ClusterError
    from e2e.cluster.options import ClusterOptions

    parser = argparse.ArgumentParser(prog="python -m e2e.images", description=__doc__)
    ClusterOptions.add_arguments(parser.add_argument)
    parser.add_argument("--tag", action="append", dest="tags", help="default: v1 and v2")
    parser.add_argument("--base-image", help="default: the provider's own, else the Dockerfile's")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        provider = ClusterOptions.from_values(vars(args).get).provider()
    except ClusterError as exc:
        parser.error(str(exc))
    images = build_app_images(
        provider, tuple(args.tags or TAGS), push_to=args.registry, base_image=args.base_image
    )
    for ref in images.refs:
        print(ref)
    return 0


if __name__ == "__main__":
    sys.exit(main())
