"""What the gate costs an idle ``helm upgrade --wait``, side by side with the floor.

On the running kind cluster (the harness's provider; brought
up if it is not, never taken down), for each helm (the pinned 3 and 4), one
release per mode, each in its own namespace, one idle replica, upgrades
alternating between the v1 and v2 images. The modes:

- ``gated``: the chart as it ships (``gate.hookKind`` auto: a Job under Helm
  3, a bare Pod under Helm 4);
- ``gated, Job hook`` / ``gated, Pod hook``: the chart with either kind;
- ``--no-hooks``: the same chart, helm's bypass;
- ``floor Job`` / ``floor Pod``: the gate off (``gate.enabled=false``) plus a
  trivial pre-upgrade hook rendered into a copy of the chart: the same image
  running ``python3 -c pass``, the same delete policy, no service-account
  token, no volume. No hook of that kind can cost less;
- ``gated, app-image hook``: the chart as it ships, its hook run from the
  app image built with the hook in it (``upgrade-gate-app:with-hook``), as
  the chart did before the hook had an image of its own.

Every (helm, mode) pair runs ``--runs`` times, all in one random order, so the
load of a shared machine falls on every mode alike; the table shows medians
side by side. Each upgrade starts after a random pause of up to ``--jitter``
seconds: the kubelet notices a container's start and exit at its relist, once
a second, so an upgrade that begins in step with the previous one's end would
land on the same side of that tick every time, and a mode could gain or lose
a whole second by its phase alone. Then an operation in flight: an operation of ``--operation``
seconds starts on the only pod, the gated upgrade starts at once, and the
figure is the time from the operation's end (the app's own record) to helm's
exit. Last, the two hook images side by side: their sizes, and the hook pod's
life from its creation to its container's exit (as the API server shows
them), ``--hook-runs`` idle upgrades each of ``gated`` (the hook image) and
``gated, app-image hook``, in one random order.

    python -m bench.cluster_upgrade [--runs 5] [--helm 3,4] [cluster options]
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import random
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from bench._stats import parse_time, table
from e2e.cluster import tools
from e2e.cluster.base import ClusterError
from e2e.cluster.options import ClusterOptions
from e2e.harness import Harness
from e2e.helm import CHART, Helm
from e2e.images import (
    APP_DOCKERFILE,
    APP_PACKAGE,
    HOOK_PACKAGE,
    REPOSITORY,
    AppImages,
    ImageError,
    _docker,
    _docker_env,
    build_image,
    check_hook_image,
)
from e2e.kube import Kube, wait_for
from e2e.recorder import Recorder
from e2e.stage import BASE_VALUES, HOOK_VERDICT, merge
from e2e.timeline import Timeline

ROOT = Path(__file__).resolve().parent.parent

RELEASE = "bench"
# The app image with the hook in it, as the chart ran the hook before it had an image of its own.
APP_WITH_HOOK = f"{REPOSITORY}:with-hook"
HOOK_IN_APP_IMAGE = "gated, app-image hook"

# A trivial hook of the given kind, rendered into a copy of the chart: what any
# pre-upgrade hook of that kind costs at the least. Same image, same delete
# policy and security context as the gate's hook; no token, no volume.
FLOOR_META = """\
metadata:
  name: {{ include "upgrade-gate.fullname" . }}-floor
  labels:
    {{- include "upgrade-gate.labels" . | nindent 4 }}
    app.kubernetes.io/component: upgrade-gate
  annotations:
    helm.sh/hook: pre-upgrade
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
"""


def floor_pod_spec(at: int) -> str:
    """The trivial hook's pod spec, its keys indented by ``at`` spaces."""
    lines = [
        "restartPolicy: Never",
        "automountServiceAccountToken: false",
        "enableServiceLinks: false",
        "securityContext:",
        f"  {{{{- toYaml .Values.podSecurityContext | nindent {at + 2} }}}}",
        "containers:",
        "  - name: floor",
        '    image: {{ include "upgrade-gate.image" . | quote }}',
        "    imagePullPolicy: {{ .Values.image.pullPolicy }}",
        '    command: ["python3", "-c", "pass"]',
        "    securityContext:",
        f"      {{{{- toYaml .Values.securityContext | nindent {at + 6} }}}}",
        "    resources:",
        f"      {{{{- toYaml .Values.gate.resources | nindent {at + 6} }}}}",
    ]
    return "".join(" " * at + line + "\n" for line in lines)


