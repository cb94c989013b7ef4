"""kind, pinned once and built once from its Go module.

The same binary serves everywhere kind is built rather than given: the kind provider (which
also builds its node image with it, from the module's `images/base/files`) and CI's e2e
jobs (`python -m e2e.cluster.gotools path kind`), whose `kindest/node` images are those this
release's notes publish.
"""

from __future__ import annotations

from pathlib import Path

from e2e.cluster.base import Progress
from e2e.cluster.builds.golang import go_install
from e2e.cluster.builds.record import Built

KIND_MODULE = "sigs.k8s.io/kind"
# The newest kind the Go module proxy serves here. Its release notes publish kindest/node
# v1.37.0, v1.36.4, v1.35.8 and v1.34.11 (.github/workflows/e2e.yml pins three by digest).
KIND_VERSION = "v0.33.0"


def kind_binary(cache: Path, version: str = KIND_VERSION) -> Path:
    """Where :func:`build_kind` puts it (whether or not it is there yet)."""
    return cache / "kind" / version / "bin" / "kind"


def build_kind(cache: Path, progress: Progress, version: str = KIND_VERSION) -> Built:
    """`go install sigs.k8s.io/kind@version`, cached under its recipe's key."""
    return go_install(
        "kind",
        KIND_MODULE,
        version,
        KIND_MODULE,
        cache,
        progress,
        commit_variable=f"{KIND_MODULE}/pkg/cmd/kind/version.gitCommit",
    )
