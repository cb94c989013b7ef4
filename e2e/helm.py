"""Helm, as the scenarios drive it.

Installs and queries go through pyhelm3. The upgrade (or rollback) that a
scenario watches runs in the background as its own process group with its
output in a file: pyhelm3 runs helm through ``/bin/sh`` inside an asyncio
task, and cancelling that task would orphan helm mid-upgrade.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pyhelm3

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "chart"
# The gate as a dependency of other charts, and an example of such a chart.
DEPENDENCY_CHART = CHART / "charts" / "upgrade-gate-hook"
EXAMPLES = ROOT / "examples"


class Helm:
    def __init__(self, binary: Path, kubeconfig: Path, workdir: Path) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.client = pyhelm3.Client(executable=str(binary), kubeconfig=kubeconfig)
        self.version = str(self.client.version)
        self.major = int(self.client.version.major)

    @property
    def name(self) -> str:
        return f"helm{self.major}"

    def install(
        self,
        release: str,
        namespace: str,
        values: dict[str, Any],
        timeout: str = "3m",
        chart_dir: Path = CHART,
    ) -> Any:
        """``helm upgrade --install --wait`` of ``chart_dir`` (default: the working tree's)."""

        async def go() -> Any:
            chart = await self.client.get_chart(chart_dir)
            return await self.client.install_or_upgrade_release(
                release,
                chart,
                values,
                namespace=namespace,
                wait=True,
                timeout=timeout,
                create_namespace=False,
            )

        return asyncio.run(go())

    def dependency_build(self, chart_dir: Path) -> None:
        """``helm dependency build``: the chart's ``dependencies:`` into its ``charts/``."""
        result = subprocess.run(
            [str(self.binary), "dependency", "build", str(chart_dir)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"helm dependency build {chart_dir} exited {result.returncode}:\n"
                + (result.stdout + result.stderr)[-2000:]
            )

    def current(self, release: str, namespace: str) -> Any:
        """The release's current revision (``.revision``, ``.status``)."""
        return asyncio.run(self.client.get_current_revision(release, namespace=namespace))

    def current_values(self, release: str, namespace: str) -> tuple[Any, dict[str, Any]]:
        """The release's current revision (``.revision``, ``.status``) and the chart values the
        user gave it (``helm get values``: not the chart's defaults)."""

        async def go() -> tuple[Any, dict[str, Any]]:
            current = await self.client.get_current_revision(release, namespace=namespace)
            return current, dict(await current.values())

        return asyncio.run(go())

    def hooks(self, release: str, namespace: str) -> list[dict[str, Any]]:
        """The hook objects of the release's current revision, as rendered for it."""

        async def go() -> list[dict[str, Any]]:
            current = await self.client.get_current_revision(release, namespace=namespace)
            return [hook.resource for hook in await current.hooks()]

        return asyncio.run(go())

    def status(self, release: str, namespace: str) -> str:
        """``pending-upgrade``, ``deployed``, ``failed``..."""
        return str(self.current(release, namespace).status.value)

    def history(self, release: str, namespace: str) -> list[tuple[int, str]]:
        """(revision, status) of every revision, oldest first."""

        async def go() -> list[tuple[int, str]]:
            current = await self.client.get_current_revision(release, namespace=namespace)
            return [(r.revision, r.status.value) for r in await current.release.history()]

        return asyncio.run(go())

    def revisions(self, release: str, namespace: str) -> list[dict[str, Any]]:
        """``helm history``: each revision's number, status and description, oldest first."""

        async def go() -> list[dict[str, Any]]:
            current = await self.client.get_current_revision(release, namespace=namespace)
            return [
                {"revision": r.revision, "status": r.status.value, "description": r.description}
                for r in await current.release.history()
            ]

        return asyncio.run(go())

    def manifest(self, release: str, namespace: str) -> list[dict[str, Any]]:
        """``helm get manifest``: the objects of the current revision, as rendered for it."""

        async def go() -> list[dict[str, Any]]:
            current = await self.client.get_current_revision(release, namespace=namespace)
            return [dict(resource) for resource in await current.resources()]

        return asyncio.run(go())

    def text(self, *args: str) -> str:
        """A helm command's plain output, for people reading artifacts."""
        result = subprocess.run(
            [str(self.binary), *args, "--kubeconfig", str(self.kubeconfig)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return result.stdout + result.stderr

    def upgrade_in_background(
        self,
        release: str,
        namespace: str,
        values: dict[str, Any],
        timeout: str,
        *extra: str,
        chart_dir: Path = CHART,
    ) -> BackgroundHelm:
        """Start ``helm upgrade --wait`` of ``chart_dir`` (default: the working tree's)."""
        values_file = self.workdir / f"values-{time.monotonic_ns()}.json"
        values_file.parent.mkdir(parents=True, exist_ok=True)
        values_file.write_text(json.dumps(values, indent=2))
        return self._background(
            "upgrade",
            [
                "upgrade",
                release,
                str(chart_dir),
                "--namespace",
                namespace,
                "--values",
                str(values_file),
                "--wait",
                "--timeout",
                timeout,
                *extra,
            ],
        )

    def rollback_in_background(
        self, release: str, namespace: str, revision: int, timeout: str, *extra: str
    ) -> BackgroundHelm:
        return self._background(
            "rollback",
            [
                "rollback",
                release,
                str(revision),
                "--namespace",
                namespace,
                "--wait",
                "--timeout",
                timeout,
                *extra,
            ],
        )

    def _background(self, verb: str, args: list[str]) -> BackgroundHelm:
        log_path = self.workdir / f"helm-{verb}-{time.monotonic_ns()}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        return BackgroundHelm(
            [str(self.binary), *args, "--kubeconfig", str(self.kubeconfig)], log_path
        )


class BackgroundHelm:
    """A helm command in its own process group; ``stop()`` ends the whole group.

    A thread waits on the process, so ``ended`` is the moment helm exited,
    not the moment someone asked.
    """

    def __init__(self, command: list[str], log_path: Path) -> None:
        self.command = command
        self.log_path = log_path
        self.started = time.time()
        self.ended: float | None = None
        self._done = threading.Event()
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        threading.Thread(target=self._reap, name="helm-reaper", daemon=True).start()

    def _reap(self) -> None:
        self.proc.wait()
        self.ended = time.time()
        self._done.set()

    def running(self) -> bool:
        return not self._done.is_set()

    def wait(self, timeout: float) -> int:
        if not self._done.wait(timeout):
            raise TimeoutError(f"helm still running after {timeout:g}s: {' '.join(self.command)}")
        return int(self.proc.returncode)

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self._done.is_set():
            return
        os.killpg(self.proc.pid, signal.SIGTERM)  # helm 3.7+ then marks the release failed
        if not self._done.wait(15):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self._done.wait(5)
