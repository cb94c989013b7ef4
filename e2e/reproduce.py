"""Reproduce an upgrade scenario from a file: the developers' command.

Checks the file (refused before anything touches a cluster, naming each bad
field and its line), brings up or reuses the cluster, builds and loads the app
images, plays the file with one line per state change, then prints what
happened and the verdict: one row per check and expectation. Writes
``timeline.json``, ``timeline.svg`` and ``verdict.json`` under the artifacts
folder. Exit 0 only if every expectation held (2: a bad file).

    python -m e2e.reproduce e2e/scenarios/files/in-flight-upgrade.scenario.yaml
    python -m e2e.reproduce my.scenario.yaml --helm 4 --repeat 5
    python -m e2e.reproduce --schema > scenario.schema.json
    python -m e2e.reproduce --from-release apps/demo --kubeconfig ~/.kube/config -o my.scenario.yaml
    python -m e2e.reproduce my.scenario.yaml --kind-bin ~/bin/kind --kind-kubectl-bin ~/bin/kubectl
    python -m e2e.reproduce my.scenario.yaml --cluster existing --kubeconfig ~/.kube/config \
        --registry localhost:5000

The cluster is left running for the next run (``python -m e2e.cluster down`` removes it).

``--from-release NAMESPACE/RELEASE`` plays nothing: it writes a starting scenario file from a
running release (its values, its pods and the operations running on them), checked by the
loader (e2e/playbook/from_release.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from e2e.cluster.options import ClusterOptions
    from e2e.playbook.engine import Verdict
    from e2e.playbook.load import Play

ROOT = Path(__file__).resolve().parent.parent


def story(directory: Path) -> list[str]:
    """What happened, in time order, from a run's timeline.json."""
    from e2e.timeline import Timeline

    path = directory / "timeline.json"
    if not path.exists():
        return [f"no timeline was recorded in {directory}"]
    timeline = Timeline.from_json(json.loads(path.read_text()))
    t0 = timeline.started
    rows: list[tuple[float, str]] = [(moment, name) for name, moment in timeline.marks]
    for op in timeline.operations.values():
        rows.append((op.started, f"operation {op.id} ({op.seconds:g}s) on {op.pod} started"))
        if op.finished is not None:
            outcome = "CUT OFF" if op.cut_off else op.state
            rows.append((op.finished, f"operation {op.id} on {op.pod} {outcome}"))
    for pod in timeline.pods.values():
        who = f"{'hook' if pod.role == 'hook' else 'app'} pod {pod.name}"
        if pod.created >= t0:
            rows.append((pod.created, f"{who} created ({pod.image.rsplit(':', 1)[-1]})"))
        if pod.ready is not None and pod.ready >= t0:
            rows.append((pod.ready, f"{who} Ready"))
        if pod.exited is not None:
            rows.append((pod.exited, f"{who} exited {pod.exit_code}"))
        if pod.terminating is not None and pod.terminating != pod.gone:
            rows.append((pod.terminating, f"{who} terminating"))
        if pod.gone is not None:
            rows.append((pod.gone, f"{who} gone"))
    for job in timeline.jobs.values():
        rows.append((job.created, f"hook Job {job.name} created"))
        if job.completed is not None:
            rows.append((job.completed, f"hook Job {job.name} completed"))
        if job.failed is not None:
            rows.append((job.failed, f"hook Job {job.name} failed"))
    return [f"{moment - t0:+8.1f}s  {name}" for moment, name in sorted(rows)]


