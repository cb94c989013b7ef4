"""Options and fixtures of the end-to-end harness (e2e/), shared by every test directory.

    pytest e2e                                  # kind, three nodes, on the Docker that answers
    pytest e2e --kind-bin ~/bin/kind --kind-kubectl-bin ~/bin/kubectl --kind-nodes 1
    pytest e2e --cluster existing --kubeconfig ~/.kube/config --registry localhost:5000

Where no Docker daemon answers (and we are root), the kind provider starts one on the default
socket, as a GitHub runner has one, and builds the node image here; `down` stops it.

The cluster's options are those of every command (e2e/cluster/options.py: the same names,
defaults and environment variables), refused up front in one line; ``--keep-cluster``,
``--kubeconfig``, ``--cluster-name``, ``--kind-image``, ``--kind-bin`` and
``--kind-kubectl-bin`` are pytest-kind's own options, with the same meanings.
A failed scenario on kind gets ``kind export logs`` in its artifacts.

Fixtures: ``cluster`` (session), ``app_images`` (session: v1 and v2 built and
loaded), ``kube``, ``helms`` (one per ``--helm-bin``), ``namespace`` (per test,
Pod Security "restricted"), ``stage`` (e2e/stage.py: a release in that namespace with a
timeline recorder, on which a scenario plays). Unit tests do not touch any of them.

With pytest-xdist (``-n 3``: ``tox -e e2e`` runs so) the tests run side by side in worker
processes, each test in its own namespace: the images are built and loaded once for all
workers, only the controller takes the cluster down, and the controller prints one phase
table for the run (e2e/workers.py).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Generator, Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from e2e import workers
from e2e.cluster.base import ClusterError
from e2e.cluster.options import PYTEST_KIND_OPTIONS, ClusterOptions

if TYPE_CHECKING:
    from e2e.cluster.providers.interface import ClusterProvider
    from e2e.harness import Harness
    from e2e.helm import Helm
    from e2e.images import AppImages
    from e2e.kube import Kube
    from e2e.phases import Phases
    from e2e.stage import Stage

ROOT = Path(__file__).resolve().parent
# Scenario files (*.scenario.yaml) collected as tests: e2e/playbook/plugin.py.
pytest_plugins = ("e2e.playbook.plugin",)
PHASES_KEY = pytest.StashKey["Phases"]()
OPTIONS_KEY = pytest.StashKey[ClusterOptions]()
# The controller of an xdist run: a worker brought the cluster up without --keep-cluster.
CLUSTER_DOWN_KEY = pytest.StashKey[bool]()
FAILED_KEY = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("upgrade-gate e2e")
    # The cluster's options, as every command names them (e2e/cluster/options.py); pytest-kind
    # adds --kubeconfig, --cluster-name, --kind-image, --kind-bin and --kind-kubectl-bin.
    ClusterOptions.add_arguments(group.addoption, skip=PYTEST_KIND_OPTIONS)
    group.addoption(
        "--base-image",
        help="base of the app image (default: the provider's own, else the Dockerfile's)",
    )
    group.addoption(
        "--helm-bin",
        action="append",
        type=Path,
        default=[],
        help="helm binary to test with, or helm3/helm4 for the pinned one; repeat for a "
        "matrix, the first is the one scenarios not about Helm versions use (default: the "
        "pinned helm 3 and 4)",
    )
    group.addoption(
        "--fail-on-skip",
        action="store_true",
        help="a skipped test fails the session (CI: a skipped scenario is not a pass)",
    )
    group.addoption("--soak-rounds", type=int, default=6, help="rounds of the soak test")
    group.addoption("--soak-seed", type=int, default=None, help="seed of the soak test")
    group.addoption(
        "--artifacts",
        type=Path,
        default=ROOT / "artifacts",
        help="where timelines, logs and events go (default: ./artifacts)",
    )


def pytest_configure(config: pytest.Config) -> None:
    from e2e.phases import Phases

    config.stash[PHASES_KEY] = Phases(worker=workers.worker_id(config))
    try:
        config.stash[OPTIONS_KEY] = ClusterOptions.from_pytest(config)
    except ClusterError as exc:
        raise pytest.UsageError(str(exc)) from None
    # pyhelm3 logs every helm command it runs at INFO; the scenarios say more.
    logging.getLogger("pyhelm3").setLevel(logging.WARNING)
    # urllib3 warns of each retry of each request: some 800 lines while a scenario keeps
    # the API server away for 15 s.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    config.pluginmanager.register(SkipGuard(config), "upgrade-gate-skip-guard")


class SkipGuard:
    """With --fail-on-skip, a skipped test fails the session: skipped is not passed."""

    def __init__(self, config: pytest.Config) -> None:
        self.enabled = bool(config.getoption("--fail-on-skip"))
        self.skipped: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped:
            self.skipped.append(report.nodeid)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.enabled and self.skipped:
            print(
                f"\n--fail-on-skip: {len(self.skipped)} test(s) skipped: " + ", ".join(self.skipped)
            )
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: what ``-n auto`` means here
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """Three workers where the CPUs have room, two where they are half busy, else none.

    The scenarios mostly wait (operations, helm, the kubelet), so side by side they
    finish sooner, but only with CPU to spare: on a machine already busy, hook pods
    start late and the time-bound checks fail. Measured at the start (the 1-minute
    load average against the CPUs we may use); 0 runs the tests one after another.
    """
    cpus = len(os.sched_getaffinity(0))
    load = os.getloadavg()[0]
    workers = 3 if load < cpus else 2 if load < 2 * cpus else 0
    print(
        f"e2e: {workers or 'no'} xdist workers (load average {load:.1f} on {cpus} CPUs; "
        "-n N or UPGRADE_GATE_E2E_WORKERS=N in tox sets another number)",
        file=sys.stderr,
    )
    return workers


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests marked ``long`` first: with xdist the run ends when its last test does, and
    # a long one handed out last would run alone at the end.
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    # Fixtures read this at teardown to decide whether to collect artifacts.
    item.stash.setdefault(FAILED_KEY, False)
    if report.failed:
        item.stash[FAILED_KEY] = True
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    out = workers.output(config)
    if out is not None:
        # An xdist worker: its rows go to the controller, which prints the one table.
        out[workers.PHASES] = config.stash[PHASES_KEY].to_json()
    elif config.stash.get(CLUSTER_DOWN_KEY, False):
        # The controller, once every worker is done with the cluster (none took it down).
        provider = _provider(config)
        with config.stash[PHASES_KEY].measure(f"cluster down ({provider.name})"):
            provider.down()


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook, in the controller
def pytest_testnodedown(node: Any, error: object) -> None:
    out: dict[str, Any] = getattr(node, "workeroutput", None) or {}
    node.config.stash[PHASES_KEY].extend(out.get(workers.PHASES, []))
    if out.get(workers.CLUSTER_USED):
        node.config.stash[CLUSTER_DOWN_KEY] = True


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if workers.output(config) is not None:
        return  # a worker's rows are in the controller's table
    phases = config.stash.get(PHASES_KEY, None)
    if phases is not None and phases.rows:
        terminalreporter.section("phase timings")
        terminalreporter.write_line(phases.report())
        # Beside the timelines, for the CI job summary (python -m e2e.summary).
        artifacts: Path = config.getoption("--artifacts")
        artifacts.mkdir(parents=True, exist_ok=True)
        (artifacts / "phases.json").write_text(json.dumps(phases.to_json(), indent=2) + "\n")


# -- session fixtures ------------------------------------------------------------------


@pytest.fixture(scope="session")
def phases(pytestconfig: pytest.Config) -> Phases:
    return pytestconfig.stash[PHASES_KEY]


def _provider(config: pytest.Config) -> ClusterProvider:
    return config.stash[OPTIONS_KEY].provider()


@pytest.fixture(scope="session")
def harness(pytestconfig: pytest.Config, phases: Phases) -> Harness:
    """The harness core (e2e/harness.py) this session's fixtures wrap."""
    from e2e.harness import Harness

    return Harness(
        pytestconfig.stash[OPTIONS_KEY],
        artifacts=pytestconfig.getoption("--artifacts"),
        base_image=pytestconfig.getoption("--base-image"),
        phases=phases,
    )


