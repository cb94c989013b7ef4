"""What happened in a scenario: pod and Job lifetimes, operations, marks.

A :class:`Timeline` is data only: ``e2e.recorder`` fills it while a scenario
runs, ``e2e.timeline_svg`` draws it, the checks and the summary read it, and
``timeline.json`` is its ``to_json()``. All times are wall-clock seconds
observed by the harness, so they compare with the app's ``started_at`` and
``finished_at``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


def epoch(stamp: str) -> float:
    """Wall-clock seconds of an RFC 3339 time as the app, the hook and the API server write it
    (``...Z``)."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@dataclass
class PodLife:
    name: str
    uid: str
    role: str  # "app" or "hook"
    image: str
    created: float
    ready: float | None = None
    exited: float | None = None  # when the API server first showed the container terminated
    exit_code: int | None = None
    # When the API server first showed the pod Succeeded or Failed: for a bare
    # hook Pod, the moment Helm's wait for it ends (the kubelet reports the
    # phase a relist after the container's exit).
    finished: float | None = None
    terminating: float | None = None
    gone: float | None = None
    node: str | None = None  # where the scheduler put it


@dataclass
class JobLife:
    name: str
    created: float
    started: float | None = None
    completed: float | None = None
    failed: float | None = None


@dataclass
class Operation:
    pod: str
    id: str
    seconds: float
    started: float
    finished: float | None = None
    state: str = "running"
    cut_off: bool = False

    @property
    def planned_end(self) -> float:
        return self.started + self.seconds


@dataclass
class Timeline:
    started: float
    pods: dict[str, PodLife] = field(default_factory=dict)
    jobs: dict[str, JobLife] = field(default_factory=dict)
    operations: dict[str, Operation] = field(default_factory=dict)
    marks: list[tuple[str, float]] = field(default_factory=list)

    def mark_time(self, name: str) -> float:
        for mark, moment in self.marks:
            if mark == name:
                return moment
        raise KeyError(f"no mark {name!r} in {[m for m, _ in self.marks]}")

    def app_pods(self) -> list[PodLife]:
        return sorted((p for p in self.pods.values() if p.role == "app"), key=lambda p: p.created)

    def hook_done(self, since: float) -> tuple[str, float] | None:
        """When Helm's wait for a hook made after ``since`` ended: its Job complete, or,
        where there is no Job, its bare Pod succeeded. None while neither happened."""
        jobs = [j for j in self.jobs.values() if j.created >= since]
        completed = [j.completed for j in jobs if j.completed is not None]
        if completed:
            return "Job complete", min(completed)
        if jobs:
            return None
        succeeded = [
            p.finished
            for p in self.pods.values()
            if p.role == "hook"
            and p.finished is not None
            and p.exit_code == 0
            and p.created >= since
        ]
        return ("Pod succeeded", min(succeeded)) if succeeded else None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Timeline:
        """Read back what :meth:`to_json` wrote (``timeline.json``)."""
        return cls(
            started=data["started"],
            marks=[(m["name"], m["at"]) for m in data["marks"]],
            pods={p["uid"]: PodLife(**p) for p in data["pods"]},
            jobs={str(i): JobLife(**j) for i, j in enumerate(data["jobs"])},
            operations={f"{o['pod']}/{o['id']}": Operation(**o) for o in data["operations"]},
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "started": self.started,
            "marks": [{"name": n, "at": t} for n, t in self.marks],
            "pods": [asdict(p) for p in self.pods.values()],
            "jobs": [asdict(j) for j in self.jobs.values()],
            "operations": [asdict(o) for o in self.operations.values()],
        }
