"""What a person sees of an e2e run on GitHub: the job summary, and annotations on failed tests.

Given a results folder (the e2e artifacts folder: pytest's JUnit XML, ``phases.json`` and one
folder per test with ``timeline.json`` and ``timeline.svg``), it writes Markdown: the verdict
of every test, the failures' messages, the phase-timing table, and each timeline as a Mermaid
Gantt chart (GitHub draws those in job summaries; the SVG pictures are in the artifact, linked
when ``--artifact-url`` is given). With ``--annotations`` it prints GitHub workflow commands
instead (``::error file=...,line=...::``), one per failed test, pointing at the line where the
test failed.

    python -m e2e.summary artifacts --title "e2e: kind v1.34.3, helm 3" >> "$GITHUB_STEP_SUMMARY"
    python -m e2e.summary artifacts --annotations
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from e2e.timeline import Timeline

ROOT = Path(__file__).resolve().parent.parent
# GitHub keeps at most 1 MiB of summary per step: long messages are cut.
MESSAGE_CHARS = 4000
ICONS = {"passed": "✅", "failed": "❌", "error": "💥", "skipped": "⏭️"}
# Mermaid reads a gantt chart's dates, and labels its axis, in the viewer's time zone. An
# instant (dateFormat x) read in India (UTC+5:30) labels the chart's start 30:00; a clock time
# is read and labelled in the same zone, so it reads the same in every zone. The charts'
# times are clock times from midnight of a day on which no zone moves its clocks.
CHART_MIDNIGHT = datetime(2000, 1, 1)
CHART_DATE_FORMAT = "YYYY-MM-DD HH:mm:ss.SSS"  # dayjs's tokens for what _clock_time writes


@dataclass
class Case:
    """One test as JUnit reports it."""

    classname: str
    name: str
    seconds: float
    verdict: str  # passed, failed, error, skipped
    message: str = ""
    details: str = ""

    @property
    def nodeid(self) -> str:
        return f"{self.file}::{self.name}" if self.file else self.name

    @property
    def file(self) -> str:
        """The test's file, relative to the repository (``e2e/scenarios/test_x.py``)."""
        return source_file(self.classname)

    @property
    def folder(self) -> str:
        """The artifacts folder the harness gives this test (conftest.py's ``artifacts_dir``)."""
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", self.name).strip("-")

    def line(self) -> int | None:
        """The last line of the test's own file in the failure's traceback."""
        if not self.file:
            return None
        found = re.findall(rf"^{re.escape(self.file)}:(\d+):", self.details, re.MULTILINE)
        return int(found[-1]) if found else None


def source_file(classname: str, root: Path = ROOT) -> str:
    """The file behind a JUnit classname, which is its path with dots for slashes.

    ``e2e.scenarios.test_x`` is ``e2e/scenarios/test_x.py``; a scenario file's
    ``e2e.scenarios.files.idle-upgrade.scenario.yaml`` is the file in ``e2e/scenarios/files``
    whose name is the rest, dots and all.
    """
    if not classname:
        return ""
    python = classname.replace(".", "/") + ".py"
    if (root / python).is_file():
        return python
    parts = classname.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        candidate = Path(*parts[:cut]) / ".".join(parts[cut:])
        if (root / candidate).is_file():
            return candidate.as_posix()
    return python


@dataclass
class Results:
    folder: Path
    cases: list[Case] = field(default_factory=list)
    seconds: float = 0.0
    junit: list[Path] = field(default_factory=list)
    phases: list[tuple[str, str, float]] = field(default_factory=list)
    timelines: list[Path] = field(default_factory=list)

    def count(self, verdict: str) -> int:
        return sum(1 for case in self.cases if case.verdict == verdict)

    @property
    def ok(self) -> bool:
        return bool(self.cases) and self.count("failed") == self.count("error") == 0


def read(folder: Path) -> Results:
    results = Results(folder)
    for xml_file in sorted(folder.glob("*.xml")):
        root = ET.parse(xml_file).getroot()  # noqa: S314 (our own pytest's JUnit XML)
        suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
        if not suites:
            continue
        results.junit.append(xml_file)
        for suite in suites:
            results.seconds += float(suite.get("time") or 0)
            results.cases += [_case(element) for element in suite.iter("testcase")]
    phases_file = folder / "phases.json"
    if phases_file.is_file():
        results.phases = [
            (row["group"], row["phase"], float(row["seconds"]))
            for row in json.loads(phases_file.read_text())
        ]
    results.timelines = sorted(folder.glob("*/timeline.json"))
    return results


def _case(element: ET.Element) -> Case:
    case = Case(
        classname=element.get("classname", ""),
        name=element.get("name", ""),
        seconds=float(element.get("time") or 0),
        verdict="passed",
    )
    # A test that failed and then errored in teardown counts as failed.
    for tag, verdict in (("failure", "failed"), ("error", "error"), ("skipped", "skipped")):
        found = element.find(tag)
        if found is not None:
            case.verdict = verdict
            case.message = found.get("message", "")
            case.details = found.text or ""
            break
    return case


# -- Markdown ------------------------------------------------------------------------------


