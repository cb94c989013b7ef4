"""The import contracts (``[tool.importlinter]`` in pyproject.toml, run by ``tox -e lint``) can
go red: each is broken here by one import added to a copy of the tree, and lint-imports must
name that contract, and only it, as broken.

The copy holds the five root packages' Python files (the two projects under app/ at the top,
where lint-imports finds them first) and pyproject.toml, nothing else: lint-imports reads
source, it imports nothing of ours.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Each root package, by where it lives in the repository.
PACKAGES = {
    "upgrade_gate": "app/upgrade_gate",
    "upgrade_gate_sample": "app/sample/upgrade_gate_sample",
    "e2e": "e2e",
    "bench": "bench",
    "tests": "tests",
}
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

PRODUCT = (
    "the library imports nothing from the sample app, the harness, the benchmarks or the tests"
)
SAMPLE = "the sample app uses the library as an adopter would, and nothing of the harness or tests"
CORE = (
    "the gate's core and its WSGI gate need nothing outside the standard library (pip install "
    "with no extra; the package's own __init__: tests/package/test_wheel.py)"
)
ALONE = "each integration stands alone: its extra is all it needs"
CLUSTER_ALONE = "the cluster package imports nothing above it: not the rest of e2e, not the product"
CLUSTER_LAYERS = "the cluster package's layers point one way"
NO_CYCLES = "no import cycles, between sibling modules at any depth"
CONTRACTS = (PRODUCT, SAMPLE, CORE, ALONE, CLUSTER_ALONE, CLUSTER_LAYERS, NO_CYCLES)


def _copy_tree(into: Path) -> Path:
    def not_source(folder: str, names: list[str]) -> list[str]:
        def source(name: str) -> bool:
            path = Path(folder) / name
            return name.endswith(".py") or (path.is_dir() and name != "__pycache__")

        return [name for name in names if not source(name)]

    for package, where in PACKAGES.items():
        shutil.copytree(ROOT / where, into / package, ignore=not_source)
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
        pytest.param(
            "upgrade_gate.hook.release",
            "import e2e.cluster.wait",
            PRODUCT,
            id="product-imports-e2e",
        ),
        pytest.param("upgrade_gate.hook", "import tests.unit", PRODUCT, id="product-imports-tests"),
        pytest.param(
            "upgrade_gate.core",
            "import upgrade_gate_sample.worker",
            PRODUCT,
            id="library-imports-sample",
        ),
        pytest.param("upgrade_gate_sample.cli", "import e2e.kube", SAMPLE, id="sample-imports-e2e"),
        pytest.param("upgrade_gate.core", "import flask", CORE, id="core-imports-flask"),
        pytest.param("upgrade_gate.config", "import urllib3", CORE, id="config-imports-urllib3"),
        pytest.param("upgrade_gate.wsgi", "import werkzeug", CORE, id="wsgi-imports-werkzeug"),
        pytest.param(
            "upgrade_gate.asgi", "import upgrade_gate.flask", ALONE, id="asgi-imports-flask-gate"
        ),
        pytest.param(
            "upgrade_gate.wsgi", "import upgrade_gate.asgi", ALONE, id="wsgi-imports-asgi-gate"
        ),
        pytest.param(
            "upgrade_gate.conformance", "import requests", CORE, id="conformance-imports-requests"
        ),
        pytest.param(
            "upgrade_gate.hook.pods",
            "import upgrade_gate.metrics",
            ALONE,
            id="hook-imports-metrics",
        ),
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