def floor_template(kind: str) -> str:
    if kind == "Pod":
        return f"apiVersion: v1\nkind: Pod\n{FLOOR_META}spec:\n{floor_pod_spec(2)}"
    return (
        f"apiVersion: batch/v1\nkind: Job\n{FLOOR_META}spec:\n  backoffLimit: 0\n"
        f"  template:\n    spec:\n{floor_pod_spec(6)}"
    )


@dataclass(frozen=True)
class Mode:
    name: str
    values: dict[str, Any] = field(default_factory=dict)
    flags: tuple[str, ...] = ()
    floor: str | None = None  # "Job" or "Pod": the trivial hook added to a copy of the chart


MODES = (
    Mode("gated"),
    Mode("gated, Job hook", {"gate": {"hookKind": "Job"}}),
    Mode("gated, Pod hook", {"gate": {"hookKind": "Pod"}}),
    Mode("--no-hooks", flags=("--no-hooks",)),
    Mode("floor Job", {"gate": {"enabled": False}}, floor="Job"),
    Mode("floor Pod", {"gate": {"enabled": False}}, floor="Pod"),
    Mode(HOOK_IN_APP_IMAGE, {"gate": {"image": {"repository": REPOSITORY, "tag": "with-hook"}}}),
)


@dataclass
class Release:
    """One release of one mode under one helm, in a namespace of its own."""

    helm: Helm
    mode: Mode
    namespace: str
    chart: Path
    values: dict[str, Any]
    tag: str = "v1"
    times: list[float] = field(default_factory=list)
    hook_lives: list[float] = field(default_factory=list)

    def upgrade(self, timeout: str, kube: Kube | None = None) -> float:
        """One idle upgrade to the other tag, its helm time; with ``kube``, the hook pod's
        life (created -> container exit) goes into hook_lives."""
        self.tag = "v2" if self.tag == "v1" else "v1"
        self.values = merge(self.values, {"image": {"tag": self.tag}})
        with contextlib.ExitStack() as stack:
            recorder = (
                stack.enter_context(Recorder(kube, self.namespace, RELEASE)) if kube else None
            )
            command = self.helm.upgrade_in_background(
                RELEASE,
                self.namespace,
                self.values,
                timeout,
                *self.mode.flags,
                chart_dir=self.chart,
            )
            code = command.wait(600)
            if code != 0:
                raise SystemExit(
                    f"{self.helm.name} {self.mode.name}: helm upgrade exited {code}:\n"
                    f"{command.output}"
                )
            if recorder is not None:
                life = wait_for(
                    lambda: hook_life(recorder.snapshot()),
                    timeout=30,
                    what=f"{self.helm.name} {self.mode.name}: the hook pod's exit recorded",
                )
                self.hook_lives.append(life)
        assert command.ended is not None
        return command.ended - command.started


def hook_life(timeline: Timeline) -> float | None:
    """The hook pod's creation -> its container's exit, as the API server showed them; None
    until the recorder has seen the exit."""
    lives = [p.exited - p.created for p in timeline.pods.values() if p.role == "hook" and p.exited]
    return lives[0] if len(lives) == 1 else None


def helm_timeout(values: dict[str, Any]) -> str:
    """The chart's own rule: gate deadline + 60 s (the Job's) + 60 s (helm's)."""
    return f"{int(values['gate']['timeoutSeconds']) + 120}s"


@contextmanager
def namespaces(kube: Kube) -> Iterator[list[str]]:
    """Namespaces made on demand (Pod Security "restricted", as the scenarios'); gone after."""
    made: list[str] = []
    try:
        yield made
    finally:
        for name in made:
            kube.delete_namespace(name)


def new_namespace(kube: Kube, made: list[str], label: str) -> str:
    name = f"ug-bench-{label}-{secrets.token_hex(2)}"
    kube.create_namespace(
        name,
        {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
            "app.kubernetes.io/part-of": "upgrade-gate-bench",
        },
    )
    made.append(name)
    return name


