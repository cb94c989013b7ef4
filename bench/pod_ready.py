"""Where a new app pod's time to Ready goes on the kind cluster, part by part.

A Deployment's new pod is what every gated upgrade waits for last. This creates bare pods of
the app's image (the chart's pod template, as the scenarios install it), one after another,
and times, from the moment the API server has the pod (its watch event, seen here):

- ``scheduled``: the scheduler bound it to a node;
- ``sandbox``: the kubelet made the pod's sandbox and network (PodReadyToStartContainers);
- ``started``: the app's container runs (the kubelet reported it);
- ``ready``: its readiness probe passed and the kubelet reported Ready.

Each pod is made after a random pause of up to a second (``--jitter``): the kubelet notices a
container's start at its next relist, once a second, and pods made in step with it would all
wait the same (1.49 s each, measured so). Each variant side by side: the chart's probe
(``readinessProbe.periodSeconds: 1``, as the scenarios run it), no readiness probe (Ready when
the container starts), a container that only sleeps (no app to start), and a sleeping pod with
nothing of the chart's but what Pod Security "restricted" asks for. Medians (min-max) of N.

    python -m bench.pod_ready [--pods 7] [cluster options: e2e/cluster/options.py]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import watch

from e2e.cluster import tools
from e2e.cluster.base import ClusterError
from e2e.cluster.options import ClusterOptions
from e2e.harness import Harness
from e2e.kube import is_ready, wait_for

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("scheduled", "sandbox", "started", "ready")


def condition(pod: Any, kind: str) -> bool:
    return any(c.type == kind and c.status == "True" for c in pod.status.conditions or [])


def started(pod: Any) -> bool:
    return any(s.state and s.state.running for s in pod.status.container_statuses or [])


SEEN: dict[str, Callable[[Any], bool]] = {
    "scheduled": lambda pod: condition(pod, "PodScheduled"),
    "sandbox": lambda pod: condition(pod, "PodReadyToStartContainers"),
    "started": started,
    "ready": is_ready,
}


def variants(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The pod specs measured: the chart's, without its readiness probe, a sleeper, and a
    sleeper with nothing of the chart's but what Pod Security "restricted" asks for (no
    volumes, resources or read-only root)."""
    chart = template["spec"]
    (container,) = chart["containers"]
    no_probe = {**container}
    no_probe.pop("readinessProbe", None)
    sleeper = {**no_probe, "command": ["sleep", "600"]}
    sleeper.pop("args", None)
    sleeper.pop("livenessProbe", None)
    sleeper.pop("startupProbe", None)
    # As little as Pod Security "restricted" lets a pod have.
    restricted = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    bare = {"name": "bare", "image": container["image"], "command": ["sleep", "600"]}
    bare |= {"imagePullPolicy": container.get("imagePullPolicy"), "securityContext": restricted}
    bare_pod = {
        "containers": [bare],
        "terminationGracePeriodSeconds": 0,
        "securityContext": chart["securityContext"],
    }
    return {
        "the chart's probe (period 1 s)": {**chart, "containers": [container]},
        "no readiness probe": {**chart, "containers": [no_probe]},
        "a sleeping container": {**chart, "containers": [sleeper]},
        "a bare sleeping pod": bare_pod,
    }


def time_one(
    harness: Harness, namespace: str, name: str, spec: dict[str, Any], pause: float
) -> dict[str, float]:
    """Seconds from the pod's first watch event to each part's first sighting."""
    core = harness.kube.core
    seen: dict[str, float] = {}
    first: list[float] = []
    done = threading.Event()

    def watching() -> None:
        stream = watch.Watch()  # type: ignore[no-untyped-call]
        for event in stream.stream(  # type: ignore[no-untyped-call]
            core.list_namespaced_pod,
            namespace,
            field_selector=f"metadata.name={name}",
            timeout_seconds=120,
        ):
            now = time.monotonic()
            if not first:
                first.append(now)
            pod = event["object"]
            for part in PARTS:
                if part not in seen and SEEN[part](pod):
                    seen[part] = now - first[0]
            if len(seen) == len(PARTS):
                stream.stop()  # type: ignore[no-untyped-call]
        done.set()

    watcher = threading.Thread(target=watching, daemon=True)
    watcher.start()
    # The watch is open before the pod exists; the pause is random so that no pod is made in
    # step with the kubelet's relist (once a second): in step, every pod waited the same.
    time.sleep(0.5 + pause)
    core.create_namespaced_pod(namespace, {"metadata": {"name": name}, "spec": spec})
    done.wait(150)
    core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
    missing = [part for part in PARTS if part not in seen]
    if missing:
        raise ClusterError(f"pod {name}: never {', '.join(missing)}")
    return seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pod_ready", description=__doc__)
    parser.add_argument("--pods", type=int, default=7, help="pods per variant (default 7)")
    parser.add_argument(
        "--jitter",
        type=float,
        default=1.0,
        help="a random pause of up to this many seconds before each pod (default 1: the "
        "kubelet's relist period); 0 makes the pods in step with it",
    )
    parser.add_argument("--seed", type=int, help="of the random pauses")
    ClusterOptions.add_arguments(parser.add_argument)
    args = parser.parse_args(argv)
    try:
        options = ClusterOptions.from_values(vars(args).get)
    except ClusterError as exc:
        parser.error(str(exc))
    harness = Harness(options, artifacts=ROOT / "artifacts" / "bench-pod-ready")
    harness.up()
    helm = harness.helm(tools.helm4())
    with harness.stage("pod-ready", helm) as stage:
        stage.install("v1")
        template = stage.pod_template()
        template["spec"].pop("nodeName", None)
        wait_for(lambda: all(is_ready(p) for p in stage.app_pods()), 120, what="the release")
        results: dict[str, list[dict[str, float]]] = {}
        rng = random.Random(args.seed)
        for label, spec in variants(template).items():
            results[label] = []
            for index in range(args.pods):
                name = f"bench-{len(results)}-{index}"
                pause = rng.uniform(0, args.jitter)
                results[label].append(time_one(harness, stage.namespace, name, spec, pause))
    print(
        f"a new pod's time, from the API server's watch event: median (min-max) of {args.pods}, "
        f"{harness.provider.name} cluster, {options.kind_nodes} node(s)\n"
    )
    width = max(len(label) for label in results)
    print(f"{'':<{width}}  " + "  ".join(f"{part:>16}" for part in PARTS))
    for label, runs in results.items():
        cells = []
        for part in PARTS:
            values = [run[part] for run in runs]
            cells.append(f"{statistics.median(values):5.2f} ({min(values):.2f}-{max(values):.2f})")
        print(f"{label:<{width}}  " + "  ".join(f"{c:>16}" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