def markdown(results: Results, title: str = "e2e", artifact_url: str = "") -> str:
    out: list[str] = [f"## {title}", ""]
    if not results.junit:
        out += [
            f"**No test ran**: no JUnit XML in `{results.folder.name}/` (the session stopped "
            "before its tests, e.g. while the cluster came up or the images loaded). "
            "The log and the cluster's diagnostics are in the artifact.",
            "",
        ]
    else:
        counts = ", ".join(
            f"{results.count(v)} {v}" for v in ("passed", "failed", "error", "skipped")
        )
        verdict = "passed" if results.ok else "FAILED"
        out += [f"**{verdict}**: {counts} in {_duration(results.seconds)}", ""]
        out += ["| | test | time |", "| --- | --- | ---: |"]
        for case in results.cases:
            out.append(
                f"| {ICONS[case.verdict]} {case.verdict} | `{_cell(case.nodeid)}` "
                f"| {case.seconds:.1f} s |"
            )
        out.append("")
        failed = [c for c in results.cases if c.verdict in ("failed", "error")]
        if failed:
            out += ["### Failures", ""]
            for case in failed:
                text = case.details.strip() or case.message
                if len(text) > MESSAGE_CHARS:
                    text = "…\n" + text[-MESSAGE_CHARS:]
                out += [
                    f"<details><summary>{ICONS[case.verdict]} <code>{html.escape(case.nodeid)}"
                    f"</code>: {html.escape(_first_line(case.message))}</summary>",
                    "",
                    "```text",
                    text.replace("```", "` ` `"),
                    "```",
                    "",
                    "</details>",
                    "",
                ]
    if results.phases:
        out += ["### Phase timings", "", "| phase | seconds |", "| --- | ---: |"]
        # Grouped as pytest prints them: the session's, then each test's, in first-seen order.
        for group in dict.fromkeys(group for group, _, _ in results.phases):
            out.append(f"| **{_cell(group)}** | |")
            out += [
                f"| {_cell(phase)} | {seconds:.1f} |"
                for in_group, phase, seconds in results.phases
                if in_group == group
            ]
        out.append("")
    if results.timelines:
        out += ["### Timelines", ""]
        if artifact_url:
            out += [
                f"The pictures (`<test>/timeline.svg`) and logs are in the "
                f"[artifact]({artifact_url}).",
                "",
            ]
        verdicts = {case.folder: case for case in results.cases}
        for path in results.timelines:
            out += _timeline_section(path, verdicts.get(path.parent.name))
    return "\n".join(out) + "\n"


def _timeline_section(path: Path, case: Case | None) -> list[str]:
    timeline = Timeline.from_json(json.loads(path.read_text()))
    title = _svg_title(path.with_name("timeline.svg")) or path.parent.name
    icon = f"{ICONS[case.verdict]} " if case else ""
    return [
        f"#### {icon}{html.escape(title)}",
        "",
        f"`{path.parent.name}/timeline.svg`",
        "",
        "```mermaid",
        gantt(timeline),
        "```",
        "",
        "<details><summary>moments</summary>",
        "",
        "| moment | at |",
        "| --- | ---: |",
        *(f"| {_cell(label)} | {at:+.1f} s |" for label, at in moments(timeline)),
        "",
        "</details>",
        "",
    ]


def _svg_title(svg: Path) -> str:
    if not svg.is_file():
        return ""
    found = re.search(r'font-weight="bold">([^<]*)</text>', svg.read_text(errors="replace"))
    return html.unescape(found.group(1)) if found else ""


