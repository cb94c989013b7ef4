"""The import contracts (``[tool.importlinter]`` in pyproject.toml, run by ``tox -e lint``) can
go red: each is broken here by one import added to a copy of the tree, and lint-imports must
name that contract, and only it, as broken.

The copy holds the four root packages' Python files and pyproject.toml, nothing else:
lint-imports reads source, it imports nothing of ours.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "e2e", "bench", "tests")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

PRODUCT = "the product imports nothing from the harness, the benchmarks or the tests"
CLUSTER_ALONE = "the cluster package imports nothing above it: not the rest of e2e, not the product"
CLUSTER_LAYERS = "the cluster package's layers point one way"
NO_CYCLES = "no import cycles, between sibling modules at any depth"
CONTRACTS = (PRODUCT, CLUSTER_ALONE, CLUSTER_LAYERS, NO_CYCLES)


def _copy_tree(into: Path) -> Path:
    def not_source(folder: str, names: list[str]) -> list[str]:
        def source(name: str) -> bool:
            path = Path(folder) / name
            return name.endswith(".py") or (path.is_dir() and name != "__pycache__")

        return [name for name in names if not source(name)]

    for package in PACKAGES:
        shutil.copytree(ROOT / package, into / package, ignore=not_source)
    shutil.copy(ROOT / "pyproject.toml", into / "pyproject.toml")
    return into


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _verdicts(output: str) -> dict[str, str]:
    """Each contract's KEPT or BROKEN, from lint-imports' report (names may wrap)."""
    flat = " ".join(output.split())
    verdicts: dict[str, str] = {}
    for name in CONTRACTS:
        for verdict in ("KEPT", "BROKEN"):
            if f"{name} {verdict}" in flat:
                verdicts[name] = verdict
    return verdicts


def _add_import(tree: Path, module: str, line: str) -> None:
    path = tree / (module.replace(".", "/") + ".py")
    if not path.is_file():
        path = tree / module.replace(".", "/") / "__init__.py"
    assert path.is_file(), f"{module}: no such module in the tree"
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")


def test_lint_imports_is_installed_beside_pytest() -> None:
    assert LINT_IMPORTS.is_file(), f"{LINT_IMPORTS}: import-linter is not installed here"


def test_every_contract_is_kept_on_the_tree_as_it_is(tmp_path: Path) -> None:
    result = _lint_imports(_copy_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert _verdicts(result.stdout) == dict.fromkeys(CONTRACTS, "KEPT"), result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # Each import is chosen to break one contract only: none closes a cycle.
        pytest.param("app.gate.core", "import e2e.timeline_svg", PRODUCT, id="product-imports-e2e"),
        pytest.param("app.hook", "import tests.unit", PRODUCT, id="product-imports-tests"),
        pytest.param(
            "e2e.cluster.base", "import e2e.timeline_svg", CLUSTER_ALONE, id="cluster-imports-e2e"
        ),
        pytest.param(
            "e2e.cluster.host.commands",
            "import e2e.cluster.tools",
            CLUSTER_LAYERS,
            id="host-imports-tools",
        ),
        pytest.param(
            "e2e.cluster.wait", "import e2e.cluster.tools", CLUSTER_LAYERS, id="wait-imports-up"
        ),
        pytest.param(
            "e2e.playbook.checks", "import e2e.playbook.engine", NO_CYCLES, id="playbook-cycle"
        ),
    ],
)
def test_one_import_breaks_its_contract(
    tmp_path: Path, module: str, line: str, broken: str
) -> None:
    tree = _copy_tree(tmp_path)
    _add_import(tree, module, line)
    result = _lint_imports(tree)
    assert result.returncode == 1, result.stdout + result.stderr
    verdicts = _verdicts(result.stdout)
    assert verdicts[broken] == "BROKEN", result.stdout
    assert [n for n, v in verdicts.items() if v == "BROKEN"] == [broken], result.stdout
