"""Fixtures of the smoke suite: the kind provider's own checks, and the existing provider on
the kind cluster through a registry.

The root conftest's `cluster` fixture brings kind up (reusing a running cluster) and down at
the end unless --keep-cluster is given. Tests marked ``own_daemon`` check what the provider
does to the host when it runs its own Docker daemon (root, no daemon answering: this
machine's CI); where a daemon of someone else's answers (a laptop, GitHub's runner) they are
deselected at collection, with a line saying so, never skipped. test_kind.py's last test takes
the cluster down itself and checks that nothing is left.
"""

from __future__ import annotations

import pytest

from e2e.cluster.host.docker import environment_daemon
from e2e.cluster.host.dockerd import DefaultSocketDaemon
from e2e.cluster.providers.interface import ClusterProvider
from e2e.cluster.providers.kind import KindProvider
from e2e.cluster.providers.kind.settings import KindSettings


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The test that takes the cluster down goes last; the checks of our own daemon run only
    where the provider will run it."""
    last = [item for item in items if item.get_closest_marker("takes_cluster_down")]
    items[:] = [item for item in items if item not in last] + last
    daemon: DefaultSocketDaemon = KindSettings().daemon
    if environment_daemon() is None or daemon.ours():
        return
    ours = [item for item in items if item.get_closest_marker("own_daemon")]
    if not ours:
        return
    config.hook.pytest_deselected(items=ours)
    items[:] = [item for item in items if item not in ours]
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"own_daemon: {len(ours)} test(s) deselected: a Docker daemon answers here, so the "
            "kind provider runs none of its own"
        )


@pytest.fixture(scope="session")
def kind(cluster: ClusterProvider) -> KindProvider:
    """The root conftest's session cluster (which brings it up and down): kind."""
    assert isinstance(cluster, KindProvider), f"the smoke suite runs on kind, not {cluster.name}"
    return cluster