def report(verdicts: list[object], expected_runs: int) -> tuple[bool, str]:
    """Each expectation's pass count and the spread of its figure, over the runs."""
    from e2e.playbook.engine import Verdict

    runs = [v for v in verdicts if isinstance(v, Verdict)]
    names = list(dict.fromkeys(row.name for v in runs for row in v.rows))
    width = max((len(n) for n in names), default=10)
    lines = [f"{'expectation':<{width}}  passed   min      median   max"]
    for name in names:
        rows = [row for v in runs for row in v.rows if row.name == name]
        passed = sum(row.held for row in rows)
        figures = [row.figure for row in rows if row.figure is not None]
        spread = (
            f"{min(figures):7.2f}s {statistics.median(figures):7.2f}s {max(figures):7.2f}s"
            if figures
            else ""
        )
        lines.append(f"{name:<{width}}  {passed:>2}/{expected_runs:<4}  {spread}")
    held = len(runs) == expected_runs and all(v.held for v in runs)
    return held, "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from e2e.cluster.base import ClusterError
    from e2e.cluster.options import ClusterOptions

    parser = argparse.ArgumentParser(
        prog="python -m e2e.reproduce",
        description=__doc__.split("\n\n")[0],
        epilog="The cluster options are those of tox -e e2e and python -m e2e.cluster "
        "(e2e/cluster/options.py).",
    )
    parser.add_argument(
        "file",
        type=Path,
        nargs="?",
        help="a scenario file (any name; pytest collects *.scenario.yaml)",
    )
    parser.add_argument(
        "--schema",
        action="store_true",
        help="print the scenario files' JSON schema, for editors and files kept elsewhere; no file",
    )
    parser.add_argument(
        "--from-release",
        metavar="NAMESPACE/RELEASE",
        help="write a starting scenario file from a running release (its values, pods and "
        "running operations) instead of playing one; no file (kubeconfig: --kubeconfig, else "
        "$KUBECONFIG, else ~/.kube/config)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="with --from-release: where the file goes (default: stdout)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="only check the file, as pytest would collect it; no cluster (exit 0 or 2)",
    )
    parser.add_argument("--helm", type=int, choices=[3, 4], help="default: the file's spec.helm")
    parser.add_argument(
        "--helm-bin",
        action="append",
        type=Path,
        default=[],
        help="helm binary, or helm3/helm4 for the pinned one; repeatable, as in tox -e e2e",
    )
    parser.add_argument("--repeat", type=int, default=1, metavar="N", help="play it N times")
    parser.add_argument(
        "--artifacts",
        type=Path,
        help="where timelines and verdicts go (default: artifacts/reproduce/<name>)",
    )
    parser.add_argument("--base-image", help="the app image's base (default: the provider's)")
    ClusterOptions.add_arguments(parser.add_argument)
    args = parser.parse_args(argv)
    if args.from_release is not None and (args.file is not None or args.schema):
        parser.error("--from-release takes no scenario file and no --schema")
    if args.output is not None and args.from_release is None:
        parser.error("-o/--output is for --from-release")
    if args.from_release is not None:
        return from_release(args)
    if args.schema:
        from e2e.playbook.load import SCHEMA_PATH

        sys.stdout.write(SCHEMA_PATH.read_text())
        return 0
    if args.file is None:
        parser.error("a scenario file is needed (or --schema)")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    from e2e.playbook.load import BAD_FILE, ScenarioFileError, describe, load

    try:
        play = load(args.file)
    except ScenarioFileError as exc:
        print(f"refused, nothing was run:\n{exc}", file=sys.stderr)
        return BAD_FILE
    if args.check:
        print(describe(play))
        return 0
    try:
        options = ClusterOptions.from_values(vars(args).get)
    except ClusterError as exc:
        parser.error(str(exc))
    refused = play.refused_on(options.cluster)
    if refused:
        print(f"refused, nothing was run:\n{refused}", file=sys.stderr)
        return BAD_FILE
    artifacts = args.artifacts or ROOT / "artifacts" / "reproduce" / play.name
    print(f"{play.path}: {play.name}: {play.description or '(no description)'}")
    verdicts = _play(play, options, args, artifacts)
    for verdict in verdicts:
        directory = Path(verdict.directory)
        print(f"\n== {directory.name} ({verdict.helm})")
        print("\n".join(story(directory)))
        print()
        print(verdict.table())
        for note in verdict.notes:
            print(f"note: {note}")
        print(f"timeline picture: {directory / 'timeline.svg'}")
    runs = args.repeat * max(1, len({v.helm for v in verdicts}))
    held, summary = report(list(verdicts), runs)
    if args.repeat > 1 or len(verdicts) > 1:
        print(f"\n== {len(verdicts)} run(s)\n{summary}")
    failed = sorted({row.name for v in verdicts for row in v.failures()})
    if held:
        print(f"\nVERDICT: PASS: every expectation held ({len(verdicts)} run(s))")
        return 0
    reason = f"failed: {', '.join(failed)}" if failed else "no verdict: see the output above"
    print(f"\nVERDICT: FAIL: {reason}; artifacts in {artifacts}")
    return 1


