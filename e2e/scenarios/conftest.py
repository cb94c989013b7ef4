"""Scenarios that need several nodes run only where the cluster will have them.

A ``multinode`` test needs :data:`MULTINODE_NODES` nodes (one control plane, two workers).
At collection the node count is known from the options: a kind cluster has ``--kind-nodes``
(3 unless told otherwise). Where that is fewer, such tests are deselected (and a line says
so), so a one-node run neither skips nor fails them; on a
cluster whose size is not known beforehand (``--cluster existing``) they run, and fail
saying what they need when the cluster is smaller (``workers`` in test_multinode.py).

Every test collected here is an ``e2e`` test: tox selects ``-m "e2e and not soak"``, and a
module that forgot its ``pytestmark`` would otherwise be deselected without a word.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e.cluster.options import ClusterOptions

MULTINODE_NODES = 3


def planned_nodes(config: pytest.Config) -> int | None:
    """How many nodes the session's cluster will have; None when only the cluster knows."""
    options = ClusterOptions.from_pytest(config)
    return options.kind_nodes if options.cluster == "kind" else None


@pytest.hookimpl(tryfirst=True)  # before pytest's own -m selection
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if item.get_closest_marker("e2e") is None and here in item.path.parents:
            item.add_marker(pytest.mark.e2e)
    nodes = planned_nodes(config)
    if nodes is None or nodes >= MULTINODE_NODES:
        return
    multinode = [item for item in items if item.get_closest_marker("multinode")]
    if not multinode:
        return
    config.hook.pytest_deselected(items=multinode)
    items[:] = [item for item in items if item not in multinode]
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"multinode: {len(multinode)} test(s) deselected: the kind cluster will have "
            f"{nodes} node(s), they need {MULTINODE_NODES} (--kind-nodes 3)"
        )
