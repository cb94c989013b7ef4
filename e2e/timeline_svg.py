"""The timeline as a picture: one SVG, no dependencies, readable in a browser or a CI artifact.

Rows, top to bottom: the helm command, the hook Job, each pod (starting, Ready, terminating,
exited) with the operations it ran under it; dashed lines mark the moments that matter.
"""

from __future__ import annotations

from html import escape

from e2e.timeline import Operation, Timeline

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


def render_svg(timeline: Timeline, title: str) -> str:
    t0 = timeline.started
    moments = [t0] + [t for _, t in timeline.marks]
    for pod in timeline.pods.values():
        moments += [t for t in (pod.created, pod.ready, pod.exited, pod.terminating, pod.gone) if t]
    for job in timeline.jobs.values():
        moments += [t for t in (job.created, job.completed, job.failed) if t]
    for op in timeline.operations.values():
        moments += [op.started, op.finished or op.planned_end]
    t_end = max(moments) + 1
    width, left, row_h = 1000, 260, 26
    scale = (width - left - 20) / max(1.0, t_end - t0)

    def x(moment: float) -> float:
        # Whatever began before the recording starts at its left edge.
        return left + max(0.0, moment - t0) * scale

    rows: list[str] = []
    y = 40 + 14 * len(timeline.marks)

    def label(text: str) -> None:
        rows.append(f'<text x="8" y="{y + 16}" font-size="12">{escape(text)}</text>')

    def bar(start: float, end: float, color: str, tip: str, height: int = 14) -> None:
        w = max(2.0, x(end) - x(start))
        rows.append(
            f'<rect x="{x(start):.1f}" y="{y + 4}" width="{w:.1f}" height="{height}" '
            f'fill="{color}"><title>{escape(tip)}</title></rect>'
        )

    helm_start = next((t for n, t in timeline.marks if n.endswith("started")), None)
    helm_end = next((t for n, t in timeline.marks if n.endswith("ended")), None)
    if helm_start:
        label("helm " + next(n for n, _ in timeline.marks if n.endswith("started")).split()[1])
        bar(
            helm_start,
            helm_end or t_end,
            _COLORS["helm"],
            f"helm: {helm_start - t0:.1f}s to {(helm_end or t_end) - t0:.1f}s",
        )
        y += row_h
    for job in sorted(timeline.jobs.values(), key=lambda j: j.created):
        label(f"job {job.name}")
        end = job.completed or job.failed or t_end
        outcome = "completed" if job.completed else "failed" if job.failed else "running"
        bar(
            job.created,
            end,
            _COLORS["hook"] if not job.failed else _COLORS["cut"],
            f"{job.name}: created {job.created - t0:.1f}s, {outcome} {end - t0:.1f}s",
        )
        y += row_h
    for pod in sorted(timeline.pods.values(), key=lambda p: (p.role != "hook", p.created)):
        tag = pod.image.rsplit(":", 1)[-1]
        label(f"{pod.role} pod …{pod.name[-5:]} ({tag})")
        end = pod.gone or t_end
        ready = pod.ready or end
        bar(pod.created, ready, _COLORS["starting"], f"{pod.name}: starting")
        # Ready, then terminating and exited in whichever order they came: a
        # hook pod exits before it is deleted, an app pod is deleted first.
        stop = min(t for t in (pod.exited, pod.terminating, end) if t is not None)
        if pod.ready:
            bar(pod.ready, stop, _COLORS["ready"], f"{pod.name}: Ready")
        if pod.terminating and (pod.exited is None or pod.exited > pod.terminating):
            bar(
                pod.terminating,
                pod.exited or end,
                _COLORS["terminating"],
                f"{pod.name}: terminating",
            )
        if pod.exited:
            bar(pod.exited, end, _COLORS["exited"], f"{pod.name}: exited {pod.exit_code}")
        y += row_h
        # Operations one after another share a row (work arriving every second
        # would otherwise make a row each).
        lanes: list[list[Operation]] = []
        for op in sorted(
            (o for o in timeline.operations.values() if o.pod == pod.name), key=lambda o: o.started
        ):
            lane = next(
                (lane for lane in lanes if (lane[-1].finished or t_end) <= op.started), None
            )
            if lane is None:
                lanes.append([op])
            else:
                lane.append(op)
        for lane in lanes:
            first = lane[0]
            label(
                f"  operation {first.id} ({first.seconds:g}s)"
                if len(lane) == 1
                else f"  {len(lane)} operations"
            )
            for op in lane:
                end = op.finished or t_end
                verdict = "CUT OFF" if op.cut_off else op.state
                bar(
                    op.started,
                    end,
                    _COLORS["cut"] if op.cut_off else _COLORS["op"],
                    f"operation {op.id} ({op.seconds:g}s): {verdict}, "
                    f"{op.started - t0:.1f}s to {end - t0:.1f}s",
                    10,
                )
                if op.cut_off:
                    rows.append(
                        f'<text x="{x(end) + 4:.1f}" y="{y + 14}" font-size="11" '
                        f'fill="{_COLORS["cut"]}">cut off</text>'
                    )
            y += row_h
    for i, (name, moment) in enumerate(timeline.marks):
        top = 44 + 14 * i
        rows.append(
            f'<line x1="{x(moment):.1f}" y1="{top - 10}" x2="{x(moment):.1f}" y2="{y}" '
            f'stroke="{_COLORS["mark"]}" stroke-dasharray="3,3"><title>{escape(name)}</title>'
            "</line>"
            + (
                f'<text x="{x(moment) + 3:.1f}" y="{top}" font-size="10" fill="#555">'
                if x(moment) < width * 0.7
                else f'<text x="{x(moment) - 3:.1f}" y="{top}" font-size="10" fill="#555" '
                'text-anchor="end">'
            )
            + f"{escape(name)} ({moment - t0:.1f}s)</text>"
        )
    ticks = []
    step = 5 if t_end - t0 <= 120 else 30
    for second in range(0, int(t_end - t0) + 1, step):
        ticks.append(
            f'<text x="{x(t0 + second):.1f}" y="{y + 18}" font-size="10" '
            f'text-anchor="middle">{second}s</text>'
        )
    legend = " ".join(
        f'<rect x="{left + i * 120}" y="{y + 30}" width="10" height="10" fill="{c}"/>'
        f'<text x="{left + i * 120 + 14}" y="{y + 39}" font-size="11">{escape(n)}</text>'
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
    height = y + 60
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif">'
        f'<rect width="100%" height="100%" fill="white"/>'
        f'<text x="8" y="24" font-size="15" font-weight="bold">{escape(title)}</text>'
        + "".join(rows)
        + "".join(ticks)
        + legend
        + "</svg>"
    )