def from_release(args: argparse.Namespace) -> int:
    """``--from-release``: read the release, make its starting file, check it with the loader,
    write it. 2 with one line for a bad NAMESPACE/RELEASE, a kubeconfig that is not there or a
    release that does not exist; 2 with the loader's problems for a file that does not load."""
    import pyhelm3.errors
    from kubernetes.config import ConfigException

    from e2e.cluster import tools
    from e2e.helm import Helm
    from e2e.kube import Kube
    from e2e.playbook import from_release as made
    from e2e.playbook.load import BAD_FILE, ScenarioFileError

    def refuse(reason: str) -> int:
        print(
            f"python -m e2e.reproduce: --from-release {args.from_release}: {reason}",
            file=sys.stderr,
        )
        return BAD_FILE

    try:
        namespace, release = made.parse_target(args.from_release)
    except ValueError as exc:
        return refuse(str(exc))
    kubeconfig = _kubeconfig(args.kubeconfig)
    if not kubeconfig.is_file():
        return refuse(f"no kubeconfig at {kubeconfig} (give --kubeconfig)")
    # pyhelm3 logs each failed command as a warning: the reason is said once, below.
    logging.getLogger("pyhelm3").setLevel(logging.ERROR)
    # Any helm reads a release: the first --helm-bin, else the pinned one of --helm (3).
    if args.helm_bin:
        binary = tools.helm_binaries(args.helm_bin)[0]
    else:
        binary = tools.helm4() if args.helm == 4 else tools.helm3()
    try:
        kube = Kube(kubeconfig)
        with tempfile.TemporaryDirectory(prefix="from-release-") as workdir:
            helm = Helm(binary, kubeconfig, Path(workdir))
            seen = made.read(kube, helm, namespace, release)
    except ConfigException as exc:
        return refuse(f"kubeconfig {kubeconfig}: {exc}")
    except pyhelm3.errors.ReleaseNotFoundError:
        return refuse(f"no release {release} in namespace {namespace} ({kubeconfig})")
    except pyhelm3.errors.Error as exc:
        said = (exc.args[2] if len(exc.args) > 2 else b"") or b""
        lines = bytes(said).decode(errors="replace").strip().splitlines() or [str(exc)]
        print(
            f"python -m e2e.reproduce: helm could not read {namespace}/{release}: {lines[-1]}",
            file=sys.stderr,
        )
        return 1
    text = made.scenario(seen)
    shown = args.output or Path(f"{namespace}-{release}.scenario.yaml")
    try:
        made.checked(text, shown)
    except ScenarioFileError as exc:
        print(f"the file made from {namespace}/{release} does not load:\n{exc}", file=sys.stderr)
        return BAD_FILE
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
        print(
            f"{args.output}: {namespace}/{release} at revision {seen.revision} ({seen.status}), "
            f"{len(seen.pods)} app pod(s)",
            file=sys.stderr,
        )
    return 0


def _kubeconfig(given: str | None) -> Path:
    """--kubeconfig, else the first file $KUBECONFIG names, else ~/.kube/config (kubectl's)."""
    if given:
        return Path(given).expanduser()
    listed = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    return Path(listed[0] if listed else "~/.kube/config").expanduser()


def _play(
    play: Play, options: ClusterOptions, args: argparse.Namespace, artifacts: Path
) -> list[Verdict]:
    """Every run of the file on the harness (e2e/harness.py): the cluster kept up afterwards,
    a failed run's namespace kept for inspection. State changes go to stderr as they happen."""
    from e2e.cluster import tools
    from e2e.harness import Harness
    from e2e.playbook.engine import play as play_file
    from e2e.playbook.helms import helms_for

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr
    )
    logging.getLogger("pyhelm3").setLevel(logging.WARNING)
    # urllib3 warns of each retry of each request: some 800 lines while a scenario keeps
    # the API server away for 15 s.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    harness = Harness(options, artifacts=artifacts, base_image=args.base_image)
    harness.up()
    verdicts: list[Verdict] = []
    given = tools.helm_binaries(args.helm_bin)
    for binary, helm_id in helms_for(play.helm, given, args.helm):
        helm = harness.helm(binary)
        for run in range(1, args.repeat + 1):
            ids = [i for i in (helm_id, f"run-{run}" if args.repeat > 1 else "") if i]
            name = play.name + (f"[{'-'.join(ids)}]" if ids else "")
            stage = harness.open_stage(name, helm, alone=play.alone)
            verdict: Verdict | None = None
            try:
                with harness.phases.group(name):
                    verdict = play_file(play, stage, None, harness.artifacts / ".helm")
                verdicts.append(verdict)
            finally:
                failed = verdict is None or not verdict.held
                harness.close_stage(stage, failed)
                if failed:
                    print(f"namespace {stage.namespace} kept for inspection")
                else:
                    harness.kube.delete_namespace(stage.namespace)
    print(f"\n{harness.phases.report()}")
    return verdicts


if __name__ == "__main__":
    sys.exit(main())
