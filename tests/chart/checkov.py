"""checkov on the chart as Helm 3 and Helm 4 render it; each check it skips has its reason.

The chart is rendered with its defaults and with every optional object on, and the
dependency chart in its charts/ alone, by the pinned helm binaries
(e2e.cluster.tools), and checkov's Kubernetes checks run on the result.
``chart/checkov-skips.yaml`` lists the checks the chart does not pass, each with
the reason beside it. Exit 1 when a check fails that is not listed there, or when
a listed one passes everywhere now (the list must not go stale); 2 when checkov or
helm cannot run.

    python -m tests.chart.checkov
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from e2e.cluster import tools
from tests.chart.helm import CHART, NAMESPACE, RELEASE, Helm, _values_file

SKIPS = CHART / "checkov-skips.yaml"
DEPENDENCY = CHART / "charts" / "upgrade-gate-hook"
RENDERS: dict[str, tuple[Path, dict[str, Any]]] = {
    "defaults": (CHART, {}),
    "everything": (
        CHART,
        {"podDisruptionBudget": {"enabled": True}, "gate": {"preRollback": True}},
    ),
    # The gate alone, as other charts depend on it: the same objects, the same skips.
    "dependency": (
        DEPENDENCY,
        {"selector": {"matchLabels": {"app": "any"}}, "preRollback": True, "hookKind": "Pod"},
    ),
}


def render(target: Path) -> list[str]:
    """The chart rendered by each helm with each set of values, a file each under ``target``."""
    written = []
    for helm_name in ("helm3", "helm4"):
        helm = Helm(helm_name, tools.path(helm_name))
        for label, (chart, values) in RENDERS.items():
            with _values_file(values or None) as file:
                args = ["template", RELEASE, str(chart), "--namespace", NAMESPACE]
                if file is not None:
                    args += ["--values", str(file)]
                text = helm.run(*args).stdout
            name = f"{helm_name}-{label}.yaml"
            (target / name).write_text(text)
            written.append(name)
    return written


def failed_checks(target: Path) -> dict[str, dict[str, set[str]]]:
    """check id -> {"name": {...}, "where": {"<file>: <resource>", ...}}."""
    checkov = Path(sys.executable).with_name("checkov")
    result = subprocess.run(
        [str(checkov), "--directory", str(target), "--framework", "kubernetes",
         "--output", "json", "--quiet", "--compact", "--skip-download"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if result.returncode not in (0, 1):
        raise RuntimeError(f"checkov exited {result.returncode}:\n{result.stderr[-2000:]}")
    report = json.loads(result.stdout) if result.stdout.strip() else {}
    reports = report if isinstance(report, list) else [report]
    failed: dict[str, dict[str, set[str]]] = defaultdict(lambda: {"name": set(), "where": set()})
    for one in reports:
        for check in (one.get("results") or {}).get("failed_checks", []):
            entry = failed[check["check_id"]]
            entry["name"].add(check["check_name"])
            entry["where"].add(f"{Path(check['file_path']).name}: {check['resource']}")
    return failed


def main() -> int:
    skips: dict[str, str] = yaml.safe_load(SKIPS.read_text())
    with tempfile.TemporaryDirectory(prefix="checkov-chart-") as tmp:
        try:
            files = render(Path(tmp))
            failed = failed_checks(Path(tmp))
        except (RuntimeError, tools.ToolError, AssertionError, OSError) as exc:
            print(f"checkov: cannot run: {exc}", file=sys.stderr)
            return 2
    print(f"checkov on {', '.join(files)}")
    problems = 0
    for check_id in sorted(failed):
        name = " / ".join(sorted(failed[check_id]["name"]))
        where = sorted(failed[check_id]["where"])
        if check_id in skips:
            print(f"  skipped {check_id} ({len(where)} resources): {skips[check_id]}")
            continue
        problems += 1
        print(f"  FAILED  {check_id} {name}:")
        for resource in where:
            print(f"          {resource}")
    for check_id in sorted(set(skips) - set(failed)):
        problems += 1
        print(f"  STALE   {check_id} passes everywhere now: remove it from {SKIPS.name}")
    print("checkov: " + (f"{problems} problem(s)" if problems else "every other check passes"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
