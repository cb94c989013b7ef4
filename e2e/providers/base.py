"""The interface every cluster provider offers the harness, and the progress reporter they share.

A provider owns one cluster's life: it brings the cluster up (reusing one that already runs),
makes locally built images visible to it, and takes it down again. The harness knows nothing
else about it: which Docker daemon builds the images, and which base image they start from,
are the provider's to say.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TextIO, runtime_checkable

log = logging.getLogger("e2e.providers")


class ProviderError(RuntimeError):
    """A provider could not do what it was asked; the message says why and where to look."""


@runtime_checkable
class ClusterProvider(Protocol):
    """What the e2e harness needs from a cluster, whoever made it."""

    name: str
    kubeconfig: Path
    # BASE_IMAGE build-arg for app/Dockerfile; None keeps the Dockerfile's default.
    base_image: str | None

    def up(self) -> None:
        """Bring the cluster up, or reuse it if it already runs. Idempotent."""

    def load_images(self, refs: Sequence[str]) -> None:
        """Make images present in the provider's Docker daemon runnable in the cluster."""

    def down(self) -> None:
        """Remove the cluster and everything the provider made for it."""

    def docker_env(self) -> dict[str, str]:
        """Environment (e.g. DOCKER_HOST) for `docker build` against the provider's daemon."""


@runtime_checkable
class ExportsLogs(Protocol):
    """A provider that can copy its nodes' logs out (kind: `kind export logs`)."""

    name: str

    def export_logs(self, dest: Path) -> Path:
        """Write the nodes' logs under dest; returns where."""


def cache_root() -> Path:
    """Where built binaries, images and cluster state live: outside the repository."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "upgrade-gate"


@dataclass
class PhaseNote:
    """What a phase's line says after its duration (e.g. "cached" or "built")."""

    detail: str = ""


class Progress:
    """One line per finished phase, with its duration and the time since the start.

    The lines go to stdout (or the given stream) so that a person running `up` sees where the
    time goes; the detail of each phase goes to the logger.
    """

    def __init__(self, prefix: str, stream: TextIO | None = None) -> None:
        self._prefix = prefix
        self._stream = stream if stream is not None else sys.stdout
        self._started = time.monotonic()
        self.timings: list[tuple[str, float]] = []

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def line(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        print(
            f"{stamp} [{self.elapsed():6.1f}s] {self._prefix}: {text}",
            file=self._stream,
            flush=True,
        )

    @contextmanager
    def phase(self, name: str, detail: str = "") -> Iterator[PhaseNote]:
        """Time the block; its line ends with the note's detail, which the block may set."""
        started = time.monotonic()
        note = PhaseNote(detail)
        log.info("phase %s: started", name)
        try:
            yield note
        except BaseException:
            took = time.monotonic() - started
            self.line(f"{name} FAILED after {took:.1f}s")
            raise
        took = time.monotonic() - started
        self.timings.append((name, took))
        suffix = f" ({note.detail})" if note.detail else ""
        self.line(f"{name} done in {took:.1f}s{suffix}")


def require_all_present(refs: Sequence[str], present: Sequence[str]) -> None:
    missing = sorted(set(refs) - set(present))
    if missing:
        raise ProviderError(f"images not found in the provider's Docker daemon: {missing}")
