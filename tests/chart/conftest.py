"""Fixtures for the chart's render tests: the real helm 3 and helm 4 binaries.

The binaries come from e2e.cluster.tools (pinned, installed on first use, or named by
UPGRADE_GATE_HELM3 / UPGRADE_GATE_HELM4). A missing helm is an error, not a
skip: a chart suite that silently ran on one helm or none would prove nothing.
"""

from __future__ import annotations

import pytest

from e2e.cluster import tools
from tests.chart.helm import Helm, Manifest


@pytest.fixture(scope="session", params=["helm3", "helm4"])
def helm(request: pytest.FixtureRequest) -> Helm:
    name: str = request.param
    try:
        binary = tools.path(name)
    except tools.ToolError as exc:
        pytest.fail(f"{name} is not available: {exc}", pytrace=False)
    return Helm(name, binary)


@pytest.fixture(scope="session")
def default_render(helm: Helm) -> list[Manifest]:
    """The chart with its default values (read-only: tests must not change it)."""
    return helm.template()
