"""What a failed scenario leaves behind, so that nobody needs a second run to know why.

Into the test's artifacts folder: every pod's log (and its previous
container's), the namespace's events in time order, ``helm status`` and
``helm history``, and each Job's conditions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from kubernetes.client.exceptions import ApiException

from e2e.helm import Helm
from e2e.kube import Kube

log = logging.getLogger("e2e.artifacts")


def collect(kube: Kube, helm: Helm, namespace: str, release: str, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    _guarded(directory / "helm-status.txt", lambda: helm.text("status", release, "-n", namespace))
    _guarded(directory / "helm-history.txt", lambda: helm.text("history", release, "-n", namespace))
    _guarded(directory / "events.txt", lambda: _events(kube, namespace))
    _guarded(directory / "jobs.txt", lambda: _jobs(kube, namespace))
    try:
        pods = kube.core.list_namespaced_pod(namespace).items
    except ApiException as exc:
        (directory / "pods.txt").write_text(f"cannot list pods: {exc}")
        return
    for pod in pods:
        for container in pod.spec.containers:
            for previous in (False, True):
                name = f"pod-{pod.metadata.name}-{container.name}{'-previous' if previous else ''}"
                try:
                    text = kube.core.read_namespaced_pod_log(
                        pod.metadata.name,
                        namespace,
                        container=container.name,
                        previous=previous,
                        timestamps=True,
                    )
                except ApiException:
                    continue  # no previous container, or not started yet
                # An empty log comes back as None, not "".
                (directory / f"{name}.log").write_text(text or "")
    log.info("artifacts of %s written to %s", namespace, directory)


def _events(kube: Kube, namespace: str) -> str:
    events = kube.core.list_namespaced_event(namespace).items

    def when(event: object) -> str:
        moment = (
            getattr(event, "last_timestamp", None)
            or getattr(event, "event_time", None)
            or getattr(event, "first_timestamp", None)
        )
        return moment.isoformat() if moment else ""

    lines = []
    for event in sorted(events, key=when):
        obj = event.involved_object
        lines.append(
            f"{when(event)} {event.type:<7} {obj.kind}/{obj.name}: {event.reason}: {event.message}"
        )
    return "\n".join(lines) + "\n"


def _jobs(kube: Kube, namespace: str) -> str:
    lines = []
    for job in kube.batch.list_namespaced_job(namespace).items:
        status = job.status
        lines.append(
            f"{job.metadata.name}: active={status.active} succeeded={status.succeeded} "
            f"failed={status.failed}"
        )
        for condition in status.conditions or []:
            lines.append(
                f"  {condition.type}={condition.status} {condition.reason}: {condition.message}"
            )
    return "\n".join(lines) + "\n"


def _guarded(path: Path, produce: Callable[[], str]) -> None:
    try:
        text = produce()
    except Exception as exc:  # collecting must never hide the test's own failure
        text = f"could not collect: {exc}\n"
    path.write_text(str(text))
