"""The stage a scenario plays on: one release in one namespace, what the tests are written in.

A :class:`Stage` installs the chart, starts operations on pods, launches
``helm upgrade`` (or ``rollback``) in the background, and records everything
on a timeline. Tests say what happens and assert what must hold; the
mechanics live here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from e2e.cluster.providers.interface import BreaksApiServer, StopsNodes
from e2e.helm import CHART, BackgroundHelm, Helm
from e2e.images import AppImages
from e2e.kube import Kube, is_ready, wait_for
from e2e.phases import Phases
from e2e.recorder import Recorder
from e2e.timeline import Operation, PodLife, Timeline, epoch

log = logging.getLogger("e2e.stage")

# The hook's last line, as helm prints the hook's log (hook-output-log-policy).
HOOK_VERDICT = re.compile(
    r"(?P<at>\d{4}-\d\d-\d\dT[\d:.]+Z) INFO +upgrade_gate\.cli: all (?P<pods>\d+) pod\(s\) "
    r"idle after (?P<after>[\d.]+)s; upgrade may proceed"
)
# The hook's line when its deadline passed: its fences are released by then.
HOOK_DEADLINE = re.compile(
    r"(?P<at>\d{4}-\d\d-\d\dT[\d:.]+Z) ERROR +upgrade_gate\.cli: deadline of [\d.]+s reached"
)


def gate_opened(output: str) -> tuple[int, float, float] | None:
    """(pods, moment, the hook's own wait) of the hook's verdict in helm's output."""
    match = HOOK_VERDICT.search(output)
    if match is None:
        return None
    return int(match["pods"]), epoch(match["at"]), float(match["after"])


def gate_gave_up(output: str) -> float | None:
    """When the hook's (last) deadline passed, by its own log line in helm's output."""
    moments = [epoch(m["at"]) for m in HOOK_DEADLINE.finditer(output)]
    return moments[-1] if moments else None


# Small numbers for the tests, aligned as the chart requires: the gate's
# timeout < the Job's deadline < helm's --timeout.
BASE_VALUES: dict[str, Any] = {
    "replicaCount": 1,
    "image": {"pullPolicy": "IfNotPresent"},
    "app": {
        "operationMaxSeconds": 600,
        "shutdownTimeoutSeconds": 120,
        "preStopSleepSeconds": 1,
    },
    "gate": {"timeoutSeconds": 90, "leaseSeconds": 15, "holdSeconds": 120, "pollSeconds": 10},
    "readinessProbe": {"periodSeconds": 1, "failureThreshold": 1},
}


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@dataclass
class Stage:
    kube: Kube
    helm: Helm
    images: AppImages
    namespace: str
    artifacts: Path
    phases: Phases
    release: str = "demo"
    values: dict[str, Any] = field(default_factory=dict)
    recorder: Recorder | None = None
    background: list[BackgroundHelm] = field(default_factory=list)
    # The cluster, where it can take its API server away and back (kind), for fault actions.
    api_server: BreaksApiServer | None = None
    # The cluster, where it can stop a worker node and start it again (kind), for fault actions.
    node_power: StopsNodes | None = None
    # The stage's turn on the cluster (Harness.open_stage), given back when it closes.
    turn: contextlib.ExitStack[bool | None] = field(default_factory=contextlib.ExitStack)

    # -- setting up ---------------------------------------------------------------

    def install(self, tag: str = "v1", **overrides: Any) -> None:
        """Install the working tree's chart and wait for the app pods to be Ready."""
        self.install_chart(CHART, tag, **overrides)

    def install_chart(self, chart: Path, tag: str = "v1", **overrides: Any) -> None:
        """Install ``chart`` (another version of it) and wait for the app pods to be Ready."""
        self.values = merge(merge(BASE_VALUES, overrides), self._image(tag))
        started = time.monotonic()
        self.helm.install(self.release, self.namespace, self.values, chart_dir=chart)
        self.phases.add(f"install ({self.helm.name})", time.monotonic() - started)
        wait_for(
            lambda: (
                len(self.app_pods()) == self.values["replicaCount"]
                and all(is_ready(p) for p in self.app_pods())
            ),
            timeout=120,
            what="app pods Ready after install",
        )

    def _image(self, tag: str) -> dict[str, Any]:
        """The app at ``tag``, and the hook image of the same tag where the harness built one
        (a tag it did not build, such as a missing one, keeps the hook it had)."""
        if tag in self.images.tags:
            return self.images.values(tag)
        return {"image": {"repository": self.images.repository, "tag": tag}}

    # -- acting -------------------------------------------------------------------

    @contextmanager
    def recording(self, title: str) -> Iterator[Recorder]:
        """Record a timeline for the block; the picture is saved whatever happens."""
        recorder = Recorder(self.kube, self.namespace, self.release)
        self.recorder = recorder
        with recorder:
            try:
                yield recorder
            finally:
                recorder.stop()
                picture = recorder.save(self.artifacts, title)
                print(f"\ntimeline: {picture}")

    def helm_timeout(self) -> str:
        """The chart's own rule: gate deadline + 60 s (Job) + 60 s (helm)."""
        return f"{int(self.values['gate']['timeoutSeconds']) + 120}s"

    def upgrade(self, tag: str = "v2", *extra: str, **overrides: Any) -> BackgroundHelm:
        self.values = merge(merge(self.values, overrides), self._image(tag))
        upgrade = self.helm.upgrade_in_background(
            self.release, self.namespace, self.values, self.helm_timeout(), *extra
        )
        self.background.append(upgrade)
        if self.recorder:
            self.recorder.mark("helm upgrade started")
        return upgrade

    def rollback(self, revision: int, *extra: str) -> BackgroundHelm:
        rollback = self.helm.rollback_in_background(
            self.release, self.namespace, revision, self.helm_timeout(), *extra
        )
        self.background.append(rollback)
        if self.recorder:
            self.recorder.mark("helm rollback started")
        return rollback

    def finish(self, command: BackgroundHelm, timeout: float = 240, label: str = "") -> int:
        """Wait for a background helm command; its duration joins the phase table."""
        code = command.wait(timeout)
        verb = command.command[1]
        if self.recorder and command.ended:
            self.recorder.mark(f"helm {verb} ended")
        self.phases.add(
            f"{label or verb} ({self.helm.name})", (command.ended or time.time()) - command.started
        )
        took = (command.ended or time.time()) - command.started
        log.info("helm %s exited %d after %.1fs", verb, code, took)
        for line in command.output.splitlines():
            log.debug("helm| %s", line)
        return code

    def hook_verdict(self, command: BackgroundHelm) -> tuple[int, float]:
        """(pods, moment) of the hook's "upgrade may proceed" line in helm's output.

        The hook's own timestamp says when the gate opened; the Job's completion
        comes later by Kubernetes' bookkeeping (kubelet's 1 s relist, the Job
        controller's 1 s batching), which the gate does not control.
        """
        verdict = gate_opened(command.output)
        assert verdict, f"the hook's verdict is not in helm's output:\n{command.output}"
        pods, moment, _ = verdict
        if self.recorder:
            self.recorder.mark_at("hook: upgrade may proceed", moment)
        return pods, moment

    def wait_gone(self, uid: str, timeout: float = 60) -> None:
        """Until the recorder has seen the pod with this UID deleted."""
        wait_for(
            lambda: (life := self.timeline().pods.get(uid)) is not None and life.gone,
            timeout=timeout,
            what=f"pod {uid} gone",
        )

    def survived(self, op_id: str, pod_uid: str) -> tuple[Operation, PodLife]:
        """Check that the operation finished before its pod began terminating.

        The promise, as the timeline shows it: succeeded, not cut off, and
        its end before the old pod's termination.
        """
        timeline = self.timeline()
        (op,) = [o for o in timeline.operations.values() if o.id == op_id]
        pod = timeline.pods[pod_uid]
        assert op.state == "succeeded", op
        assert not op.cut_off, op
        assert op.finished is not None
        assert pod.terminating is not None, f"{pod.name} was never replaced"
        assert op.finished < pod.terminating, (op, pod)
        return op, pod

    def start_operation(self, pod: str, seconds: float) -> str:
        return self.kube.start_operation(self.namespace, pod, seconds)

    # -- disturbing (the events of scenario files) ---------------------------------

    def mark(self, name: str) -> None:
        if self.recorder:
            self.recorder.mark(name)

    def delete_pod(self, name: str, force: bool = False) -> None:
        """Delete a pod; ``force``: grace period 0, as ``kubectl delete --force``."""
        self.kube.core.delete_namespaced_pod(
            name, self.namespace, grace_period_seconds=0 if force else None
        )
        self.mark(f"pod {name} deleted{' (force)' if force else ''}")

    def kill_app(self, pod: str, signal_name: str = "KILL") -> str:
        """Signal the app's gunicorn worker in the pod (PID 1, the master, starts a new one)."""
        code, output = self.kube.exec(
            self.namespace, pod, ["python3", "-c", _SIGNAL_WORKERS, signal_name]
        )
        assert code == 0, f"signalling the app in {pod}: exit {code}: {output}"
        self.mark(f"app in {pod} sent SIG{signal_name}")
        return output.strip()

    def kill_helm(self, command: BackgroundHelm, signal_name: str = "TERM") -> None:
        os.killpg(command.proc.pid, getattr(signal, f"SIG{signal_name}"))
        self.mark(f"helm {command.command[1]} sent SIG{signal_name}")

    def scale(self, replicas: int) -> None:
        """``kubectl scale`` the release's Deployment."""
        apps: Any = client.AppsV1Api(self.kube.api_client)
        (deployment,) = apps.list_namespaced_deployment(
            self.namespace,
            label_selector=f"app.kubernetes.io/instance={self.release},"
            "app.kubernetes.io/component=app",
        ).items
        apps.patch_namespaced_deployment_scale(
            deployment.metadata.name, self.namespace, {"spec": {"replicas": replicas}}
        )
        self.mark(f"scaled to {replicas}")

    def cordon(self, node: str, *, unschedulable: bool = True) -> None:
        """``kubectl cordon`` the node (``uncordon`` with ``unschedulable=False``)."""
        self.kube.core.patch_node(node, {"spec": {"unschedulable": unschedulable}})
        self.mark(f"node {node} {'cordoned' if unschedulable else 'uncordoned'}")

    def evict(self, pod: str) -> str | None:
        """Evict an app pod through the Eviction API, as ``kubectl drain`` does: None once the
        eviction is accepted (or the pod is gone), else why the API refused it for now (429: a
        PodDisruptionBudget allows no disruption at the moment); other errors raise."""
        body = client.V1Eviction(metadata=client.V1ObjectMeta(name=pod, namespace=self.namespace))
        try:
            self.kube.core.create_namespaced_pod_eviction(pod, self.namespace, body)
        except ApiException as exc:
            if exc.status == 404:
                return None
            if exc.status == 429:
                return _api_message(exc)
            raise
        self.mark(f"pod {pod} evicted")
        return None

    def running_hook_pod(self) -> str | None:
        """The name of a running hook pod that is not terminating, if any."""
        pods = self.kube.core.list_namespaced_pod(
            self.namespace,
            label_selector=f"app.kubernetes.io/instance={self.release},"
            "app.kubernetes.io/component=upgrade-gate",
        ).items
        for pod in pods:
            if pod.status.phase == "Running" and pod.metadata.deletion_timestamp is None:
                return str(pod.metadata.name)
        return None

    # -- looking ------------------------------------------------------------------

    def pod_template(self) -> dict[str, Any]:
        """The release's Deployment's pod template, as a plain manifest: for a bare pod made
        from it (one that counts as the release's, or one changed to do something else)."""
        apps: Any = client.AppsV1Api(self.kube.api_client)
        (deployment,) = apps.list_namespaced_deployment(self.namespace).items
        template: dict[str, Any] = self.kube.api_client.sanitize_for_serialization(
            deployment.spec.template
        )
        return template

    def app_pods(self) -> list[Any]:
        return self.kube.app_pods(self.namespace, self.release)

    def only_pod(self) -> Any:
        pods = self.app_pods()
        assert len(pods) == 1, [p.metadata.name for p in pods]
        return pods[0]

    def status(self) -> str:
        return self.helm.status(self.release, self.namespace)

    def version_served(self) -> set[str]:
        """``GET /version`` of every live app pod."""
        return {
            str(
                self.kube.call(self.namespace, p.metadata.name, "GET", "/version").body.get(
                    "version"
                )
            )
            for p in self.app_pods()
        }

    def hook_running(self) -> bool:
        """A hook Job has an active pod, or a bare hook Pod (gate.hookKind) runs."""
        if any(
            (job.status.active or 0) > 0
            for job in self.kube.hook_jobs(self.namespace, self.release)
        ):
            return True
        return any(
            not (pod.metadata.owner_references or [])
            and pod.status.phase in ("Pending", "Running")
            and pod.metadata.deletion_timestamp is None
            for pod in self.kube.hook_pods(self.namespace, self.release)
        )

    def timeline(self) -> Timeline:
        assert self.recorder is not None, "not recording"
        return self.recorder.snapshot()

    def stop_background(self) -> None:
        for command in self.background:
            command.stop()


def _api_message(exc: ApiException) -> str:
    """The API server's own message in an error (its Status), else the HTTP reason."""
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except ValueError:
        return str(exc.reason)


# Run in the app's container by kill_app: signal the children of PID 1 (gunicorn's
# master): its one worker, which holds the gate and the work. An exec'd process
# is no child of PID 1, and PID 1 itself ignores SIGKILL from inside its namespace.
_SIGNAL_WORKERS = """
import os, signal, sys
def parent(pid):
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])
sig = getattr(signal, "SIG" + sys.argv[1])
workers = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()]
workers = [p for p in workers if parent(p) == 1]
for pid in workers:
    os.kill(pid, sig)
print("signalled", *workers)
sys.exit(0 if workers else 1)
"""
