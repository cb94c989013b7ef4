"""The timeline as a picture: one SVG, no dependencies, readable in a browser or a CI artifact.

Rows, top to bottom: the helm command, the hook Job, each pod (starting, Ready, terminating,
exited) with the operations it ran under it; dashed lines mark the moments that matter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from e2e.timeline import Operation, PodLife, Timeline

_COLORS = {
    "helm": "#6c7a89",
    "hook": "#8e44ad",
    "starting": "#d6eaf8",
    "ready": "#2e86c1",
    "terminating": "#f5b041",
    "exited": "#bfc9ca",
    "op": "#27ae60",
    "cut": "#c0392b",
    "mark": "#7f8c8d",
}
_WIDTH, _LEFT, _ROW_H = 1000, 260, 26


def render_svg(timeline: Timeline, title: str) -> str:
    """The picture, layer by layer: the rows (helm, Jobs, pods and their operations), the
    marks across them, the time axis and the legend."""
    canvas = _Canvas(timeline.started, _end(timeline), y=40 + 14 * len(timeline.marks))
    _helm_row(canvas, timeline)
    _job_rows(canvas, timeline)
    _pod_rows(canvas, timeline)
    _mark_lines(canvas, timeline)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{canvas.y + 60}" '
        f'font-family="sans-serif">'
        f'<rect width="100%" height="100%" fill="white"/>'
        f'<text x="8" y="24" font-size="15" font-weight="bold">{escape(title)}</text>'
        + "".join(canvas.rows)
        + _time_axis(canvas)
        + _legend(canvas.y)
        + "</svg>"
    )


def _end(timeline: Timeline) -> float:
    """The right edge of the picture: one second after the last moment the timeline holds."""
    t0 = timeline.started
    moments = [t0] + [t for _, t in timeline.marks]
    for pod in timeline.pods.values():
        moments += [t for t in (pod.created, pod.ready, pod.exited, pod.terminating, pod.gone) if t]
    for job in timeline.jobs.values():
        moments += [t for t in (job.created, job.completed, job.failed) if t]
    for op in timeline.operations.values():
        moments += [op.started, op.finished or op.planned_end]
    return max(moments) + 1


@dataclass
class _Canvas:
    """The picture so far: its time scale, the rows drawn, and ``y``, the top of the next row."""

    t0: float
    t_end: float
    y: int
    rows: list[str] = field(default_factory=list)
    scale: float = field(init=False)

    def __post_init__(self) -> None:
        self.scale = (_WIDTH - _LEFT - 20) / max(1.0, self.t_end - self.t0)

    def x(self, moment: float) -> float:
        # Whatever began before the recording starts at its left edge.
        return _LEFT + max(0.0, moment - self.t0) * self.scale

    def label(self, text: str) -> None:
        """The current row's name, left of the time axis."""
        self.rows.append(f'<text x="8" y="{self.y + 16}" font-size="12">{escape(text)}</text>')

    def bar(self, start: float, end: float, color: str, tip: str, height: int = 14) -> None:
        """A bar in the current row from ``start`` to ``end``, ``tip`` shown on hover."""
        w = max(2.0, self.x(end) - self.x(start))
        self.rows.append(
            f'<rect x="{self.x(start):.1f}" y="{self.y + 4}" width="{w:.1f}" height="{height}" '
            f'fill="{color}"><title>{escape(tip)}</title></rect>'
        )

    def next_row(self) -> None:
        self.y += _ROW_H


def _helm_row(canvas: _Canvas, timeline: Timeline) -> None:
    """The helm command, from its start mark to its end mark (or the picture's end)."""
    t0, t_end = canvas.t0, canvas.t_end
    helm_start = next((t for n, t in timeline.marks if n.endswith("started")), None)
    helm_end = next((t for n, t in timeline.marks if n.endswith("ended")), None)
    if helm_start:
        canvas.label(
            "helm " + next(n for n, _ in timeline.marks if n.endswith("started")).split()[1]
        )
        canvas.bar(
            helm_start,
            helm_end or t_end,
            _COLORS["helm"],
            f"helm: {helm_start - t0:.1f}s to {(helm_end or t_end) - t0:.1f}s",
        )
        canvas.next_row()


def _job_rows(canvas: _Canvas, timeline: Timeline) -> None:
    """A row per hook Job, in the order they were made: red if it failed."""
    t0 = canvas.t0
    for job in sorted(timeline.jobs.values(), key=lambda j: j.created):
        canvas.label(f"job {job.name}")
        end = job.completed or job.failed or canvas.t_end
        outcome = "completed" if job.completed else "failed" if job.failed else "running"
        canvas.bar(
            job.created,
            end,
            _COLORS["hook"] if not job.failed else _COLORS["cut"],
            f"{job.name}: created {job.created - t0:.1f}s, {outcome} {end - t0:.1f}s",
        )
        canvas.next_row()


def _pod_rows(canvas: _Canvas, timeline: Timeline) -> None:
    """A row per pod, hook pods first, each followed by the rows of the operations it ran."""
    for pod in sorted(timeline.pods.values(), key=lambda p: (p.role != "hook", p.created)):
        _pod_row(canvas, pod)
        _operation_rows(
            canvas,
            sorted(
                (o for o in timeline.operations.values() if o.pod == pod.name),
                key=lambda o: o.started,
            ),
        )


