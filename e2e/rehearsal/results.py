"""What a rehearsed job left behind, and whether it ended as it must: the artifacts it uploaded
to act's artifact server (kept, listed, its summary printed), its JUnit verdicts, and for a job
made to fail (``--make-fail``) whether it failed the right way."""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path

from e2e import summary
from e2e.cluster.base import Progress
from e2e.rehearsal import act

# A scenario file the rehearsal adds with --make-fail: an idle upgrade to v2 that expects v1.
MUST_FAIL = "rehearsal-made-to-fail.scenario.yaml"
MUST_FAIL_TEXT = """\
# Added by ci/rehearse --make-fail, in the rehearsal's workspace only: it must fail, so that
# the rehearsal sees the job go red, its diagnostics run and its artifacts uploaded.
apiVersion: upgrade-gate/v1alpha1
kind: Scenario
metadata:
  name: rehearsal-made-to-fail
  description: An idle upgrade to v2 that expects v1 to be served after it, which is false.
spec:
  duration: 120
  release:
    image: v1
  upgrade:
    image: v2
  expect:
    helm: succeeded
    serves: v1
"""


def keep_artifacts(served: Path, results: Path, progress: Progress) -> None:
    """What the job uploaded to act's artifact server: listed, copied to the results, and
    each archive unpacked beside it; a summary.md in it is printed."""
    files = sorted(p for p in served.rglob("*") if p.is_file())
    if not files:
        progress.line("artifact server: nothing uploaded")
        return
    progress.line(f"artifact server ({served}): {len(files)} file(s)")
    for path in files:
        target = results / path.relative_to(served)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        progress.line(f"  {path.relative_to(served)} ({path.stat().st_size} bytes)")
        if zipfile.is_zipfile(target):
            with zipfile.ZipFile(target) as zipped:
                names = zipped.namelist()
                zipped.extractall(target.with_suffix(""))
            progress.line(
                f"    {len(names)} file(s) in it: {', '.join(names[:12])}"
                + (" ..." if len(names) > 12 else "")
            )
    for written in sorted(results.rglob("summary.md")):
        progress.line(f"job summary ({written}):")
        print(written.read_text(), flush=True)


def not_red_enough(result: act.JobRun) -> str | None:
    """Why a job made to fail did not fail as it must, or None: red, with the made-to-fail
    scenario the one failure in its JUnit report (not a job that broke before its tests), and
    its diagnostics, upload and summary run."""
    if result.passed:
        return "the job passed"
    verdicts = junit_verdicts(result.log.parent if result.log else Path())
    if not verdicts:
        return "no JUnit report among its uploaded artifacts: it failed before its tests ran"
    made = [name for name in verdicts if MUST_FAIL.removesuffix(".scenario.yaml") in name]
    if not made or any(verdicts[name] not in ("failed", "error") for name in made):
        return f"the scenario made to fail did not fail: {[(n, verdicts.get(n)) for n in made]}"
    others = sorted(n for n, v in verdicts.items() if v != "passed" and n not in made)
    if others:
        return f"other tests did not pass: {others}"
    for step, outcome in (
        ("Cluster diagnostics", "Success"),
        ("Upload the artifacts", "Success"),
        ("Job summary", "Success"),
    ):
        if result.ran(step) != outcome:
            return f"step {step!r}: {result.ran(step) or 'did not run'}"
    return None


def junit_verdicts(results: Path) -> dict[str, str]:
    """Each test's verdict (passed, failed, error, skipped) in the JUnit reports the job
    uploaded, read as the job summary reads them."""
    verdicts: dict[str, str] = {}
    for report in results.rglob("junit.xml"):
        verdicts |= {case.nodeid: case.verdict for case in summary.read(report.parent).cases}
    return verdicts


def give_back(results: Path) -> None:
    """Results written as root under sudo belong to the user who ran sudo."""
    uid, gid = os.environ.get("SUDO_UID"), os.environ.get("SUDO_GID")
    if uid and gid and results.exists():
        subprocess.run(["chown", "-R", f"{uid}:{gid}", str(results)], check=False)