def chart_for(mode: Mode, workdir: Path) -> Path:
    if mode.floor is None:
        return CHART
    chart = workdir / f"chart-floor-{mode.floor.lower()}"
    if not chart.exists():
        shutil.copytree(CHART, chart)
        (chart / "templates" / "bench-floor.yaml").write_text(floor_template(mode.floor))
    return chart


def slug(text: str) -> str:
    """``gated, Pod hook`` -> ``gated-pod-hook``: for namespaces and --modes."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:20].strip("-")


# The stretch from an operation's end to helm's exit, in the order things happen.
SEGMENTS = (
    ("gate", "operation end -> the hook's verdict"),
    ("exit", "verdict -> hook container exit seen"),
    ("done", "exit seen -> hook done (Job complete, or the Pod Succeeded)"),
    ("apply", "hook done -> new app pod created (helm's deletes, apply)"),
    ("ready", "new app pod created -> Ready"),
    ("helm", "Ready -> helm exit (helm's wait noticing)"),
)


@dataclass
class Flight:
    """One in-flight upgrade: the total and where it went, by segment (seconds)."""

    total: float
    segments: dict[str, float]


def in_flight(release: Release, kube: Kube, seconds: float) -> Flight | None:
    """Operation end -> helm exit, for one gated upgrade with an operation in flight.

    None when the hook said yes before the operation ended (it was not in flight).
    """
    (pod,) = kube.app_pods(release.namespace, RELEASE)
    with Recorder(kube, release.namespace, RELEASE) as recorder:
        op_id = kube.start_operation(release.namespace, pod.metadata.name, seconds)
        release.tag = "v2" if release.tag == "v1" else "v1"
        release.values = merge(release.values, {"image": {"tag": release.tag}})
        command = release.helm.upgrade_in_background(
            RELEASE, release.namespace, release.values, helm_timeout(release.values)
        )

        def finished() -> str | None:
            ops = kube.operations(release.namespace, pod.metadata.name) or []
            done = [o for o in ops if o.get("id") == op_id and o.get("finished_at")]
            return str(done[0]["finished_at"]) if done else None

        ended = parse_time(wait_for(finished, timeout=seconds + 60, what="the operation's end"))
        code = command.wait(600)
        if code != 0:
            raise SystemExit(f"in-flight upgrade: helm exited {code}:\n{command.output}")
        recorder.mark_at("helm ended", command.ended or time.time())
        timeline = recorder.snapshot()
    verdict = HOOK_VERDICT.search(command.output)
    if verdict is None or parse_time(verdict["at"]) < ended:
        print(
            f"  (skipped: the hook said yes before the operation ended){verdict}", file=sys.stderr
        )
        return None
    assert command.ended is not None
    return Flight(
        command.ended - ended.timestamp(),
        segments(timeline, ended.timestamp(), parse_time(verdict["at"]).timestamp(), command.ended),
    )


def segments(
    timeline: Timeline, op_end: float, verdict: float, helm_end: float
) -> dict[str, float]:
    """Where the time between the operation's end and helm's exit went (see SEGMENTS).

    A moment the recorder missed leaves its segment out rather than guessing it.
    """
    hooks = [p for p in timeline.pods.values() if p.role == "hook" and p.exited]
    exit_seen = max((p.exited for p in hooks if p.exited), default=None)
    hook_done = timeline.hook_done(timeline.started)
    done = hook_done[1] if hook_done else None
    new = [p for p in timeline.app_pods() if p.created >= verdict]
    created = min((p.created for p in new), default=None)
    ready = max((p.ready for p in new if p.ready), default=None)
    moments = [op_end, verdict, exit_seen, done, created, ready, helm_end]
    found: dict[str, float] = {}
    for (key, _), (start, end) in zip(SEGMENTS, pairwise(moments), strict=True):
        if start is not None and end is not None:
            found[key] = end - start
    return found


def segment_table(flights: dict[tuple[str, str], list[Flight]]) -> str:
    """One row per segment, one column per (helm, mode) that ran in flight: medians."""
    ran = {name: runs for name, runs in flights.items() if runs}
    rows = [["segment", *(f"{helm} {mode}" for helm, mode in ran)]]
    for key, label in SEGMENTS:
        cells = [label]
        for runs in ran.values():
            seconds = [f.segments[key] for f in runs if key in f.segments]
            cells.append(f"{statistics.median(seconds):.2f}" if seconds else "-")
        rows.append(cells)
    return table(rows)


def fmt(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):5.2f} s ({min(values):.2f}-{max(values):.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser()
    args = parser.parse_args(argv)
    modes = chosen_modes(args.modes)
    try:
        options = ClusterOptions.from_values(vars(args).get)
    except ClusterError as exc:
        parser.error(str(exc))
    harness, images = harness_up(options)
    provider, kube = harness.provider, harness.kube
    sizes = hook_images(harness, images, modes)
    seed = args.seed if args.seed is not None else random.randrange(10**6)
    rng = random.Random(seed)

    with tempfile.TemporaryDirectory() as tmp, namespaces(kube) as made:
        workdir = Path(tmp)
        helms = [
            harness.helm(tools.helm3() if major == "3" else tools.helm4(), workdir)
            for major in args.helm.split(",")
        ]
        releases = install_releases(kube, made, helms, modes, images, workdir)
        print(f"{len(releases)} releases installed; seed {seed}", file=sys.stderr)
        idle_upgrades(releases, args.runs, args.jitter, rng)
        flights, tried = in_flight_upgrades(
            releases, kube, args.in_flight, args.operation, args.jitter, rng
        )
        hook_rounds(releases, kube, args.hook_runs, args.jitter, rng)

    print_idle_table(releases, helms, modes, args.runs, seed, provider.name)
    print_gated_over_floor(releases, helms)
    print_in_flight(flights, tried, args.operation)
    print_hook_images(sizes, releases, helms, args.hook_runs)
    return 0


def argument_parser() -> argparse.ArgumentParser:
    """The command line: the cluster options, then what to measure and how often."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.cluster_upgrade", description=__doc__.split("\n\n")[0]
    )
    ClusterOptions.add_arguments(parser.add_argument)
    parser.add_argument("--runs", type=int, default=5, help="idle upgrades per helm and mode")
    parser.add_argument("--helm", default="3,4", help="helm majors, comma-separated")
    parser.add_argument(
        "--modes",
        help="comma-separated modes, by name or slug: gated,gated-job-hook,gated-pod-hook,"
        "no-hooks,floor-job,floor-pod,gated-app-image-hook (default: all)",
    )
    parser.add_argument("--in-flight", type=int, default=5, help="in-flight upgrades per helm")
    parser.add_argument("--operation", type=float, default=8.0, help="in-flight operation, s")
    parser.add_argument(
        "--jitter",
        type=float,
        default=1.0,
        help="each upgrade starts after a random pause of up to this many seconds (default 1: "
        "the kubelet's relist period), so that no mode runs in step with the node's clock",
    )
    parser.add_argument("--seed", type=int, help="of the random order and pauses")
    parser.add_argument(
        "--hook-runs",
        type=int,
        default=5,
        help="idle upgrades per helm with each hook image, for the hook pod's life (default 5)",
    )
    return parser


