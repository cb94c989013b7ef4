"""The main job: an operation is in flight, `helm upgrade` runs, and the operation survives.

Brings up the cluster (or reuses the running one), builds and loads the app
images v1 and v2, installs v1, starts a 25 s operation on its pod, runs
`helm upgrade` to v2 in the background, and shows each state change as it
happens. Then it prints the verdict and where the timeline picture is. The
cluster is left running for the next run; `python -m e2e.cluster down`
removes it.

    python -m e2e.demo                      # local cluster, helm 3
    python -m e2e.demo --helm 4 --cluster kind --kind-bin ~/bin/kind --kind-kubectl-bin ...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = "e2e/scenarios/test_in_flight.py::test_upgrade_waits_for_the_operation_in_flight"


def verdict(artifacts: Path, helm_major: int) -> tuple[bool, str]:
    from e2e.timeline import Timeline

    found = sorted(artifacts.glob(f"test_upgrade_waits_for_the_operation_in_flight*v{helm_major}*"))
    if not found or not (found[-1] / "timeline.json").exists():
        return False, "no timeline was recorded: see the test output above"
    directory = found[-1]
    timeline = Timeline.from_json(json.loads((directory / "timeline.json").read_text()))
    t0 = timeline.started

    def at(moment: float | None) -> str:
        return "never" if moment is None else f"+{moment - t0:.1f}s"

    ops = list(timeline.operations.values())
    jobs = list(timeline.jobs.values())
    app_pods = timeline.app_pods()
    if not ops or not jobs or not app_pods:
        return False, f"incomplete timeline in {directory}"
    op = ops[0]
    old = next(p for p in app_pods if p.name == op.pod)
    new = [p for p in app_pods if p is not old]
    marks = dict(timeline.marks)
    rows = [
        ("helm upgrade started", at(marks.get("helm upgrade started"))),
        (f"operation {op.id} ({op.seconds:g}s) {op.state}", at(op.finished)),
        ("the hook: upgrade may proceed", at(marks.get("hook: upgrade may proceed"))),
        *(
            (f"hook pod exited {p.exit_code}", at(p.exited))
            for p in timeline.pods.values()
            if p.role == "hook"
        ),
        ("hook Job completed", at(jobs[0].completed)),
        (f"old pod {old.name} terminating", at(old.terminating)),
        (f"old pod {old.name} gone", at(old.gone)),
        *((f"new pod {p.name} Ready", at(p.ready)) for p in new),
        ("helm upgrade ended", at(marks.get("helm upgrade ended"))),
    ]
    rows.sort(key=lambda row: float(row[1][1:-1]) if row[1] != "never" else float("inf"))
    width = max(len(label) for label, _ in rows)
    lines = [f"{label:<{width}}  {moment:>8}" for label, moment in rows]
    survived = (
        op.state == "succeeded"
        and not op.cut_off
        and old.terminating is not None
        and op.finished is not None
        and op.finished < old.terminating
    )
    lines.append(f"timeline picture: {directory / 'timeline.svg'}")
    return survived, "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m e2e.demo", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--helm", type=int, choices=[3, 4], default=3, help="Helm major version")
    parser.add_argument(
        "--artifacts",
        type=Path,
        default=ROOT / "artifacts" / "demo",
        help="where the timeline goes",
    )
    args, passthrough = parser.parse_known_args(argv)

    code = pytest.main(
        [
            str(ROOT / CORE),
            "-k",
            f"v{args.helm}.",
            "--keep-cluster",
            "--artifacts",
            str(args.artifacts),
            "-p",
            "no:cacheprovider",
            "-s",
            "--log-cli-level=INFO",
            "--log-cli-format=%(asctime)s %(message)s",
            "--log-cli-date-format=%H:%M:%S",
            *passthrough,
        ]
    )
    survived, story = verdict(args.artifacts, args.helm)
    print("\n" + story)
    if code == 0 and survived:
        print(
            "\nVERDICT: PASS: the upgrade waited; "
            "the operation finished before its pod was replaced."
        )
        return 0
    print(f"\nVERDICT: FAIL (pytest exit {int(code)}); artifacts in {args.artifacts}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