@pytest.fixture(scope="session")
def cluster(pytestconfig: pytest.Config, harness: Harness) -> Iterator[ClusterProvider]:
    # Bringing a cluster up can take minutes (a first node image build: 7 to 14):
    # its progress lines go to the terminal as they happen, not to the capture.
    # Every xdist worker brings it up (the first builds or starts it, the others
    # wait on the provider's lock and reuse it); a worker's stdout is /dev/null,
    # so there the lines go to stderr.
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        if workers.worker_id(pytestconfig) is None:
            provider = harness.up_cluster()
        else:
            with redirect_stdout(sys.stderr):
                provider = harness.up_cluster()
    yield provider
    out = workers.output(pytestconfig)
    if pytestconfig.getoption("--keep-cluster"):
        print(f"\ncluster kept; kubeconfig: {provider.kubeconfig}")
    elif out is not None:
        out[workers.CLUSTER_USED] = True  # the controller takes it down after every worker
    else:
        harness.down()


@pytest.fixture(scope="session")
def app_images(
    cluster: ClusterProvider,
    harness: Harness,
    pytestconfig: pytest.Config,
    tmp_path_factory: pytest.TempPathFactory,
) -> AppImages:
    """v1 and v2 built and in the cluster; with xdist, by the first worker that asks."""
    from e2e.images import AppImages

    harness.images = workers.measured_once(
        pytestconfig,
        tmp_path_factory,
        harness.phases,
        "app-images",
        "images: build v1 and v2, load",
        harness.build_images,
        lambda images: {
            "repository": images.repository,
            "tags": list(images.tags),
            "hook_repository": images.hook_repository,
        },
        lambda stored: AppImages(
            stored["repository"], tuple(stored["tags"]), stored["hook_repository"]
        ),
    )
    return harness.images