def chosen_modes(names: str | None) -> list[Mode]:
    """The modes --modes names (by name or slug), in MODES's order; all without it."""
    chosen = {slug(name) for name in names.split(",")} if names else None
    return [m for m in MODES if chosen is None or slug(m.name) in chosen]


def harness_up(options: ClusterOptions) -> tuple[Harness, AppImages]:
    """The cluster and the app images, how long each took on stderr."""
    # The harness core (e2e/harness.py): the cluster up (never taken down) and the images in it.
    harness = Harness(options, artifacts=ROOT / "artifacts" / "bench-cluster")
    images = harness.up()
    print(harness.phases.report(), file=sys.stderr)
    return harness, images


def install_releases(
    kube: Kube,
    made: list[str],
    helms: list[Helm],
    modes: list[Mode],
    images: AppImages,
    workdir: Path,
) -> list[Release]:
    """One release per helm and mode, each at v1 in a new namespace."""
    releases: list[Release] = []
    for helm in helms:
        for mode in modes:
            namespace = new_namespace(kube, made, f"{helm.major}-{slug(mode.name)}")
            # Both images at v1; a mode's own values (the hook's image) win.
            values = merge(merge(BASE_VALUES, images.values("v1")), mode.values)
            chart = chart_for(mode, workdir)
            helm.install(RELEASE, namespace, values, chart_dir=chart)
            releases.append(Release(helm, mode, namespace, chart, values))
    return releases


