"""One version for everything a release publishes: the library, the sample app (and its pin
on the library), and the chart. release.yml stops when the tag says another (the pypi job's
first step); this keeps them together between releases."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _project(path: Path) -> dict[str, object]:
    project: dict[str, object] = tomllib.loads(path.read_text())["project"]
    return project


def test_the_library_the_sample_and_the_chart_share_one_version() -> None:
    library = _project(ROOT / "pyproject.toml")["version"]
    sample = _project(ROOT / "app" / "sample" / "pyproject.toml")
    chart = yaml.safe_load((ROOT / "chart" / "Chart.yaml").read_text())
    assert sample["version"] == library
    assert (chart["version"], chart["appVersion"]) == (library, library)


def test_the_sample_pins_the_library_of_its_own_version() -> None:
    sample = _project(ROOT / "app" / "sample" / "pyproject.toml")
    dependencies = sample["dependencies"]
    assert isinstance(dependencies, list)
    (pin,) = [d for d in dependencies if d.startswith("helm-upgrade-gate")]
    assert re.fullmatch(r"helm-upgrade-gate\[[a-z,]+\]==(.+)", pin), pin
    assert pin.rsplit("==", 1)[1] == sample["version"]
