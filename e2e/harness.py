"""The harness without pytest: the cluster, the app images, and a stage for each scenario.

As pytest-httpserver's server class works without pytest, this works from a script:

    harness = Harness(ClusterOptions(), artifacts=Path("artifacts/mine"))
    harness.up()                                    # the cluster, and v1 and v2 in it
    with harness.stage("my-scenario", harness.helm(tools.helm4())) as stage:
        stage.install("v1")
        ...                                         # a failure leaves its artifacts

conftest.py's fixtures are thin wrappers over it (pytest-xdist adds only that one worker
builds the images for all); ``e2e.reproduce`` and ``bench.cluster_upgrade`` call it directly.
Each step is timed in ``phases``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from e2e.artifacts import collect
from e2e.cluster.base import ClusterError, cache_root
from e2e.cluster.host import locks
from e2e.cluster.options import ClusterOptions
from e2e.cluster.providers.interface import (
    BreaksApiServer,
    ClusterProvider,
    ExportsLogs,
    StopsNodes,
)
from e2e.helm import Helm
from e2e.images import AppImages, build_app_images
from e2e.kube import Kube
from e2e.phases import Phases
from e2e.stage import Stage

log = logging.getLogger("e2e.harness")

# Every namespace of a scenario: Pod Security "restricted", and a label that says whose.
NAMESPACE_LABELS = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "app.kubernetes.io/part-of": "upgrade-gate-e2e",
}


@dataclass
class Harness:
    options: ClusterOptions
    artifacts: Path
    # The app image's base; None: the provider's own, else the Dockerfile's.
    base_image: str | None = None
    phases: Phases = field(default_factory=Phases)
    _provider: ClusterProvider | None = None
    _images: AppImages | None = None
    _kube: Kube | None = None

    # -- the session ---------------------------------------------------------------------------
    @property
    def provider(self) -> ClusterProvider:
        if self._provider is None:
            self._provider = self.options.provider()
        return self._provider

    def up_cluster(self) -> ClusterProvider:
        """The cluster up (reused where it runs), timed."""
        with self.phases.measure(f"cluster up ({self.provider.name})"):
            self.provider.up()
        return self.provider

    def build_images(self) -> AppImages:
        """v1 and v2 built and in the cluster (pushed to --registry for an existing one)."""
        return build_app_images(
            self.provider, push_to=self.options.registry, base_image=self.base_image
        )

    def up(self) -> AppImages:
        """The cluster up and the app images in it, each timed."""
        self.up_cluster()
        with self.phases.measure("images: build v1 and v2, load"):
            self._images = self.build_images()
        return self._images

    @property
    def images(self) -> AppImages:
        if self._images is None:
            raise ClusterError("the app images are not built yet: Harness.up() first")
        return self._images

    @images.setter
    def images(self, images: AppImages) -> None:
        self._images = images

    @property
    def kube(self) -> Kube:
        if self._kube is None:
            self._kube = Kube(self.provider.kubeconfig)
        return self._kube

    def helm(self, binary: Path, workdir: Path | None = None) -> Helm:
        workdir = workdir or self.artifacts / ".helm"
        workdir.mkdir(parents=True, exist_ok=True)
        return Helm(binary, self.provider.kubeconfig, workdir)

    def down(self) -> None:
        with self.phases.measure(f"cluster down ({self.provider.name})"):
            self.provider.down()

    # -- one scenario ----------------------------------------------------------------------------
    def artifacts_dir(self, name: str) -> Path:
        """Where this scenario's files go: emptied first, never a stale log."""
        directory = self.artifacts / re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        return directory

    def create_namespace(self, name: str) -> str:
        """A fresh namespace for the scenario called `name`, enforcing Pod Security
        "restricted"."""
        short = re.sub(r"[^a-z0-9]+", "-", name.lower())[:40].strip("-")
        namespace = f"ug-{short}-{secrets.token_hex(2)}"
        self.kube.create_namespace(namespace, NAMESPACE_LABELS)
        return namespace

    def open_stage(
        self,
        name: str,
        helm: Helm,
        namespace: str | None = None,
        artifacts: Path | None = None,
        *,
        alone: bool = False,
    ) -> Stage:
        """A stage, once it has its turn on the cluster: shared with the scenarios beside it,
        or the cluster to itself (``alone``) for a fault that every scenario on it would feel:
        the API server stopped, a node drained or stopped. A scenario alone waits for those
        running to end, and none starts meanwhile (xdist workers, other sessions on this
        machine)."""
        turn = contextlib.ExitStack()
        waiting = (
            f"the scenarios on the cluster to end: {name} needs it to itself"
            if alone
            else f"a scenario that has the cluster to itself, before {name}"
        )
        lock = cache_root() / f"cluster-{self.options.cluster_name}.turn.lock"
        turn.enter_context(locks.turn(lock, alone=alone, waiting_for=waiting))
        try:
            namespace = namespace or self.create_namespace(name)
            artifacts = artifacts or self.artifacts_dir(name)
            stage = Stage(self.kube, helm, self.images, namespace, artifacts, self.phases)
        except BaseException:
            turn.close()
            raise
        stage.turn = turn
        if isinstance(self.provider, BreaksApiServer):
            stage.api_server = self.provider
        if isinstance(self.provider, StopsNodes):
            stage.node_power = self.provider
        return stage

    def close_stage(self, stage: Stage, failed: bool) -> None:
        """The stage's background commands stopped; where the scenario failed, what it leaves
        for inspection (e2e/artifacts.py, the nodes' logs); its turn on the cluster given back."""
        with stage.turn:
            stage.stop_background()
            if failed:
                self._leave_artifacts(stage)

    def _leave_artifacts(self, stage: Stage) -> None:
        collect(self.kube, stage.helm, stage.namespace, stage.release, stage.artifacts)
        for command in stage.background:
            (stage.artifacts / command.log_path.name).write_text(command.output)
        self.export_cluster_logs(stage.artifacts)
        print(f"\nartifacts: {stage.artifacts}")

    def export_cluster_logs(self, directory: Path) -> None:
        """The nodes' logs (kind export logs), where the provider can export them."""
        cluster = self.provider
        if isinstance(cluster, ExportsLogs):
            try:
                cluster.export_logs(directory / f"{cluster.name}-logs")
            except ClusterError as exc:
                print(f"\n{cluster.name} logs not exported: {exc}")

    @contextmanager
    def stage(self, name: str, helm: Helm, *, keep_failed: bool = False) -> Iterator[Stage]:
        """A stage in a namespace of its own, gone afterwards (a failed one's is kept with
        `keep_failed`); what fails inside leaves its artifacts."""
        namespace = self.create_namespace(name)
        stage = self.open_stage(name, helm, namespace)
        failed = True
        try:
            with self.phases.group(name):
                yield stage
            failed = False
        finally:
            self.close_stage(stage, failed)
            if failed and keep_failed:
                print(f"\nnamespace {namespace} kept for inspection")
            else:
                self.kube.delete_namespace(namespace)