def idle_upgrades(releases: list[Release], runs: int, jitter: float, rng: random.Random) -> None:
    """``runs`` idle upgrades of each release, all in one random order: into Release.times."""
    order = [r for r in releases for _ in range(runs)]
    rng.shuffle(order)
    for i, release in enumerate(order, 1):
        time.sleep(rng.uniform(0, jitter))
        took = release.upgrade(helm_timeout(release.values))
        release.times.append(took)
        print(
            f"[{i}/{len(order)}] {release.helm.name} {release.mode.name}: {took:.2f}s",
            file=sys.stderr,
        )


def in_flight_upgrades(
    releases: list[Release],
    kube: Kube,
    runs: int,
    operation: float,
    jitter: float,
    rng: random.Random,
) -> tuple[dict[tuple[str, str], list[Flight]], int]:
    """``runs`` upgrades of each gated release with an operation in flight, in one random
    order: the flights by (helm, mode), and how many upgrades were tried."""
    gated = [r for r in releases if r.mode.name.startswith("gated")]
    flights: dict[tuple[str, str], list[Flight]] = {(r.helm.name, r.mode.name): [] for r in gated}
    order = [r for r in gated for _ in range(runs)]
    rng.shuffle(order)
    for release in order:
        time.sleep(rng.uniform(0, jitter))
        flight = in_flight(release, kube, operation)
        if flight is not None:
            flights[release.helm.name, release.mode.name].append(flight)
            parts = ", ".join(f"{k} {v:.2f}" for k, v in flight.segments.items())
            print(
                f"  in flight, {release.helm.name} {release.mode.name}: "
                f"{flight.total:.2f}s ({parts})",
                file=sys.stderr,
            )
    return flights, len(order)


def print_idle_table(
    releases: list[Release],
    helms: list[Helm],
    modes: list[Mode],
    runs: int,
    seed: int,
    cluster: str,
) -> None:
    """The idle upgrades: one row per mode, one column per helm, medians (min-max)."""
    print(
        f"\nIdle `helm upgrade --wait`, one replica, v1 <-> v2, {runs} runs per cell in "
        f"random order (seed {seed}); median (min-max), {cluster} cluster"
    )
    header = ["mode", *(f"{h.name} {h.version}" for h in helms)]
    rows = [header]
    for mode in modes:
        cells = [mode.name]
        for helm in helms:
            (release,) = [r for r in releases if r.helm is helm and r.mode is mode]
            cells.append(fmt(release.times))
        rows.append(cells)
    print(table(rows))


def print_gated_over_floor(releases: list[Release], helms: list[Helm]) -> None:
    """Per helm, the gated modes' median idle upgrade over the Job floor's (where both ran)."""
    for helm in helms:
        by_mode = {r.mode.name: r for r in releases if r.helm is helm}
        if "gated" in by_mode and "floor Job" in by_mode:
            floor = statistics.median(by_mode["floor Job"].times)
            line = (
                f"idle upgrade, gated / floor Job: "
                f"{statistics.median(by_mode['gated'].times) / floor:.2f}  "
                f"({helm.name} {helm.version})"
            )
            for kind in ("Job", "Pod"):
                if (hooked := by_mode.get(f"gated, {kind} hook")) is not None:
                    line += f"; {kind} hook: {statistics.median(hooked.times) / floor:.2f}"
            print(line)


def print_in_flight(
    flights: dict[tuple[str, str], list[Flight]], tried: int, operation: float
) -> None:
    """Operation end -> helm exit per (helm, mode), then where it went, segment by segment."""
    for (helm_name, mode_name), runs in flights.items():
        if runs:
            delays = [f.total for f in runs]
            print(
                f"operation end -> helm exit: median {statistics.median(delays):.2f} s "
                f"({helm_name}, {mode_name}, {len(delays)} runs, "
                f"{min(delays):.2f}-{max(delays):.2f} s, a {operation:g} s operation)"
            )
    if any(flights.values()):
        print(f"\nWhere it went, median seconds per segment ({tried} in-flight upgrades)")
        print(segment_table(flights))


# -- the two hook images -----------------------------------------------------------------------


