"""The previous release, as users run it: its chart and its app image, taken from git.

The previous release is the newest tag reachable from ``HEAD^`` (so that on a tag's own
build it is the release before it); before the project's first tag it is
:data:`PINNED_COMMIT`. ``$UPGRADE_GATE_PREVIOUS_REF`` names any other ref. Its files come
out of git with ``git archive`` into a temporary folder, never touching the working tree;
its image is built from those files the way :mod:`e2e.images` builds the working tree's
(wheels fetched on the host, ``docker build --network none``), tagged
``upgrade-gate-app:previous-<commit>`` and handed to the cluster.

A shallow clone (CI checkouts with ``fetch-depth: 1``) has neither the tags nor the old
commit: the history is fetched once (``git fetch --unshallow --tags``), and if that fails
the error says so; the scenario never silently falls back or skips.

    python -m e2e.previous            # which ref, which commit, and the chart's version
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2e.cluster.providers.interface import ClusterProvider
from e2e.images import (
    REPOSITORY,
    ImageError,
    _docker,
    _docker_env,
    _python_tag,
    _run,
)

log = logging.getLogger("e2e.previous")

ROOT = Path(__file__).resolve().parent.parent
REF_ENV = "UPGRADE_GATE_PREVIOUS_REF"
# Before the first release tag: the first commit with the chart and its schema
# ("chart: Deployment, Service, token Secret, pre-upgrade gate Job with hook
# RBAC, PDB, schema"), the oldest chart a user of this project can run.
PINNED_COMMIT = "773cdd74035a88afea0c3588e4291deb58748fd2"
RELEASE_TAGS = "v[0-9]*"
# On the previous release's image: the ID of the base image it was built on.
BASE_LABEL = "io.upgrade-gate.base-id"


class PreviousError(RuntimeError):
    """The previous release cannot be found or built; the message says what to do."""


@dataclass(frozen=True)
class Previous:
    """Which commit is the previous release, and why."""

    ref: str  # what was asked for: a tag, $UPGRADE_GATE_PREVIOUS_REF, or the pinned commit
    commit: str
    how: str  # "latest tag", "$UPGRADE_GATE_PREVIOUS_REF", "pinned commit (no release tag yet)"

    @property
    def short(self) -> str:
        return self.commit[:12]

    @property
    def label(self) -> str:
        return self.ref if self.ref != self.commit else self.short

    @property
    def image_tag(self) -> str:
        return f"previous-{self.short}"


@dataclass(frozen=True)
class PreviousRelease:
    """The previous release, exported and built: its chart folder and its image."""

    previous: Previous
    source: Path
    repository: str
    tag: str

    @property
    def chart(self) -> Path:
        return self.source / "chart"

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"


def git(*args: str, root: Path = ROOT) -> str:
    result = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise PreviousError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def find(root: Path = ROOT, pinned: str = PINNED_COMMIT) -> Previous:
    """The previous release of the checkout at ``root``."""
    _ensure_history(root)
    asked = os.environ.get(REF_ENV, "").strip()
    if asked:
        return Previous(asked, _commit(asked, root), f"${REF_ENV}")
    tag = _latest_tag(root)
    if tag:
        return Previous(tag, _commit(tag, root), "latest tag")
    return Previous(pinned, _commit(pinned, root), "pinned commit (no release tag yet)")


def _ensure_history(root: Path) -> None:
    if git("rev-parse", "--is-shallow-repository", root=root) != "true":
        return
    log.info("shallow clone: fetching the history and tags to find the previous release")
    try:
        git("fetch", "--quiet", "--unshallow", "--tags", root=root)
    except PreviousError as exc:
        raise PreviousError(
            f"{root} is a shallow clone and its history could not be fetched ({exc}); "
            "the previous-release scenario needs it: `git fetch --unshallow --tags`, "
            "or check out with actions/checkout's `fetch-depth: 0`"
        ) from None


def _latest_tag(root: Path) -> str | None:
    if git("rev-list", "--count", "HEAD", root=root) == "1":
        return None  # HEAD^ does not exist
    result = subprocess.run(
        [
            "git",
            "-C",
            str(root),
            "describe",
            "--tags",
            "--abbrev=0",
            "--match",
            RELEASE_TAGS,
            "HEAD^",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return None  # "No names found", "No tags can describe": no release yet
    return result.stdout.strip() or None


def _commit(ref: str, root: Path) -> str:
    try:
        return git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", root=root)
    except PreviousError:
        raise PreviousError(
            f"{ref} is not a commit of {root}; fetch it (`git fetch origin {ref}`) "
            f"or name another one in ${REF_ENV}"
        ) from None


def export(previous: Previous, dest: Path, root: Path = ROOT) -> Path:
    """The commit's files under ``dest`` (``git archive | tar -x``), the working tree untouched.

    tar, not Python's tarfile: its safe ``filter="data"`` needs Python 3.11.4, and Debian 12's
    python3, which a laptop runs ci/test with, is 3.11.2. GNU tar keeps every member under
    ``dest`` by itself (no absolute names, no ``..``)."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile() as archive:
        result = subprocess.run(
            ["git", "-C", str(root), "archive", "--format=tar", previous.commit],
            stdout=archive,
            stderr=subprocess.PIPE,
            check=False,
        )
        if result.returncode != 0:
            raise PreviousError(f"git archive {previous.commit}: {result.stderr.decode()}")
        archive.seek(0)
        result = subprocess.run(
            ["tar", "-x", "--no-same-owner", "-C", str(dest)],
            stdin=archive,
            stderr=subprocess.PIPE,
            check=False,
        )
        if result.returncode != 0:
            raise PreviousError(f"tar -x of {previous.commit}: {result.stderr.decode()}")
    if not (dest / "chart" / "Chart.yaml").is_file():
        raise PreviousError(f"{previous.label} ({previous.short}) has no chart/Chart.yaml")
    return dest


