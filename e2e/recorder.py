"""Watch a scenario as it happens and draw it.

The recorder watches Pods and Jobs in the test namespace (Kubernetes watch
streams) and the app's operations (polled through the API server's pod
proxy), and takes marks from the scenario (helm started, helm ended) into a
:class:`~e2e.timeline.Timeline`.

``save()`` writes ``timeline.json`` and ``timeline.svg``: operation spans,
old and new pod lifetimes (created, Ready, terminating, gone), the hook Job,
and the helm command.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from kubernetes import watch
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from e2e.kube import Kube
from e2e.timeline import JobLife, Operation, PodLife, Timeline, epoch
from e2e.timeline_svg import render_svg

log = logging.getLogger("e2e.recorder")


def _epoch(stamp: str | None) -> float | None:
    if not stamp:
        return None
    return epoch(stamp)


class Recorder:
    def __init__(self, kube: Kube, namespace: str, release: str, poll: float = 0.25) -> None:
        self.kube = kube
        self.namespace = namespace
        self.release = release
        self.poll = poll
        self.timeline = Timeline(started=time.time())
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._following: set[str] = set()
        self._pollers: dict[str, threading.Thread] = {}

    def __enter__(self) -> Recorder:
        for target in (self._watch_pods, self._watch_jobs, self._poll_operations):
            thread = threading.Thread(
                target=target, name=f"timeline-{target.__name__}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._poll_once()
        self._stop.set()
        for thread in self._threads:  # the pollers' starter among them: then no new poller
            thread.join(timeout=10)
        for thread in list(self._pollers.values()):
            thread.join(timeout=10)
        self._judge_cut_offs()

    def mark(self, name: str) -> float:
        moment = time.time()
        with self._lock:
            self.timeline.marks.append((name, moment))
        log.info("mark: %s", name)
        return moment

    def mark_at(self, name: str, moment: float) -> None:
        with self._lock:
            self.timeline.marks.append((name, moment))
            self.timeline.marks.sort(key=lambda mark: mark[1])

    def snapshot(self) -> Timeline:
        with self._lock:
            return Timeline(
                started=self.timeline.started,
                pods={k: PodLife(**asdict(v)) for k, v in self.timeline.pods.items()},
                jobs={k: JobLife(**asdict(v)) for k, v in self.timeline.jobs.items()},
                operations={k: Operation(**asdict(v)) for k, v in self.timeline.operations.items()},
                marks=list(self.timeline.marks),
            )

    # -- watchers ----------------------------------------------------------------

    def _stream(self, list_call: Any, on_event: Any) -> None:
        resource_version: str | None = None
        while not self._stop.is_set():
            watcher = watch.Watch()  # type: ignore[no-untyped-call]
            try:
                for event in watcher.stream(  # type: ignore[no-untyped-call]
                    list_call,
                    self.namespace,
                    timeout_seconds=5,
                    resource_version=resource_version,
                    _request_timeout=10,
                ):
                    obj = event["object"]
                    resource_version = obj.metadata.resource_version
                    with self._lock:
                        on_event(event["type"], obj, time.time())
                    if self._stop.is_set():
                        break
            except (HTTPError, OSError) as exc:
                log.debug("watch interrupted (%s); resuming", exc)
                self._stop.wait(0.2)
            except Exception as exc:  # an expired resourceVersion: list again
                log.debug("watch restarted: %s", exc)
                resource_version = None
            finally:
                watcher.stop()  # type: ignore[no-untyped-call]

    def _watch_pods(self) -> None:
        self._stream(self.kube.core.list_namespaced_pod, self._on_pod)

    def _watch_jobs(self) -> None:
        self._stream(self.kube.batch.list_namespaced_job, self._on_job)

    def _on_pod(self, kind: str, pod: Any, now: float) -> None:
        meta = pod.metadata
        labels = meta.labels or {}
        if labels.get("app.kubernetes.io/instance") != self.release:
            return
        role = "hook" if labels.get("app.kubernetes.io/component") == "upgrade-gate" else "app"
        life = self.timeline.pods.get(meta.uid)
        if life is None:
            # creationTimestamp has whole seconds: live events carry a finer time.
            stamp = meta.creation_timestamp.timestamp()
            created = stamp if stamp < self.timeline.started else now
            life = PodLife(meta.name, meta.uid, role, pod.spec.containers[0].image, created)
            self.timeline.pods[meta.uid] = life
            log.info("pod %s (%s, %s) created", meta.name, role, life.image)
        if pod.spec.node_name and life.node is None:
            life.node = pod.spec.node_name
            log.info("pod %s on node %s", meta.name, life.node)
        ready = next(
            (c for c in (pod.status.conditions or []) if c.type == "Ready" and c.status == "True"),
            None,
        )
        if ready is not None and life.ready is None:
            # Ready before the recording began: the condition's own time says when.
            since = ready.last_transition_time.timestamp() if ready.last_transition_time else now
            life.ready = since if since < self.timeline.started else now
            log.info("pod %s Ready", meta.name)
        if role == "hook" and pod.status.phase == "Running" and meta.uid not in self._following:
            self._following.add(meta.uid)
            threading.Thread(
                target=self._follow_log, args=(meta.name,), name=f"log-{meta.name}", daemon=True
            ).start()
        terminated = next(
            (c.state.terminated for c in pod.status.container_statuses or [] if c.state.terminated),
            None,
        )
        if terminated is not None and life.exited is None:
            life.exited, life.exit_code = now, terminated.exit_code
            log.info("pod %s exited %s", meta.name, terminated.exit_code)
        if pod.status.phase in ("Succeeded", "Failed") and life.finished is None:
            life.finished = now
            log.info("pod %s %s", meta.name, pod.status.phase)
        if meta.deletion_timestamp is not None and life.terminating is None:
            life.terminating = now
            log.info("pod %s terminating", meta.name)
        if kind == "DELETED" and life.gone is None:
            life.gone = now
            life.terminating = life.terminating or now
            log.info("pod %s gone", meta.name)

    def _on_job(self, kind: str, job: Any, now: float) -> None:
        meta = job.metadata
        if (meta.labels or {}).get("app.kubernetes.io/instance") != self.release:
            return
        key = meta.uid
        life = self.timeline.jobs.get(key)
        if life is None:
            life = JobLife(meta.name, now)
            self.timeline.jobs[key] = life
            log.info("job %s created", meta.name)
        status = job.status
        if status.start_time and life.started is None:
            life.started = now
        if status.succeeded and life.completed is None:
            life.completed = now
            log.info("job %s completed", meta.name)
        failed = any(c.type == "Failed" and c.status == "True" for c in (status.conditions or []))
        if failed and life.failed is None:
            life.failed = now
            log.info("job %s failed", meta.name)

    def _follow_log(self, pod: str) -> None:
        """The hook's log, line by line as it happens: the gate's side of the story.

        The stream goes through the API server, so it breaks when the API server goes away
        (a scenario can stop it). It is read again from the start, skipping the lines shown,
        until the container has exited and its log was read to the end."""
        shown = 0
        while True:
            exited = self._exited(pod)  # before the read: a read after the exit has it all
            try:
                stream = self.kube.core.read_namespaced_pod_log(
                    pod, self.namespace, follow=not exited, _preload_content=False
                )
                read, partial = 0, b""
                for raw in stream.stream():
                    *lines, partial = (partial + raw).split(b"\n")
                    for line in lines:
                        read += 1
                        if read > shown:
                            shown = read
                            text = line.decode(errors="replace")
                            log.info("hook| %s", text.split(" ", 1)[-1].strip())
                    if self._stop.is_set():
                        return
                if partial and read + 1 > shown:
                    shown = read + 1
                    log.info("hook| %s", partial.decode(errors="replace").split(" ", 1)[-1])
                if exited:
                    return
            except ApiException as exc:
                if exc.status == 404:  # the pod is gone: its log with it
                    return
                log.debug("log of %s broke: %s", pod, exc)
            except Exception as exc:  # the API server away: read again when it is back
                log.debug("log of %s broke: %s", pod, exc)
            if self._stop.wait(1.0):
                return

    def _exited(self, pod: str) -> bool:
        with self._lock:
            return any(
                life.name == pod and (life.exited or life.finished or life.gone)
                for life in self.timeline.pods.values()
            )

    # -- operations --------------------------------------------------------------

    def _app_pods(self) -> list[str]:
        with self._lock:
            return [p.name for p in self.timeline.pods.values() if p.role == "app" and not p.gone]

    def _poll_operations(self) -> None:
        """One poller per app pod: a pod that stopped answering (its address gone, each ask
        waiting out its timeout) must not hide another's last moments. A draining pod shows
        its operation succeeded only between the end and its exit, about a second; asked in
        turn behind two dying pods, it was missed and the operation stayed running."""
        while not self._stop.wait(self.poll):
            for pod in self._app_pods():
                if pod not in self._pollers:
                    thread = threading.Thread(
                        target=self._poll_pod, args=(pod,), name=f"ops-{pod}", daemon=True
                    )
                    self._pollers[pod] = thread
                    thread.start()

    def _poll_pod(self, pod: str) -> None:
        while not self._stop.is_set() and pod in self._app_pods():
            self._poll_one(pod)
            self._stop.wait(self.poll)

    def _poll_once(self) -> None:
        for pod in self._app_pods():
            self._poll_one(pod)

    def _poll_one(self, pod: str) -> None:
        try:
            records = self.kube.operations(self.namespace, pod)
        except Exception as exc:  # the pod or the API is going away: keep the last view
            log.debug("operations of %s unavailable: %s", pod, exc)
            return
        if records is None:
            return
        with self._lock:
            for record in records:
                self._merge(pod, record)

    def _merge(self, pod: str, record: dict[str, Any]) -> None:
        key = f"{pod}/{record['id']}"
        op = self.timeline.operations.get(key)
        started = _epoch(record["started_at"]) or time.time()
        if op is None:
            op = Operation(pod, record["id"], float(record.get("seconds", 0)), started)
            self.timeline.operations[key] = op
        if record["state"] != op.state:
            op.state = record["state"]
            op.finished = _epoch(record.get("finished_at"))
            log.info("operation %s on %s %s", op.id, pod, op.state)

    def _judge_cut_offs(self) -> None:
        """An operation is cut off if its pod was gone before it could have finished."""
        gone = {p.name: p.gone for p in self.timeline.pods.values() if p.gone}
        for op in self.timeline.operations.values():
            end = gone.get(op.pod)
            if op.state == "running" and end is not None and end < op.planned_end:
                op.cut_off = True
                op.finished = end
                log.info("operation %s on %s CUT OFF", op.id, op.pod)

    # -- output ------------------------------------------------------------------

    def save(self, directory: Path, title: str) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        timeline = self.snapshot()
        (directory / "timeline.json").write_text(json.dumps(timeline.to_json(), indent=2))
        svg = directory / "timeline.svg"
        svg.write_text(render_svg(timeline, title))
        return svg
