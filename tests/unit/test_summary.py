"""The CI job summary (``python -m e2e.summary``) on real results.

``data/e2e-results/`` is a results folder exactly as a real ``tox -e e2e`` run on the local
cluster wrote it (``-k "previous_release or (operation_in_flight and v3)"``): the JUnit XML,
``phases.json`` and two timelines. Failures come from a real pytest session run here, so the
annotations point at a line pytest itself reported.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).parent / "data" / "e2e-results"


def summary(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "e2e.summary", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_summary_of_a_real_run_has_verdicts_phases_and_timelines() -> None:
    done = summary(RESULTS, "--title", "e2e: local", "--artifact-url", "https://example.test/a/1")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    names = re.findall(r'<testcase [^>]*name="([^"]+)"', (RESULTS / "junit.xml").read_text())
    assert names
    assert text.startswith("## e2e: local\n")
    assert f"**passed**: {len(names)} passed, 0 failed, 0 error, 0 skipped" in text
    for name in names:
        assert re.search(
            rf"^\| ✅ passed \| `e2e/scenarios/\S+\.py::{re.escape(name)}` \|", text, re.M
        )
    # Every phase the session measured, in the table, under its test.
    for row in json.loads((RESULTS / "phases.json").read_text()):
        assert f"| {row['phase']} | {row['seconds']:.1f} |" in text
        assert f"| **{row['group']}** | |" in text
    # One chart per recorded timeline, titled as its picture is, and the artifact linked.
    timelines = sorted(RESULTS.glob("*/timeline.json"))
    assert timelines
    assert text.count("```mermaid\ngantt\n") == len(timelines)
    assert "[artifact](https://example.test/a/1)" in text
    for path in timelines:
        title = re.search(r'font-weight="bold">([^<]*)<', path.with_suffix(".svg").read_text())
        assert title
        assert f"#### ✅ {title.group(1)}" in text


def test_the_chart_draws_what_the_timeline_recorded() -> None:
    from e2e.summary import gantt, moments
    from e2e.timeline import Timeline

    path = next(p for p in sorted(RESULTS.glob("*/timeline.json")) if "in_flight" in str(p))
    timeline = Timeline.from_json(json.loads(path.read_text()))
    chart = gantt(timeline)
    lines = chart.splitlines()
    assert lines[:5] == [
        "gantt",
        "    dateFormat x",
        "    axisFormat %M:%S",
        "    tickInterval 5second",
        "    todayMarker off",
    ]
    # Mermaid ends a task name at ':': the marks' colons are gone, the times are not.
    tasks = [line for line in lines if " :" in line]
    assert tasks
    for task in tasks:
        name, spec = task.rsplit(" :", 1)
        assert ":" not in name
        *_, start, end = (part.strip() for part in spec.split(","))
        assert 0 <= int(start) <= int(end)
    (op,) = timeline.operations.values()
    assert op.finished is not None
    # Whatever began before the recording (the operation did) starts at the chart's left edge.
    started_ms = int(max(0.0, op.started - timeline.started) * 1000)
    finished_ms = int((op.finished - timeline.started) * 1000)
    assert f"operation {op.id} {op.seconds:g}s succeeded :{started_ms}, {finished_ms}" in chart
    assert "hook - upgrade may proceed :milestone" in chart
    # The moments table is in time order; what came before the recording (the operation
    # started just before helm upgrade) has a negative time.
    rows = moments(timeline)
    assert [at for _, at in rows] == sorted(at for _, at in rows)
    at = dict(rows)
    assert 0 <= at["helm upgrade started"] < 1
    assert at[f"operation {op.id} ({op.seconds:g} s) on {op.pod} started"] <= 0
    assert at[f"operation {op.id} succeeded"] < at["hook: upgrade may proceed"]


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real pytest session with a failing and an erroring test, as e2e/scenarios lays out."""
    work = tmp_path_factory.mktemp("failing")
    tests = work / "e2e" / "scenarios"
    tests.mkdir(parents=True)
    (work / "e2e" / "__init__.py").write_text("")
    (tests / "__init__.py").write_text("")
    (tests / "test_broken.py").write_text(
        textwrap.dedent(
            """\
            import pytest


            @pytest.fixture
            def broken():
                raise RuntimeError("cluster: 100% gone")


            def test_fails():
                value = 41
                assert value == 42, "the answer,\\nmissing"


            def test_errors(broken):
                pass


            def test_passes():
                pass
            """
        )
    )
    results = work / "artifacts"
    results.mkdir()
    pytest = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts="]
    subprocess.run(
        [*pytest, "--rootdir", str(work), f"--junitxml={results / 'junit.xml'}", "e2e/scenarios"],
        cwd=work,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert (results / "junit.xml").is_file()
    return work


def test_failures_are_shown_and_annotated_at_their_line(failed_run: Path) -> None:
    from e2e.summary import read, workflow_commands

    results = read(failed_run / "artifacts")
    verdicts = {case.name: case.verdict for case in results.cases}
    assert verdicts == {"test_fails": "failed", "test_errors": "error", "test_passes": "passed"}

    done = summary(failed_run / "artifacts")
    assert done.returncode == 0, done.stderr
    assert "**FAILED**: 1 passed, 1 failed, 1 error, 0 skipped" in done.stdout
    assert "### Failures" in done.stdout
    assert "assert 41 == 42" in done.stdout

    source = (failed_run / "e2e" / "scenarios" / "test_broken.py").read_text().splitlines()
    assert_line = next(i for i, line in enumerate(source, 1) if "assert value == 42" in line)
    commands = workflow_commands(results, root=failed_run)
    assert len(commands) == 2
    fails = next(c for c in commands if "test_fails" in c)
    assert fails.startswith(f"::error file=e2e/scenarios/test_broken.py,line={assert_line},")
    assert "title=test_fails failed::" in fails
    # Workflow commands end at a newline; messages keep theirs (and their %) encoded.
    assert "\n" not in fails
    assert "%0A" in fails
    errors = next(c for c in commands if "test_errors" in c)
    assert "100%25 gone" in errors


def test_a_session_that_never_ran_a_test_says_so(tmp_path: Path) -> None:
    (tmp_path / "e2e.log").write_text("kind create cluster failed\n")
    done = summary(tmp_path, "--title", "e2e")
    assert done.returncode == 0, done.stderr
    assert "**No test ran**" in done.stdout
    assert summary(tmp_path, "--annotations").stdout == ""


def test_a_missing_folder_is_refused(tmp_path: Path) -> None:
    done = summary(tmp_path / "nowhere")
    assert done.returncode == 2
    assert "is not a folder" in done.stderr


def test_a_scenario_file_is_found_behind_its_dotted_classname(tmp_path: Path) -> None:
    from e2e.summary import source_file

    files = tmp_path / "e2e" / "scenarios" / "files"
    files.mkdir(parents=True)
    (files / "idle-upgrade.scenario.yaml").write_text("kind: Scenario\n")
    (tmp_path / "e2e" / "scenarios" / "test_x.py").write_text("")
    assert (
        source_file("e2e.scenarios.files.idle-upgrade.scenario.yaml", tmp_path)
        == "e2e/scenarios/files/idle-upgrade.scenario.yaml"
    )
    assert source_file("e2e.scenarios.test_x", tmp_path) == "e2e/scenarios/test_x.py"
    assert source_file("", tmp_path) == ""