@pytest.fixture(scope="session")
def kube(cluster: ClusterProvider, harness: Harness) -> Kube:
    return harness.kube


@pytest.fixture(scope="session")
def helms(
    cluster: ClusterProvider,
    harness: Harness,
    pytestconfig: pytest.Config,
    tmp_path_factory: pytest.TempPathFactory,
) -> list[Helm]:
    workdir = tmp_path_factory.mktemp("helm")
    return [harness.helm(binary, workdir) for binary in _helm_binaries(pytestconfig)]


@pytest.fixture(scope="session")
def helm(helms: list[Helm]) -> Helm:
    """The first ``--helm-bin``: scenarios that are not about Helm versions use it."""
    return helms[0]


# -- per-test fixtures -------------------------------------------------------------------


@pytest.fixture
def artifacts_dir(request: pytest.FixtureRequest, harness: Harness) -> Path:
    return harness.artifacts_dir(request.node.name)


@pytest.fixture
def namespace(request: pytest.FixtureRequest, harness: Harness, kube: Kube) -> Iterator[str]:
    """A fresh namespace that enforces Pod Security "restricted"; gone after the test."""
    name = harness.create_namespace(request.node.name)
    yield name
    failed = request.node.stash.get(FAILED_KEY, False)
    if failed and request.config.getoption("--keep-cluster"):
        print(f"\nnamespace {name} kept for inspection")
    else:
        kube.delete_namespace(name)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Tests asking for ``each_helm`` run once per --helm-bin (default: helm 3 and 4).
    if "each_helm" in metafunc.fixturenames:
        binaries = _helm_binaries(metafunc.config)
        metafunc.parametrize(
            "each_helm",
            binaries,
            ids=[_helm_id(b) for b in binaries],
            indirect=True,
            scope="session",
        )


def _helm_binaries(config: pytest.Config) -> list[Path]:
    from e2e.cluster import tools

    return tools.helm_binaries(config.getoption("--helm-bin"))


def _helm_id(binary: Path) -> str:
    import subprocess

    version = subprocess.run(
        [str(binary), "version", "--template", "{{.Version}}"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.strip()
    return f"helm-{version or binary.name}"


@pytest.fixture(scope="session")
def each_helm(
    request: pytest.FixtureRequest,
    cluster: ClusterProvider,
    harness: Harness,
    tmp_path_factory: pytest.TempPathFactory,
) -> Helm:
    return harness.helm(request.param, tmp_path_factory.mktemp("helm"))


@pytest.fixture
def stage(
    request: pytest.FixtureRequest,
    harness: Harness,
    helm: Helm,
    app_images: AppImages,
    namespace: str,
    artifacts_dir: Path,
) -> Iterator[Stage]:
    """A release in this test's namespace; helm is ``each_helm`` if the test asks for it."""
    if "each_helm" in request.fixturenames:
        helm = request.getfixturevalue("each_helm")
    alone = request.node.get_closest_marker("alone") is not None
    stage = harness.open_stage(request.node.name, helm, namespace, artifacts_dir, alone=alone)
    try:
        with harness.phases.group(request.node.name):
            yield stage
    finally:
        harness.close_stage(stage, failed=request.node.stash.get(FAILED_KEY, False))
