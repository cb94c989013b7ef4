"""The CI job summary (``python -m e2e.summary``) on real results.

``data/e2e-results/`` is a results folder exactly as a real ``tox -e e2e`` run (on the local
cluster of the time) wrote it (``-k "previous_release or (operation_in_flight and v3)"``): the
JUnit XML, ``phases.json`` and two timelines. Failures come from a real pytest session run
here, so the annotations point at a line pytest itself reported.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

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


def _bars(chart: str) -> list[tuple[str, str, str]]:
    """Each task of a Mermaid gantt chart: its name, start and end as the chart wrote them."""
    bars = []
    for line in chart.splitlines():
        if " :" in line:
            name, spec = line.rsplit(" :", 1)
            *_, start, end = (part.strip() for part in spec.split(","))
            bars.append((name.strip(), start, end))
    return bars


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
        "    dateFormat YYYY-MM-DD HH:mm:ss.SSS",
        "    axisFormat %M:%S",
        "    tickInterval 5second",
        "    todayMarker off",
    ]
    # Mermaid ends a task name at ':': the marks' colons are gone, the times are not.
    # The times are clock times from midnight, 2000-01-01, where the recording began.
    bars = _bars(chart)
    assert bars
    midnight = datetime(2000, 1, 1)
    for name, start, end in bars:
        assert ":" not in name
        assert midnight <= datetime.fromisoformat(start) <= datetime.fromisoformat(end)
    (op,) = timeline.operations.values()
    assert op.finished is not None
    # Whatever began before the recording (the operation did) starts at the chart's left edge.
    assert op.started < timeline.started
    finished_ms = int((op.finished - timeline.started) * 1000)
    (bar,) = (bar for bar in bars if bar[0] == f"operation {op.id} {op.seconds:g}s succeeded")
    assert bar[1] == "2000-01-01 00:00:00.000"
    assert datetime.fromisoformat(bar[2]) - midnight == timedelta(milliseconds=finished_ms)
    assert "hook - upgrade may proceed :milestone" in chart
    # The moments table is in time order; what came before the recording (the operation
    # started just before helm upgrade) has a negative time.
    rows = moments(timeline)
    assert [at for _, at in rows] == sorted(at for _, at in rows)
    at = dict(rows)
    assert 0 <= at["helm upgrade started"] < 1
    assert at[f"operation {op.id} ({op.seconds:g} s) on {op.pod} started"] <= 0
    assert at[f"operation {op.id} succeeded"] < at["hook: upgrade may proceed"]


# Mermaid reads a chart's dates, and labels its axis, in the viewer's time zone. A clock a
# whole number of hours from UTC's shows the same minutes and seconds as UTC's (Los Angeles);
# one half or three quarters of an hour off does not.
ZONES = [
    "UTC",
    "America/Los_Angeles",  # UTC-8 (UTC-7 in summer)
    "Asia/Kolkata",  # UTC+5:30
    "Asia/Kathmandu",  # UTC+5:45 (+5:30 before 1986)
    "Pacific/Chatham",  # UTC+12:45 (+13:45 in summer)
]


def axis_reading(chart: str, value: str, zone: str) -> str:
    """What the chart's axis reads, seen in *zone*, at a date the chart wrote.

    Mermaid parses the date with dayjs (``dateFormat x`` is an instant in epoch milliseconds,
    any other format a clock time in the viewer's zone), places it on a d3 ``scaleTime`` and
    labels the axis with d3's ``timeFormat``, which writes the viewer's local time.
    """
    settings = dict(re.findall(r"^ +(dateFormat|axisFormat) (.+)$", chart, re.M))
    local = ZoneInfo(zone)
    if settings["dateFormat"] == "x":
        instant = datetime.fromtimestamp(int(value) / 1000, UTC)
    else:
        tokens = {"YYYY": "%Y", "MM": "%m", "DD": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}
        tokens["SSS"] = "%f"
        pattern = re.sub("|".join(tokens), lambda t: tokens[t[0]], settings["dateFormat"])
        clock = datetime.strptime(value, pattern)
        # Through UTC and back, as a JavaScript Date goes: a time the clocks skip moves on.
        instant = clock.replace(tzinfo=local).astimezone(UTC)
    return instant.astimezone(local).strftime(settings["axisFormat"])


@pytest.mark.parametrize("zone", ZONES)
def test_the_charts_axis_starts_at_zero_in_every_time_zone(zone: str) -> None:
    from e2e.summary import gantt
    from e2e.timeline import Timeline

    path = next(p for p in sorted(RESULTS.glob("*/timeline.json")) if "in_flight" in str(p))
    timeline = Timeline.from_json(json.loads(path.read_text()))
    chart = gantt(timeline)
    bars = _bars(chart)
    assert bars

    def readings(where: str) -> list[tuple[str, str, str]]:
        return [
            (name, axis_reading(chart, start, where), axis_reading(chart, end, where))
            for name, start, end in bars
        ]

    # Every bar reads as it does in UTC, whose clock an epoch's minutes and seconds fit.
    assert readings(zone) == readings("UTC")
    # The operation began before the recording: its bar starts at the left edge, 00:00, and
    # ends when it finished, counted from the recording's start.
    (op,) = timeline.operations.values()
    assert op.finished is not None
    minutes, seconds = divmod(int((op.finished - timeline.started) * 1000) // 1000, 60)
    name = f"operation {op.id} {op.seconds:g}s succeeded"
    assert (name, "00:00", f"{minutes:02}:{seconds:02}") in readings(zone)


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