def _pod_row(canvas: _Canvas, pod: PodLife) -> None:
    """One pod's life: starting, Ready, terminating, exited."""
    tag = pod.image.rsplit(":", 1)[-1]
    canvas.label(f"{pod.role} pod …{pod.name[-5:]} ({tag})")
    end = pod.gone or canvas.t_end
    ready = pod.ready or end
    canvas.bar(pod.created, ready, _COLORS["starting"], f"{pod.name}: starting")
    # Ready, then terminating and exited in whichever order they came: a
    # hook pod exits before it is deleted, an app pod is deleted first.
    stop = min(t for t in (pod.exited, pod.terminating, end) if t is not None)
    if pod.ready:
        canvas.bar(pod.ready, stop, _COLORS["ready"], f"{pod.name}: Ready")
    if pod.terminating and (pod.exited is None or pod.exited > pod.terminating):
        canvas.bar(
            pod.terminating,
            pod.exited or end,
            _COLORS["terminating"],
            f"{pod.name}: terminating",
        )
    if pod.exited:
        canvas.bar(pod.exited, end, _COLORS["exited"], f"{pod.name}: exited {pod.exit_code}")
    canvas.next_row()


def _lanes(operations: list[Operation], t_end: float) -> list[list[Operation]]:
    """``operations`` (by start) in lanes: each lane's next begins once its last has ended."""
    # Operations one after another share a row (work arriving every second
    # would otherwise make a row each).
    lanes: list[list[Operation]] = []
    for op in operations:
        lane = next((lane for lane in lanes if (lane[-1].finished or t_end) <= op.started), None)
        if lane is None:
            lanes.append([op])
        else:
            lane.append(op)
    return lanes


def _operation_rows(canvas: _Canvas, operations: list[Operation]) -> None:
    """A row per lane of one pod's operations; an operation cut off is red and says so."""
    t0, t_end = canvas.t0, canvas.t_end
    for lane in _lanes(operations, t_end):
        first = lane[0]
        canvas.label(
            f"  operation {first.id} ({first.seconds:g}s)"
            if len(lane) == 1
            else f"  {len(lane)} operations"
        )
        for op in lane:
            end = op.finished or t_end
            verdict = "CUT OFF" if op.cut_off else op.state
            canvas.bar(
                op.started,
                end,
                _COLORS["cut"] if op.cut_off else _COLORS["op"],
                f"operation {op.id} ({op.seconds:g}s): {verdict}, "
                f"{op.started - t0:.1f}s to {end - t0:.1f}s",
                10,
            )
            if op.cut_off:
                canvas.rows.append(
                    f'<text x="{canvas.x(end) + 4:.1f}" y="{canvas.y + 14}" font-size="11" '
                    f'fill="{_COLORS["cut"]}">cut off</text>'
                )
        canvas.next_row()


def _mark_lines(canvas: _Canvas, timeline: Timeline) -> None:
    """A dashed line down the rows at each mark, named at the top, left of it near the edge."""
    t0, x, y = canvas.t0, canvas.x, canvas.y
    for i, (name, moment) in enumerate(timeline.marks):
        top = 44 + 14 * i
        canvas.rows.append(
            f'<line x1="{x(moment):.1f}" y1="{top - 10}" x2="{x(moment):.1f}" y2="{y}" '
            f'stroke="{_COLORS["mark"]}" stroke-dasharray="3,3"><title>{escape(name)}</title>'
            "</line>"
            + (
                f'<text x="{x(moment) + 3:.1f}" y="{top}" font-size="10" fill="#555">'
                if x(moment) < _WIDTH * 0.7
                else f'<text x="{x(moment) - 3:.1f}" y="{top}" font-size="10" fill="#555" '
                'text-anchor="end">'
            )
            + f"{escape(name)} ({moment - t0:.1f}s)</text>"
        )


def _time_axis(canvas: _Canvas) -> str:
    """Seconds since the start under the rows: every 5 s, or every 30 s past two minutes."""
    t0, t_end = canvas.t0, canvas.t_end
    ticks = []
    step = 5 if t_end - t0 <= 120 else 30
    for second in range(0, int(t_end - t0) + 1, step):
        ticks.append(
            f'<text x="{canvas.x(t0 + second):.1f}" y="{canvas.y + 18}" font-size="10" '
            f'text-anchor="middle">{second}s</text>'
        )
    return "".join(ticks)


def _legend(y: int) -> str:
    """What each color means, in a line below the time axis (``y``: the bottom of the rows)."""
    return " ".join(
        f'<rect x="{_LEFT + i * 120}" y="{y + 30}" width="10" height="10" fill="{c}"/>'
        f'<text x="{_LEFT + i * 120 + 14}" y="{y + 39}" font-size="11">{escape(n)}</text>'
        for i, (n, c) in enumerate(
            [
                ("pod starting", _COLORS["starting"]),
                ("pod Ready", _COLORS["ready"]),
                ("terminating", _COLORS["terminating"]),
                ("exited", _COLORS["exited"]),
                ("operation", _COLORS["op"]),
                ("cut off", _COLORS["cut"]),
            ]
        )
    )