def gantt(timeline: Timeline) -> str:
    """The timeline as a Mermaid Gantt chart, in minutes and seconds since the recording began."""
    t0 = timeline.started
    ends = [t for _, t in timeline.marks]
    for pod in timeline.pods.values():
        ends += [t for t in (pod.ready, pod.exited, pod.terminating, pod.gone) if t]
    for job in timeline.jobs.values():
        ends += [t for t in (job.completed, job.failed) if t]
    for op in timeline.operations.values():
        ends.append(op.finished or op.planned_end)
    t_end = max([t0, *ends]) + 1

    def ms(moment: float | None) -> int:
        return int(max(0.0, (moment if moment is not None else t_end) - t0) * 1000)

    span = t_end - t0
    tick = "5second" if span <= 60 else "15second" if span <= 180 else "1minute"
    lines = [
        "gantt",
        f"    dateFormat {CHART_DATE_FORMAT}",
        "    axisFormat %M:%S",
        f"    tickInterval {tick}",
        "    todayMarker off",
    ]

    def task(name: str, start: float | None, end: float | None, tag: str = "") -> None:
        begin, finish = ms(start), ms(end)
        finish = max(finish, begin + 100)  # a bar too short to see is still drawn
        prefix = f"{tag}, " if tag else ""
        when = f"{_clock_time(begin)}, {_clock_time(finish)}"
        lines.append(f"    {_task_name(name)} :{prefix}{when}")

    started = [(n, t) for n, t in timeline.marks if n.startswith("helm ") and n.endswith("started")]
    ended = [t for n, t in timeline.marks if n.startswith("helm ") and n.endswith("ended")]
    if started:
        lines.append("    section helm")
        for i, (name, moment) in enumerate(started):
            task(name.removesuffix(" started"), moment, ended[i] if i < len(ended) else None)
    if timeline.jobs:
        lines.append("    section hook Job")
        for job in sorted(timeline.jobs.values(), key=lambda j: j.created):
            outcome = "completed" if job.completed else "failed" if job.failed else "running"
            task(
                f"{job.name} {outcome}",
                job.created,
                job.completed or job.failed,
                "crit" if job.failed else "",
            )
    for pod in sorted(timeline.pods.values(), key=lambda p: (p.role != "hook", p.created)):
        tag = pod.image.rsplit(":", 1)[-1]
        lines.append(f"    section {_task_name(f'{pod.role} …{pod.name[-5:]} ({tag})')}")
        end = pod.gone
        stop = min((t for t in (pod.exited, pod.terminating) if t is not None), default=end)
        if not (pod.ready and pod.ready <= t0):  # not already Ready when the recording began
            task("starting", pod.created, pod.ready or stop, "done")
        if pod.ready:
            task("Ready", pod.ready, stop, "active")
        if pod.terminating and (pod.exited is None or pod.exited > pod.terminating):
            task("terminating", pod.terminating, pod.exited or end)
        if pod.exited:
            task(f"exited {pod.exit_code}", pod.exited, end, "done")
        for op in sorted(
            (o for o in timeline.operations.values() if o.pod == pod.name), key=lambda o: o.started
        ):
            verdict = "CUT OFF" if op.cut_off else op.state
            task(
                f"operation {op.id} {op.seconds:g}s {verdict}",
                op.started,
                op.finished,
                "crit" if op.cut_off or op.state == "failed" else "",
            )
    others = [(n, t) for n, t in timeline.marks if not n.startswith("helm ")]
    if others:
        lines.append("    section marks")
        for name, moment in others:
            task(name, moment, moment, "milestone")
    return "\n".join(lines)


def _clock_time(ms: int) -> str:
    """*ms* milliseconds after the chart's midnight, as ``CHART_DATE_FORMAT`` writes it."""
    return (CHART_MIDNIGHT + timedelta(milliseconds=ms)).isoformat(" ", "milliseconds")


def moments(timeline: Timeline) -> list[tuple[str, float]]:
    """Every state change on the timeline, in order, in seconds since the recording began.

    What happened before the recording began (the operation started just before ``helm
    upgrade``, the old pod's Ready) has a negative time.
    """
    t0 = timeline.started
    found: list[tuple[str, float | None]] = list(timeline.marks)
    for op in timeline.operations.values():
        verdict = "CUT OFF" if op.cut_off else op.state
        found += [
            (f"operation {op.id} ({op.seconds:g} s) on {op.pod} started", op.started),
            (f"operation {op.id} {verdict}", op.finished),
        ]
    for job in timeline.jobs.values():
        found += [
            (f"Job {job.name} created", job.created),
            (f"Job {job.name} completed", job.completed),
            (f"Job {job.name} failed", job.failed),
        ]
    for pod in timeline.pods.values():
        who = f"{pod.role} pod {pod.name}"
        found += [
            (f"{who} Ready", pod.ready),
            (f"{who} exited {pod.exit_code}", pod.exited),
            (f"{who} terminating", pod.terminating),
            (f"{who} gone", pod.gone),
        ]
    dated = [(label, at - t0) for label, at in found if at is not None]
    return sorted(dated, key=lambda row: row[1])


def _task_name(text: str) -> str:
    # Mermaid ends a task's name at ':' and a statement at ';' or '#'.
    return re.sub(r"[:;#]", " ", text.replace(": ", " - ")).strip() or "-"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:200]


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{seconds:.1f} s"


# -- annotations ---------------------------------------------------------------------------


def workflow_commands(results: Results, root: Path = ROOT) -> list[str]:
    """``::error`` workflow commands, one per failed test, at the line where it failed."""
    commands = []
    for case in results.cases:
        if case.verdict not in ("failed", "error"):
            continue
        properties = [f"title={_property(f'{case.name} {case.verdict}')}"]
        if case.file and (root / case.file).is_file():
            properties.insert(0, f"file={_property(case.file)}")
            line = case.line()
            if line:
                properties.insert(1, f"line={line}")
        message = case.message or _first_line(case.details) or case.verdict
        commands.append(f"::error {','.join(properties)}::{_data(message[:MESSAGE_CHARS])}")
    return commands


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m e2e.summary",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("results", type=Path, help="the e2e artifacts folder")
    parser.add_argument("--title", default="e2e", help="the summary's heading")
    parser.add_argument("--artifact-url", default="", help="link to the uploaded artifact")
    parser.add_argument(
        "--annotations", action="store_true", help="print ::error commands instead of Markdown"
    )
    args = parser.parse_args(argv)
    if not args.results.is_dir():
        print(f"error: {args.results} is not a folder", file=sys.stderr)
        return 2
    results = read(args.results)
    if args.annotations:
        for command in workflow_commands(results):
            print(command)
    else:
        sys.stdout.write(markdown(results, args.title, args.artifact_url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
