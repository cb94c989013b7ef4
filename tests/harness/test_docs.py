"""The docs, checked against the repository: the list of scenarios, the README's length, and
every relative link.

docs/scenarios.md lists every scenario in one table: a row per scenario file (by file name)
and per Python scenario module, each with the first sentence of the scenario's own
description (a file's ``metadata.description``, a module's docstring) and, for a file, its
``spec.helm``. A scenario added, renamed or described anew without its row fails here, and so
does a row, or any mention, of a scenario that is gone.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SCENARIOS_DOC = ROOT / "docs" / "scenarios.md"
SCENARIOS = ROOT / "e2e" / "scenarios"
FILES = SCENARIOS / "files"
SUFFIX = ".scenario.yaml"
README_MAX_LINES = 200
# The pages whose links are checked: the front door, the docs, the cluster package's README.
PAGES = [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "e2e" / "cluster" / "README.md"]
# The example the developer's loop writes: a file of yours, not a scenario of the repository.
EXAMPLE_FILE = "my.scenario.yaml"
# What the helm column says of a file without spec.helm: the session's first helm plays it.
DEFAULT_HELM = "first"

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)
FILE_MENTION = re.compile(r"(?<![\w./-])((?:[\w.-]+/)*[\w-][\w.-]*\.scenario\.yaml)")
MODULE_MENTION = re.compile(r"(?<![\w./-])((?:[\w.-]+/)*test_\w+\.py)")


def scenario_paths() -> list[Path]:
    return sorted(FILES.glob(f"*{SUFFIX}")) + sorted(SCENARIOS.glob("test_*.py"))


def first_sentence(text: str) -> str:
    """The first sentence of the first paragraph, its lines joined by single spaces."""
    paragraph = " ".join(text.strip().split("\n\n", 1)[0].split())
    end = re.search(r"\.(?=\s|$)", paragraph)
    return paragraph[: end.end()] if end else paragraph


def description(path: Path) -> str:
    """What the scenario says of itself, first sentence only."""
    if path.name.endswith(SUFFIX):
        text = yaml.safe_load(path.read_text())["metadata"]["description"]
    else:
        text = ast.get_docstring(ast.parse(path.read_text())) or ""
    return first_sentence(str(text))


def helm(path: Path) -> str:
    """A file's ``spec.helm`` as the table writes it; nothing for a Python module."""
    if not path.name.endswith(SUFFIX):
        return ""
    return str(yaml.safe_load(path.read_text())["spec"].get("helm", DEFAULT_HELM))


def cells(line: str) -> list[str]:
    """A Markdown table row's cells, split on the pipes that are not escaped."""
    inner = line.strip().removeprefix("|").removesuffix("|")
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", inner)]


def scenario_table(markdown: str) -> dict[str, list[str]]:
    """The rows of the table whose first column is "scenario", by the name in that column."""
    rows: dict[str, list[str]] = {}
    lines = markdown.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("|") and cells(line)[0] == "scenario":
            for row in lines[index + 2 :]:
                if not row.startswith("|"):
                    break
                name, *rest = cells(row)
                rows[name.strip("`")] = rest
            break
    return rows


def without_code(markdown: str) -> str:
    """The page without its code blocks and code spans, where a link is not a link."""
    return INLINE_CODE.sub("", FENCE.sub("", markdown))


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text, lower case, punctuation dropped, spaces
    made hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"`([^`]*)`", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for match in HEADING.finditer(FENCE.sub("", page.read_text())):
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(page: Path) -> list[str]:
    return [
        target
        for target in LINK.findall(without_code(page.read_text()))
        if not SCHEME.match(target)
    ]


@pytest.mark.parametrize("path", scenario_paths(), ids=lambda p: p.name)
def test_every_scenario_is_listed_with_its_own_description(path: Path) -> None:
    rows = scenario_table(SCENARIOS_DOC.read_text())
    assert path.name in rows, f"docs/scenarios.md has no row for {path.name}"
    listed, *rest = rows[path.name]
    assert listed == description(path), (
        f"docs/scenarios.md describes {path.name} otherwise than the scenario does itself"
    )
    assert (rest[0] if rest else "") == helm(path), (
        f"docs/scenarios.md gives {path.name} another helm than its spec.helm"
    )


