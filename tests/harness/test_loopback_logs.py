"""The harness's app logs last as long as the process that started the apps.

A unit run starts hundreds of ``python -m upgrade_gate_sample serve`` processes; each log used
to stay in /tmp for good (658 files were found after a few runs).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
from e2e.loopback import AppProcess
with AppProcess(threads=2) as app:
    app.get("/healthz")
    assert "Booting worker" in app.log()
    print(app.log_path)
"""


def test_the_logs_of_the_apps_go_when_their_process_ends() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    log = Path(done.stdout.strip().splitlines()[-1])
    assert log.name.startswith("app-")
    assert not log.exists(), f"{log} outlived the process"
    assert not log.parent.exists(), f"{log.parent} outlived the process"
