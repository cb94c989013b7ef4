"""Scenario files as pytest tests: each ``*.scenario.yaml`` is collected, as tavern collects YAML.

A file is loaded and checked at collection, so a bad one is a collection error
naming its line and field before any fixture (or cluster) is touched. A good
one yields one test per helm (``spec.helm: each``: one per ``--helm-bin``) and
per ``--scenario-repeat``, each an ordinary test function over the ``stage``
fixture: namespaces, artifacts, the phase table and ``--fail-on-skip`` work as
for the Python scenarios.

Registered by the root conftest.py; imports nothing heavy until a file is found.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from e2e.playbook.load import Play
    from e2e.stage import Stage

SUFFIX = ".scenario.yaml"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("upgrade-gate e2e")
    group.addoption(
        "--scenario-helm",
        type=int,
        choices=[3, 4],
        help="play every scenario file with this helm major, whatever its spec.helm says",
    )
    group.addoption(
        "--scenario-repeat",
        type=int,
        default=1,
        metavar="N",
        help="play each scenario file N times (python -m e2e.reproduce --repeat)",
    )


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.name.endswith(SUFFIX):
        collector: ScenarioFile = ScenarioFile.from_parent(parent, path=file_path)
        return collector
    return None


class ScenarioFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        from e2e.playbook.load import ScenarioFileError, load

        try:
            play = load(self.path)
        except ScenarioFileError as exc:
            raise self.CollectError(f"bad scenario file:\n{exc}") from None
        refused = play.refused_on(_cluster(self.config))
        if refused:
            raise self.CollectError(refused)
        repeat = max(1, int(self.config.getoption("--scenario-repeat")))
        for binary, helm_id in _helms(self.config, play.helm):
            for run in range(1, repeat + 1):
                ids = [i for i in (helm_id, f"run-{run}" if repeat > 1 else "") if i]
                name = play.name + (f"[{'-'.join(ids)}]" if ids else "")
                item: ScenarioItem = ScenarioItem.from_parent(
                    self, name=name, callobj=_test(play, binary)
                )
                item.add_marker(pytest.mark.e2e)
                if play.alone:
                    item.add_marker(pytest.mark.alone)
                if play.multinode:  # deselected where the cluster will have fewer nodes
                    item.add_marker(pytest.mark.multinode)
                yield item


class ScenarioItem(pytest.Function):
    """A test function whose source is a scenario file."""

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"scenario {self.name}"


def _test(play: Play, binary: Path) -> Callable[..., None]:
    def play_scenario_file(stage: Stage, tmp_path: Path) -> None:
        from e2e.playbook.engine import play as play_file

        verdict = play_file(play, stage, binary, tmp_path)
        if not verdict.held:
            failed = ", ".join(row.name for row in verdict.failures())
            pytest.fail(
                f"{play.path}: {len(verdict.failures())} expectation(s) failed: {failed}\n"
                f"{verdict.table()}",
                pytrace=False,
            )

    return play_scenario_file


def _cluster(config: pytest.Config) -> str:
    """The session's cluster (kind or existing), by the options every command shares; a bad
    option is the session's to report, not this file's."""
    from e2e.cluster.base import ClusterError
    from e2e.cluster.options import ClusterOptions

    try:
        return ClusterOptions.from_pytest(config).cluster
    except ClusterError:
        return "kind"


def _helms(config: pytest.Config, wanted: Any) -> list[tuple[Path, str]]:
    """(binary, test id) per helm to play the file with (e2e/playbook/helms.py)."""
    from e2e.cluster import tools
    from e2e.playbook.helms import helms_for

    given = tools.helm_binaries(config.getoption("--helm-bin"))
    return helms_for(wanted, given, config.getoption("--scenario-helm"))