def test_the_scenario_list_names_no_scenario_that_does_not_exist() -> None:
    text = SCENARIOS_DOC.read_text()
    rows = scenario_table(text)
    assert rows, "docs/scenarios.md has no table whose first column is 'scenario'"
    known = {path.name for path in scenario_paths()}
    assert sorted(set(rows) - known) == []
    mentions = FILE_MENTION.findall(text) + MODULE_MENTION.findall(text)
    missing = []
    for mention in set(mentions) - {EXAMPLE_FILE}:
        if "/" in mention:
            there = (ROOT / mention).is_file()
        else:
            there = (FILES / mention).is_file() or (SCENARIOS / mention).is_file()
        if not there:
            missing.append(mention)
    assert sorted(missing) == []


def test_the_readme_is_a_front_door_of_at_most_200_lines() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines: move the detail to docs/"
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_to_a_file_that_exists(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        path = target.split("#", 1)[0]
        if path and not (page.parent / path).exists():
            broken.append(target)
    assert broken == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_to_a_heading_names_one_that_exists(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        linked = (page.parent / path) if path else page
        checkable = anchor and linked.suffix == ".md" and linked.is_file()
        if checkable and anchor not in anchors(linked):
            broken.append(target)
    assert broken == []


def test_first_sentence_stops_at_the_first_full_stop_and_joins_lines() -> None:
    cases = [
        ("One line.", "One line."),
        ("Two\n  lines. Then more.", "Two lines."),
        ("gate.hookKind=Pod stays. Next.", "gate.hookKind=Pod stays."),
        ("Within 2 s.\n\nA paragraph after.", "Within 2 s."),
        ("No full stop at all", "No full stop at all"),
        ("First paragraph,\nno stop\n\nSecond. Paragraph.", "First paragraph, no stop"),
    ]
    assert [first_sentence(text) for text, _ in cases] == [want for _, want in cases]


def test_a_heading_becomes_the_anchor_github_gives_it() -> None:
    cases = [
        ("The hook: `upgrade-gate-hook wait`", "the-hook-upgrade-gate-hook-wait"),
        ("The HTTP contract (`upgrade-gate/v1`)", "the-http-contract-upgrade-gatev1"),
        ("The developer's loop", "the-developers-loop"),
        ("Timeouts: which `helm --timeout` to use", "timeouts-which-helm---timeout-to-use"),
    ]
    assert [slug(heading) for heading, _ in cases] == [want for _, want in cases]


def _harness_section() -> str:
    text = (ROOT / "docs" / "scenarios.md").read_text()
    start = text.index("**What the harness does that a file does not say.**")
    return text[start : text.index("**Bad files.**", start)]


def test_the_harness_values_the_format_reference_lists_are_those_it_applies() -> None:
    """The small test values (e2e/stage.py BASE_VALUES) as docs/scenarios.md lists them: a
    value changed in one place alone fails here."""
    from e2e.stage import BASE_VALUES

    section = " ".join(_harness_section().split())
    listed = dict(re.findall(r"`([a-zA-Z]+\.[a-zA-Z.]+): ([^`]+)`", section))

    def leaves(values: dict[str, object], prefix: str = "") -> dict[str, str]:
        found: dict[str, str] = {}
        for key, value in values.items():
            if isinstance(value, dict):
                found |= leaves(value, f"{prefix}{key}.")
            else:
                found[f"{prefix}{key}"] = str(value)
        return found

    applied = leaves(BASE_VALUES)
    said_otherwise = {
        "replicaCount",
        "readinessProbe.periodSeconds",
        "readinessProbe.failureThreshold",
    }
    assert listed == {k: v for k, v in applied.items() if k not in said_otherwise}
    assert applied["readinessProbe.periodSeconds"] == "1"
    assert "a readiness probe every second" in section
    deadline = int(applied["gate.timeoutSeconds"])
    assert f"the gate's deadline + 120 s ({deadline + 120} s" in section


def test_the_hook_lines_the_format_reference_lists_are_the_hooks_own() -> None:
    """Each line docs/scenarios.md says `helmOutput` can match is in the hook's code, its
    placeholders (N, M, S, ...) aside."""
    section = " ".join(_harness_section().split())
    lines = re.findall(
        r"`([^`]*(?:fences released|nothing|upgrade may proceed|no pods)[^`]*)`", section
    )
    assert len(lines) >= 6, lines
    code = "".join(path.read_text() for path in (ROOT / "app").rglob("*.py"))
    for line in lines:
        # Split where the hook puts a value in, or joins two parts of its own.
        for fragment in re.split(r"\bN\b|\bM\b|\bSs\b|\bSIG[A-Z]+\b|\.\.\.|[,:;]", line):
            fragment = fragment.strip(" :;,()")
            if len(fragment) >= 8:
                assert fragment in code, f"{fragment!r} (of {line!r}) is not in app/"
