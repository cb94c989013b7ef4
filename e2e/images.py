"""Build the app image (two tags, v1 and v2) and hand it to the cluster.

The build never needs the network from inside a container: the Python
dependencies are fetched on the host, as wheels for the base image's Python,
into ``.wheelhouse/`` (ignored by git), and the Dockerfile installs from
there with ``--no-index``. The same path works on a laptop, on a GitHub
runner and on a machine that reaches only a package index.

    python -m e2e.images                      # build v1 and v2, load them into kind
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

from e2e.cluster.providers.interface import ClusterProvider

log = logging.getLogger("e2e.images")

ROOT = Path(__file__).resolve().parent.parent
WHEELHOUSE = ROOT / ".wheelhouse"
REPOSITORY = "upgrade-gate-app"
TAGS = ("v1", "v2")


class ImageError(RuntimeError):
    """An image could not be built; the message carries the build's last lines."""


@dataclass(frozen=True)
class AppImages:
    repository: str
    tags: tuple[str, ...]

    def ref(self, tag: str) -> str:
        return f"{self.repository}:{tag}"

    @property
    def refs(self) -> list[str]:
        return [self.ref(tag) for tag in self.tags]


def build_app_images(
    provider: ClusterProvider,
    tags: Sequence[str] = TAGS,
    repository: str = REPOSITORY,
    push_to: str | None = None,
    base_image: str | None = None,
) -> AppImages:
    """Build ``repository:tag`` for each tag (APP_VERSION = tag), then load or push them."""
    env = _docker_env(provider)
    base = base_image or provider.base_image or _dockerfile_default_base()
    python_tag = _python_tag(base, env)
    _prepare_wheelhouse(python_tag)
    for tag in tags:
        _docker(
            [
                "build",
                "--file",
                str(ROOT / "app" / "Dockerfile"),
                "--build-arg",
                f"BASE_IMAGE={base}",
                "--build-arg",
                f"APP_VERSION={tag}",
                "--build-arg",
                "PIP_ARGS=--no-index --find-links /src/.wheelhouse",
                "--build-arg",
                "PACKAGE=upgrade-gate-sample helm-upgrade-gate[hook]",
                "--network",
                "none",
                "--tag",
                f"{repository}:{tag}",
                str(ROOT),
            ],
            env,
            what=f"build {repository}:{tag}",
        )
        log.info("built %s:%s on %s", repository, tag, base)
    images = AppImages(repository if not push_to else f"{push_to}/{repository}", tuple(tags))
    if push_to:
        for tag in tags:
            _docker(["tag", f"{repository}:{tag}", images.ref(tag)], env, what="tag")
            _docker(["push", images.ref(tag)], env, what=f"push {images.ref(tag)}")
    else:
        provider.load_images(images.refs)
    return images


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
    for line in (ROOT / "app" / "Dockerfile").read_text().splitlines():
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
        provider, args.tags or TAGS, push_to=args.registry, base_image=args.base_image
    )
    for ref in images.refs:
        print(ref)
    return 0


if __name__ == "__main__":
    sys.exit(main())
