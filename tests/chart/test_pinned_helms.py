"""The pinned helms (e2e/cluster/tools.py) the chart tests render with are what they claim."""

from __future__ import annotations

import os

from e2e.cluster import tools
from tests.chart.helm import Helm


def test_the_pinned_helms_are_what_they_claim(helm: Helm) -> None:
    pinned = tools.TOOLS[helm.name]
    version = tools.probe(pinned, helm.binary)
    assert version.split(".")[0] == pinned.major
    if not os.environ.get(pinned.env):
        assert version == pinned.version
