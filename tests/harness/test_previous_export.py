"""The previous release's files, exported from git for the previous-release scenario, with
every Python the project supports: the interpreter running the tests, and Debian 12's own
python3 (3.11.2, as on a laptop or a runner), on which `tarfile`'s `filter` did not exist."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = Path("/usr/bin/python3")

INTERPRETERS = [
    pytest.param(sys.executable, id="tests"),
    pytest.param(
        str(SYSTEM_PYTHON),
        id="system",
        marks=pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="no /usr/bin/python3"),
    ),
]

SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from e2e.previous import Previous, _commit, export

    commit = _commit("HEAD", Path.cwd())
    dest = export(Previous("HEAD", commit, "test"), Path(sys.argv[1]))
    print(sorted(p.name for p in dest.iterdir()))
    """
)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is needed to export")
@pytest.mark.parametrize("python", INTERPRETERS)
def test_the_previous_release_exports_with_every_python(python: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [python, "-c", SCRIPT, str(tmp_path / "previous")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "previous" / "chart" / "Chart.yaml").is_file()
    assert "'app'" in done.stdout, done.stdout