def build_image(
    provider: ClusterProvider,
    previous: Previous,
    source: Path,
    push_to: str | None = None,
    base_image: str | None = None,
) -> PreviousRelease:
    """Build the previous release's app image from its own files; load or push it."""
    env = _docker_env(provider)
    base = base_image or provider.base_image or _default_base(source)
    local = f"{REPOSITORY}:{previous.image_tag}"
    base_id = _image_label_or_id(base, env)
    if base_id and _image_label_or_id(local, env, BASE_LABEL) == base_id:
        # A commit's image is the same until its base image changes.
        log.info("%s is built already (from %s)", local, previous.short)
    else:
        _build(previous, source, env, base, local, base_id)
    repository = f"{push_to}/{REPOSITORY}" if push_to else REPOSITORY
    release = PreviousRelease(previous, source, repository, previous.image_tag)
    if push_to:
        _docker(["tag", local, release.ref], env, what="tag")
        _docker(["push", release.ref], env, what=f"push {release.ref}")
    else:
        provider.load_images([release.ref])
    return release


def _image_label_or_id(image: str, env: dict[str, str], label: str = "") -> str:
    """The image's ID, or one of its labels; empty if the image is not there."""
    template = f'{{{{index .Config.Labels "{label}"}}}}' if label else "{{.Id}}"
    try:
        return _docker(
            ["image", "inspect", "--format", template, image], env, what="inspect"
        ).strip()
    except ImageError:
        return ""


def _build(
    previous: Previous, source: Path, env: dict[str, str], base: str, local: str, base_id: str
) -> None:
    python_tag = _python_tag(base, env)
    _wheelhouse(source, python_tag)
    _docker(
        [
            "build",
            "--label",
            f"{BASE_LABEL}={base_id}",
            "--file",
            str(source / "app" / "Dockerfile"),
            "--build-arg",
            f"BASE_IMAGE={base}",
            "--build-arg",
            f"APP_VERSION={previous.label}",
            "--build-arg",
            "PIP_ARGS=--no-index --find-links /src/.wheelhouse",
            # Dockerfiles that install the package by name from the wheelhouse;
            # older ones build /src, with setuptools from the wheelhouse.
            "--build-arg",
            "PACKAGE=helm-upgrade-gate",
            "--network",
            "none",
            "--tag",
            local,
            str(source),
        ],
        env,
        what=f"build {local} from {previous.label}",
    )
    log.info("built %s from %s (%s) on %s", local, previous.label, previous.short, base)


def _default_base(source: Path) -> str:
    for line in (source / "app" / "Dockerfile").read_text().splitlines():
        if line.startswith("ARG BASE_IMAGE="):
            return line.split("=", 1)[1].strip()
    raise ImageError(f"{source}/app/Dockerfile has no ARG BASE_IMAGE default")


def _wheelhouse(source: Path, python_tag: str) -> None:
    """The old project's wheel, its dependencies and setuptools, for CPython ``python_tag``."""
    wheelhouse = source / ".wheelhouse"
    wheelhouse.mkdir(exist_ok=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "wheel", "--no-deps", "--wheel-dir", str(wheelhouse), str(source)], "old wheel")
    (wheel,) = wheelhouse.glob("*.whl")
    platforms = ["manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64"]
    _run(
        [
            *pip,
            "download",
            "--dest",
            str(wheelhouse),
            "--only-binary=:all:",
            "--python-version",
            python_tag,
            "--implementation",
            "cp",
            "--abi",
            f"cp{python_tag}",
            *(arg for platform in platforms for arg in ("--platform", platform)),
            str(wheel),
            "setuptools>=69",
        ],
        "download the old release's dependencies",
    )


def fit_values(values: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Only the keys an older chart knows (its values.yaml): its schema refuses the others.

    A key whose default is a mapping keeps only the keys that mapping knows, unless the
    default is empty (free-form maps such as ``podAnnotations``).
    """
    fitted: dict[str, Any] = {}
    for key, value in values.items():
        if key not in defaults:
            continue
        known = defaults[key]
        if isinstance(value, dict) and isinstance(known, dict) and known:
            fitted[key] = fit_values(value, known)
        else:
            fitted[key] = value
    return fitted


def chart_defaults(chart: Path) -> dict[str, Any]:
    import yaml

    loaded = yaml.safe_load((chart / "values.yaml").read_text()) or {}
    if not isinstance(loaded, dict):
        raise PreviousError(f"{chart}/values.yaml is not a mapping")
    return loaded


def main(argv: list[str] | None = None) -> int:
    del argv
    try:
        previous = find()
        version = git("show", f"{previous.commit}:chart/Chart.yaml")
    except PreviousError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    chart_version = next(
        (
            line.split(":", 1)[1].strip()
            for line in version.splitlines()
            if line.startswith("version:")
        ),
        "?",
    )
    print(f"previous release: {previous.label} ({previous.how})")
    print(f"commit:           {previous.commit}")
    print(f"chart version:    {chart_version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
