"""What each image runs, read from its Dockerfile and run here on the same packages.

The images are built only where a Docker daemon answers (e2e/images.py, which then starts
each once); these catch an ENTRYPOINT that names the wrong program before any build: the
app image once ran ``python3 -m upgrade_gate.hook serve``, which the hook refuses.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def instruction(dockerfile: Path, name: str) -> list[str]:
    """The JSON (exec) form of the last ``name`` instruction."""
    found = [
        line.split(None, 1)[1]
        for line in dockerfile.read_text().splitlines()
        if line.startswith(f"{name} ")
    ]
    assert found, f"{dockerfile.name} has no {name}"
    words = json.loads(found[-1])
    assert isinstance(words, list)
    return [str(w) for w in words]


def build_arg(dockerfile: Path, name: str) -> str:
    match = re.search(rf"^ARG {name}=(.*)$", dockerfile.read_text(), re.MULTILINE)
    assert match, f"{dockerfile.name} has no ARG {name} default"
    return match.group(1).strip().strip('"')


def run_here(command: list[str]) -> subprocess.CompletedProcess[str]:
    """``command`` with this Python for the image's ``python3``."""
    assert command[0] == "python3", command
    return subprocess.run(
        [sys.executable, *command[1:]], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("dockerfile", "program"),
    [("Dockerfile", "python -m upgrade_gate_sample"), ("hook.Dockerfile", "upgrade-gate-hook")],
)
def test_each_image_starts_its_own_program_with_its_default_command(
    dockerfile: str, program: str
) -> None:
    path = ROOT / "app" / dockerfile
    entrypoint, cmd = instruction(path, "ENTRYPOINT"), instruction(path, "CMD")
    # The default command's first word with --help: the program parses it, runs nothing.
    result = run_here([*entrypoint, *cmd[:1], "--help"] if cmd[0] != "--help" else entrypoint + cmd)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {program}"), result.stdout


def test_the_hook_image_runs_the_subcommands_the_chart_gives_it() -> None:
    entrypoint = instruction(ROOT / "app" / "hook.Dockerfile", "ENTRYPOINT")
    for sub in ("wait", "release"):
        result = run_here([*entrypoint, sub, "--help"])
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"usage: upgrade-gate-hook {sub}"), result.stdout


def test_the_app_image_carries_the_app_without_the_hook_and_the_hook_image_the_hook_only() -> None:
    app = build_arg(ROOT / "app" / "Dockerfile", "PACKAGE")
    hook = build_arg(ROOT / "app" / "hook.Dockerfile", "PACKAGE")
    assert "[hook]" not in app, app
    assert "/src/app/sample" in app, app
    assert hook == "/src[hook]", hook