@dataclass(frozen=True)
class ImageSize:
    what: str
    ref: str
    size: int  # bytes, as docker image inspect counts them (unpacked)
    gzipped: int  # docker save | gzip: about what a registry sends


def hook_images(harness: Harness, images: AppImages, modes: list[Mode]) -> list[ImageSize]:
    """The app image with the hook in it built and loaded (when its mode runs), and the sizes
    of the hook image, of that one, and of the app image as it is now."""
    env = _docker_env(harness.provider)
    base = harness.base_image or harness.provider.base_image or ""
    if any(m.name == HOOK_IN_APP_IMAGE for m in modes):
        with harness.phases.measure(f"build {APP_WITH_HOOK}, load"):
            build_image(
                env,
                APP_DOCKERFILE,
                APP_WITH_HOOK,
                base or _dockerfile_base(),
                f"{APP_PACKAGE} {HOOK_PACKAGE}",
                "with-hook",
            )
            check_hook_image(env, APP_WITH_HOOK, entrypoint=False)  # the app's own
            harness.provider.load_images([APP_WITH_HOOK])
    refs = [
        ("the hook image", images.hook_ref("v1")),
        ("the app image with the hook (before)", APP_WITH_HOOK),
        ("the app image (now)", images.ref("v1")),
    ]
    return [ImageSize(what, ref, *image_size(env, ref)) for what, ref in refs if has(env, ref)]


def _dockerfile_base() -> str:
    from e2e.images import _dockerfile_default_base

    return _dockerfile_default_base()


def has(env: dict[str, str], ref: str) -> bool:
    try:
        _docker(["image", "inspect", ref], env, what=f"inspect {ref}")
    except ImageError:  # not built (its mode did not run): its row is left out
        return False
    return True


def image_size(env: dict[str, str], ref: str) -> tuple[int, int]:
    """(unpacked, gzipped ``docker save``) bytes of ``ref``."""
    size = int(_docker(["image", "inspect", "--format", "{{.Size}}", ref], env, "inspect"))
    docker = shutil.which("docker", path=env.get("PATH"))
    assert docker is not None
    saved = subprocess.run([docker, "save", ref], env=env, capture_output=True, check=True)
    return size, len(gzip.compress(saved.stdout, compresslevel=6))


def hook_rounds(
    releases: list[Release], kube: Kube, runs: int, jitter: float, rng: random.Random
) -> None:
    """``runs`` idle upgrades each of the hook image (``gated``) and of the app image with the
    hook, per helm, in one random order, each recorded: into Release.hook_lives."""
    compared = [r for r in releases if r.mode.name in ("gated", HOOK_IN_APP_IMAGE)]
    order = [r for r in compared for _ in range(runs)]
    rng.shuffle(order)
    for i, release in enumerate(order, 1):
        time.sleep(rng.uniform(0, jitter))
        release.upgrade(helm_timeout(release.values), kube)
        print(
            f"[hook {i}/{len(order)}] {release.helm.name} {release.mode.name}: hook pod "
            f"{release.hook_lives[-1]:.2f}s",
            file=sys.stderr,
        )


def print_hook_images(
    sizes: list[ImageSize], releases: list[Release], helms: list[Helm], runs: int
) -> None:
    """The hook image against the app image with the hook: size, and the hook pod's life."""
    if sizes:
        print("\nImages: size unpacked (docker image inspect) and gzip'd (docker save | gzip)")
        rows = [["image", "", "unpacked", "gzip'd"]]
        rows += [[s.what, s.ref, mb(s.size), mb(s.gzipped)] for s in sizes]
        print(table(rows))
    lives = {(r.helm.name, r.mode.name): r.hook_lives for r in releases if r.hook_lives}
    if not lives:
        return
    print(
        f"\nHook pod, created -> container exit (idle upgrade, {runs} runs per cell in random "
        "order); median (min-max)"
    )
    rows = [["hook run from", *(f"{h.name} {h.version}" for h in helms)]]
    for mode, label in (("gated", "the hook image"), (HOOK_IN_APP_IMAGE, "the app image")):
        rows.append([label, *(fmt(lives.get((h.name, mode), [])) for h in helms)])
    print(table(rows))


def mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


if __name__ == "__main__":
    sys.exit(main())
