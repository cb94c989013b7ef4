"""The e2e session's plumbing under pytest-xdist (e2e/workers.py, e2e/phases.py).

A real ``pytest -n 2`` session over a small suite whose session fixture builds its thing
through ``workers.once``: the work is done once for both workers, the other worker reads
the result; and the controller's one phase table from the rows workers send it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from e2e.phases import Phases

ROOT = Path(__file__).resolve().parents[2]

CONFTEST = """
import json
import os
import time
from pathlib import Path

import pytest

from e2e import workers

MADE = Path(os.environ["ONCE_MADE"])


@pytest.fixture(scope="session")
def thing(pytestconfig, tmp_path_factory):
    def produce():
        with MADE.open("a") as made:
            made.write("made\\n")
        time.sleep(1)  # the other worker asks meanwhile
        return {"answer": 42}

    return workers.once(
        pytestconfig, tmp_path_factory, "thing", produce, lambda v: v, lambda v: v
    )
"""

TESTS = """
import json
import os
from pathlib import Path

from e2e import workers


def _record(thing, config):
    value, by = thing
    assert value == {"answer": 42}
    line = json.dumps({"worker": workers.worker_id(config), "by": by})
    with Path(os.environ["ONCE_SEEN"]).open("a") as seen:
        seen.write(line + "\\n")


def test_a(thing, pytestconfig):
    _record(thing, pytestconfig)


def test_b(thing, pytestconfig):
    _record(thing, pytestconfig)


def test_c(thing, pytestconfig):
    _record(thing, pytestconfig)


def test_d(thing, pytestconfig):
    _record(thing, pytestconfig)
"""


def test_once_does_the_work_in_one_worker_and_the_other_reads_it(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(CONFTEST)
    (suite / "test_once.py").write_text(TESTS)
    made, seen = tmp_path / "made.txt", tmp_path / "seen.txt"
    env = {
        **os.environ,
        "ONCE_MADE": str(made),
        "ONCE_SEEN": str(seen),
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "-p", "no:cacheprovider", "-q", str(suite)],
        cwd=suite,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert made.read_text() == "made\n"
    rows = [json.loads(line) for line in seen.read_text().splitlines()]
    assert len(rows) == 4
    by_worker = {row["worker"]: row["by"] for row in rows}
    assert sorted(by_worker) == ["gw0", "gw1"]
    # One worker made it (by: None), the other read what that one made.
    (maker,) = [worker for worker, by in by_worker.items() if by is None]
    (reader,) = [worker for worker in by_worker if worker != maker]
    assert by_worker[reader] == maker


def test_the_controller_prints_one_table_with_the_workers_rows() -> None:
    gw0, gw1, controller = Phases(worker="gw0"), Phases(worker="gw1"), Phases()
    gw0.add("cluster up (local)", 1.0)
    with gw0.group("test_one"):
        gw0.add("install (helm3)", 2.0)
    gw1.add("cluster up (local)", 0.5)
    with gw1.group("test_two"):
        gw1.add("upgrade (helm4)", 3.0)
    controller.extend(gw0.to_json())
    controller.extend(gw1.to_json())
    controller.add("cluster down (local)", 4.0)

    assert [(row["group"], row["phase"]) for row in controller.to_json()] == [
        ("session", "cluster up (local) [gw0]"),
        ("session", "cluster up (local) [gw1]"),
        ("session", "cluster down (local)"),
        ("test_one", "install (helm3)"),
        ("test_two", "upgrade (helm4)"),
    ]
    lines = controller.report().splitlines()
    assert lines[0] == "session"
    assert lines.count("session") == 1
    assert lines[4] == "test_one"
    assert lines[6] == "test_two"
