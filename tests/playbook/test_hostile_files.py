"""Files made to hang or crash the loader are refused, each with its line, and the command-line
ways in (``python -m e2e.playbook.load``, ``python -m e2e.reproduce --check``) say so with the
same exit code, without a cluster.

The hostile loads run in a child process with an address-space limit and a timeout, so that a
loader that expands or spins fails this test instead of taking the machine's memory."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from tests.playbook.test_scenario_files import GOOD, ROOT, refusal, write

# Nine levels of nine: 9**9 (387 million) strings once expanded, a few hundred bytes as text.
LAUGHS = "".join(f"      l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]\n" for n in range(1, 10))
BOMB = GOOD.replace(
    "      gate: {timeoutSeconds: 30}\n",
    "      gate: {timeoutSeconds: 30}\n      l0: &l0 lol\n" + LAUGHS,
)
MEMORY = 1 << 30  # a loader that needs more than this for a few hundred bytes is expanding


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def run(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """A module of this project as a command, as a user runs it; the timeout only bounds a
    loader that never ends, which is then this test's failure."""
    return subprocess.run(
        [sys.executable, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        preexec_fn=_limited,
        check=False,
    )


def test_a_billion_laughs_is_refused_not_expanded(tmp_path: Path) -> None:
    path = write(tmp_path, BOMB)
    done = run("-m", "e2e.playbook.load", str(path))
    assert done.returncode == 2, done.stderr[-2000:]
    assert "aliases" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr


def test_an_alias_that_expands_a_little_still_loads(tmp_path: Path) -> None:
    text = GOOD.replace("    - pods: [0, 1]\n", "    - pods: &both [0, 1]\n").replace(
        "      at: 0\n", "      at: 0\n    - pods: *both\n      seconds: 5\n      at: 2\n"
    )
    from e2e.playbook.load import load

    play = load(write(tmp_path, text))
    assert [w.pods for w in play.work] == [(0, 1), (0, 1)]


@pytest.mark.parametrize(
    "encoded",
    [
        GOOD.replace("name: sample", "name: café").encode("latin-1"),
        GOOD.encode("utf-16"),
    ],
    ids=["latin-1", "utf-16"],
)
def test_a_file_that_is_not_utf8_is_refused_with_its_line(tmp_path: Path, encoded: bytes) -> None:
    path = tmp_path / "sample.scenario.yaml"
    path.write_bytes(encoded)
    from e2e.playbook.load import ScenarioFileError, load

    with pytest.raises(ScenarioFileError) as caught:
        load(path)
    line = str(caught.value).removeprefix(f"{path}:")
    assert "not UTF-8" in line, line
    expected = "4:" if b"caf" in encoded else "1:"
    assert line.startswith(expected), line


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("      at: 0\n", "      at: .nan\n", "15: spec.work[0].at"),
        ("    at: 1\n", "    at: .inf\n", "17: spec.upgrade.at"),
        ("  duration: 60\n", "  duration: .inf\n", "6: spec.duration"),
        ("      seconds: 5\n", "      seconds: -.inf\n", "14: spec.work[0].seconds"),
    ],
    ids=["nan", "inf", "inf-duration", "minus-inf"],
)
def test_nan_and_infinities_are_refused(tmp_path: Path, old: str, new: str, where: str) -> None:
    assert old in GOOD
    problems = refusal(tmp_path, GOOD.replace(old, new))
    assert any(p.startswith(f"{where}: ") and "finite" in p for p in problems), problems


def test_a_helm_timeout_of_infinity_is_refused(tmp_path: Path) -> None:
    problems = refusal(
        tmp_path, GOOD.replace("    image: v2\n", "    image: v2\n    timeout: .inf\n")
    )
    assert any(p.startswith("19: spec.upgrade.timeout: ") and "finite" in p for p in problems)


def test_arrivals_too_close_together_are_refused_before_they_are_built(tmp_path: Path) -> None:
    text = GOOD.replace("      at: 0\n", "      at: 0\n      every: 0.000001\n      until: 50\n")
    path = write(tmp_path, text)
    done = run("-m", "e2e.playbook.load", str(path))
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"{path}:16: spec.work[0].every: " in done.stderr, done.stderr


def test_the_loader_has_help_and_does_not_read_it_as_a_file() -> None:
    done = run("-m", "e2e.playbook.load", "--help")
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout
    assert "--help" not in done.stderr


def test_a_bad_file_exits_2_from_the_loader_as_from_reproduce(tmp_path: Path) -> None:
    bad = write(tmp_path, GOOD.replace("seconds: 5", "seconds: -5"))
    loader = run("-m", "e2e.playbook.load", str(bad))
    check = run("-m", "e2e.reproduce", "--check", str(bad))
    assert (loader.returncode, check.returncode) == (2, 2), loader.stderr + check.stderr
    for done in (loader, check):
        assert f"{bad}:14: spec.work[0].seconds: -5 is less than" in done.stderr


def test_reproduce_check_checks_a_good_file_without_a_cluster(tmp_path: Path) -> None:
    good = write(tmp_path, GOOD)
    done = run("-m", "e2e.reproduce", "--check", str(good), "--cluster", "existing")
    assert done.returncode == 0, done.stderr
    assert f"{good}: ok" in done.stdout
    assert "cluster" not in done.stdout.lower().replace("--cluster", "")


def test_a_run_of_too_many_arrivals_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("  duration: 60\n", "  duration: 3600\n").replace(
        "      at: 0\n", "      at: 0\n      every: 0.01\n      until: 3000\n"
    )
    problems = refusal(tmp_path, text)
    assert problems == [
        "16: spec.work[0].every: every 0.01 s for 3000 s is 300001 arrivals; at most 10000 in a run"
    ]


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("  duration: 60\n", "  duration: 1" + "0" * 5000 + "\n", "1: (top): cannot read: "),
        ("      seconds: 5\n", "      seconds: 1" + "0" * 400 + "\n", "14: spec.work[0].seconds: "),
        (
            "      at: 0\n",
            "      at: 0\n      every: 1\n      until: 1" + "0" * 400 + "\n",
            "17: spec.work[0].until: ",
        ),
    ],
    ids=["5000-digits", "400-digits", "400-digit-until"],
)
def test_numbers_too_large_to_compute_with_are_refused(
    tmp_path: Path, old: str, new: str, where: str
) -> None:
    path = write(tmp_path, GOOD.replace(old, new))
    done = run("-m", "e2e.playbook.load", str(path))
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert f"{path}:{where}" in done.stderr, done.stderr[-2000:]


def test_a_problem_in_a_merged_mapping_is_refused_with_a_line(tmp_path: Path) -> None:
    text = GOOD.replace(
        "    - pods: [0, 1]\n      seconds: 5\n      at: 0\n",
        "    - &w {pods: [0, 1], seconds: 5, at: 0, bogus: 1}\n    - <<: *w\n      at: 2\n",
    )
    problems = refusal(tmp_path, text)
    assert problems, problems
    assert all(p.split(":", 1)[0].isdigit() for p in problems), problems
    assert any("bogus" in p for p in problems), problems
