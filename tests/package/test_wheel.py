"""What ``pip install helm-upgrade-gate[EXTRA]`` gives an adopter, from the wheel as built.

Each extra is installed alone into a fresh venv from the built wheel (its dependencies from
the package index, as a user's pip would fetch them). Then, in that venv:

- the modules the extra promises import, and those it does not promise say which extra
  they need;
- the distributions installed are the extra's and nothing more (the list is printed:
  ``pytest -s`` or the report's captured output);
- nothing named ``app`` (or any top-level name but ``upgrade_gate``) lands in
  site-packages.

``tox -e package`` runs this after building the wheel and the sdist and checking both with
``twine check --strict``; ``--wheel-dir DIR`` names where they are (else they are built here).
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "helm-upgrade-gate"

# What each extra lets an adopter import.
PROMISES = {
    "": [
        "upgrade_gate",
        "upgrade_gate.core",
        "upgrade_gate.contract",
        "upgrade_gate.config",
        "upgrade_gate.conformance",
        "upgrade_gate.wsgi",
    ],
    "flask": ["upgrade_gate.flask"],
    "asgi": ["upgrade_gate.asgi"],
    "metrics": ["upgrade_gate.metrics"],
    "hook": ["upgrade_gate.hook", "upgrade_gate.hook.cli"],
    "kubeconfig": [],
}
# Distributions an extra must not bring: those of the integrations it is not.
FOREIGN = {
    *("flask", "werkzeug", "prometheus-client", "urllib3", "kubernetes", "gunicorn"),
    *("starlette", "anyio", "uvicorn"),
}
# Foreign names an extra brings through its own dependencies.
THROUGH = {"flask": {"werkzeug"}, "kubeconfig": {"urllib3"}}
# The whole set for the extras whose dependencies have none of their own, or a fixed few.
EXACT = {
    "": {PROJECT},
    "metrics": {PROJECT, "prometheus-client"},
    "hook": {PROJECT, "urllib3"},
    "flask": {
        PROJECT,
        *("flask", "werkzeug", "jinja2", "markupsafe", "itsdangerous", "click", "blinker"),
    },
}
# Installed with the venv itself, not by us.
TOOLING = {"pip", "setuptools", "wheel"}


def _declared() -> dict[str, list[str]]:
    """The extras as pyproject.toml declares them: name -> requirement names."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = {"": project["dependencies"], **project["optional-dependencies"]}
    names: dict[str, list[str]] = {}
    for extra, requirements in extras.items():
        names[extra] = [_name(r) for r in requirements]
    return names


def _name(requirement: str) -> str:
    for stop in "[<>=!~; ":
        requirement = requirement.split(stop, 1)[0]
    return requirement.strip().lower().replace("_", "-")


@pytest.fixture(scope="session")
def wheel(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = request.config.getoption("--wheel-dir")
    if given:
        (built,) = Path(given).glob("helm_upgrade_gate-*.whl")
        return built
    # Built once for every xdist worker: two builds in one source tree collide.
    shared = tmp_path_factory.getbasetemp().parent / "dist"
    shared.mkdir(exist_ok=True)
    with (shared / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not list(shared.glob("helm_upgrade_gate-*.whl")):
            subprocess.run(
                [sys.executable, "-m", "build", "--wheel", "--outdir", str(shared), str(ROOT)],
                check=True,
                capture_output=True,
            )
    (built,) = shared.glob("helm_upgrade_gate-*.whl")
    return built


def test_the_wheel_holds_upgrade_gate_and_nothing_else_at_the_top(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/", 1)[0] for name in archive.namelist()}
        typed = "upgrade_gate/py.typed" in archive.namelist()
    assert {t for t in tops if not t.endswith(".dist-info")} == {"upgrade_gate"}
    assert typed, "upgrade_gate/py.typed is missing: type checkers would ignore our hints"


def test_the_extras_tested_here_are_those_pyproject_declares() -> None:
    declared = set(_declared())
    assert declared - {"test", "e2e", "lint"} == set(PROMISES)


@pytest.mark.parametrize("extra", list(PROMISES), ids=lambda e: e or "no-extra")
def test_each_extra_alone_installs_what_it_says(
    extra: str, wheel: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env)
    python = env / "bin" / "python"
    target = f"{wheel}[{extra}]" if extra else str(wheel)
    _run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", target)

    installed = {
        d["name"].lower().replace("_", "-")
        for d in json.loads(_run(python, "-m", "pip", "list", "--format=json"))
    } - TOOLING
    with capsys.disabled():
        print(f"\n[{extra or 'no extra'}] installs: {', '.join(sorted(installed))}")

    own = set(_declared()[extra])
    assert own <= installed, f"{extra}: not installed: {own - installed}"
    if extra in EXACT:
        assert installed == EXACT[extra]
    assert not (installed & FOREIGN) - own - THROUGH.get(extra, set()), installed

    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"))
    tops = {p.name for p in site.iterdir()}
    assert "app" not in tops, sorted(tops)
    assert "upgrade_gate" in tops

    for module in [*PROMISES[""], *PROMISES[extra]]:
        _run(python, "-c", f"import {module}")


@pytest.mark.parametrize(
    ("module", "extra"),
    [
        ("upgrade_gate.flask", "flask"),
        ("upgrade_gate.metrics", "metrics"),
        ("upgrade_gate.asgi", "asgi"),
        ("upgrade_gate.hook", "hook"),
    ],
)
def test_an_integration_without_its_extra_names_the_extra(
    module: str, extra: str, wheel: Path, tmp_path: Path
) -> None:
    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env)
    python = env / "bin" / "python"
    _run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel))
    result = subprocess.run(
        [str(python), "-c", f"import {module}"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert f"pip install 'helm-upgrade-gate[{extra}]'" in result.stderr, result.stderr


def _run(python: Path, *args: str) -> str:
    result = subprocess.run([str(python), *args], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout.strip()
