"""Install or upgrade a release of the chart, with a ``--timeout`` that fits the gate.

The chart computes the shortest helm ``--timeout`` that lets its hook Job
fail on its own (gate deadline < Job deadline < helm timeout) and writes it
on the Job as the ``upgrade-gate/helm-timeout`` annotation; this command
renders the chart with your values, reads it, and runs helm with it.

    python -m e2e.release demo --namespace apps --set image.tag=v2
    python -m e2e.release demo --values my-values.yaml --helm ~/bin/helm
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import yaml

from e2e.cluster import tools
from e2e.helm import CHART


def helm_timeout(helm: Path, release: str, namespace: str, values_args: list[str]) -> str:
    rendered = subprocess.run(
        [str(helm), "template", release, str(CHART), "--namespace", namespace, *values_args],
        capture_output=True,
        text=True,
    )
    if rendered.returncode != 0:
        raise SystemExit(f"the chart refused these values: {rendered.stderr.strip()}")
    for doc in yaml.safe_load_all(rendered.stdout):
        annotations = (doc or {}).get("metadata", {}).get("annotations") or {}
        if "upgrade-gate/helm-timeout" in annotations:
            return str(annotations["upgrade-gate/helm-timeout"])
    return "5m"  # gate off: helm's own default


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m e2e.release", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("release")
    parser.add_argument("--namespace", "-n", default="default")
    parser.add_argument("--values", "-f", action="append", default=[], type=Path)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--helm", type=Path, help="helm binary (default: the pinned helm 3)")
    parser.add_argument("--kubeconfig", type=Path, default=os.environ.get("KUBECONFIG"))
    parser.add_argument("--no-hooks", action="store_true", help="the emergency bypass")
    args = parser.parse_args(argv)

    helm = args.helm or tools.helm3()
    values_args = [a for f in args.values for a in ("--values", str(f))]
    values_args += [a for s in args.set for a in ("--set", s)]
    timeout = helm_timeout(helm, args.release, args.namespace, values_args)
    command = [
        str(helm),
        "upgrade",
        "--install",
        args.release,
        str(CHART),
        "--namespace",
        args.namespace,
        "--create-namespace",
        "--wait",
        "--timeout",
        timeout,
        *values_args,
    ]
    if args.no_hooks:
        command.append("--no-hooks")
    if args.kubeconfig:
        command += ["--kubeconfig", str(args.kubeconfig)]
    print(f"helm --timeout {timeout} (from the chart's gate deadlines)", file=sys.stderr)
    print("+ " + " ".join(command), file=sys.stderr)
    return subprocess.run(command).returncode


if __name__ == "__main__":
    sys.exit(main())
