"""Charts of the admin, drawn on the server as inline SVG: no script, no library, no CDN.

* :func:`operations_per_hour` — the last 24 hours of attempted operations, one bar per hour
  stacked by status. One aggregate query over ``ops_log`` restricted to the window on ``ts``
  (an index range), so its cost follows the day's rows, not the table's size.
* :func:`timeline` — a job's steps as bars on one time axis (the job page).

Each returns plain numbers (positions and sizes in the SVG's own units) for a template that
only places them; colours are fixed per status, with a text title on every bar.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connections

#: Fill of each status (audit rows and job steps), readable in the admin's light and dark themes.
COLOURS = {
    "success": "#3a9d5d",
    "error": "#d64541",
    "failed": "#d64541",
    "denied": "#e3962b",
    "pending": "#9aa5b1",
    "running": "#4a90d9",
    "cancelled": "#b0a16a",
}
#: The order statuses are stacked in, bottom first.
STACK = ("success", "error", "denied", "pending")

WIDTH, HEIGHT = 720, 180
LEFT, BOTTOM, TOP = 44, 22, 10


@dataclass(frozen=True)
class Bar:
    """One rectangle: where, how big, its colour and what its title says."""

    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str
    status: str = ""


@dataclass(frozen=True)
class Tick:
    """A label on an axis, where it goes, and which of its ends is there."""

    position: float
    label: str
    anchor: str = "middle"


@dataclass
class Chart:
    """What a chart template draws."""

    width: int
    height: int
    bars: list[Bar] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)
    total: int = 0
    plot_left: float = LEFT
    plot_bottom: float = HEIGHT - BOTTOM
    #: Where the y labels go: right-aligned before the plot, or left-aligned at the edge.
    y_label_x: float = LEFT - 6
    y_label_anchor: str = "end"


_HOURLY_SQL = """
SELECT date_trunc('hour', ts) AS hour, status, count(*)
  FROM ops_log
 WHERE ts >= %s AND ts < %s
 GROUP BY 1, 2
"""


def hourly_counts(since: datetime, until: datetime, using: str = "audit") -> dict:
    """``{(hour, status): count}`` of audit rows in ``[since, until)``: one aggregate query."""
    with connections[using].cursor() as cursor:
        cursor.execute(_HOURLY_SQL, [since, until])
        return {(hour, status): n for hour, status, n in cursor.fetchall()}


def _nice_max(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (at least 1)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def operations_per_hour(now: datetime, counts: dict | None = None) -> Chart:
    """The last 24 full and current hours of operations, stacked by status."""
    current = now.replace(minute=0, second=0, microsecond=0)
    hours = [current - timedelta(hours=23 - i) for i in range(24)]
    if counts is None:
        counts = hourly_counts(hours[0], current + timedelta(hours=1))
    totals = [sum(counts.get((h, s), 0) for s in STACK) for h in hours]
    top = _nice_max(max(totals, default=0))
    chart = Chart(WIDTH, HEIGHT, total=sum(totals))
    plot_h = HEIGHT - BOTTOM - TOP
    slot = (WIDTH - LEFT) / 24
    for i, hour in enumerate(hours):
        y = HEIGHT - BOTTOM
        for status in STACK:
            n = counts.get((hour, status), 0)
            if not n:
                continue
            h = plot_h * n / top
            y -= h
            chart.bars.append(
                Bar(
                    x=round(LEFT + i * slot + 1, 2),
                    y=round(y, 2),
                    width=round(slot - 2, 2),
                    height=round(h, 2),
                    colour=COLOURS[status],
                    title=f"{hour:%Y-%m-%d %H}:00 UTC: {n} {status}",
                    status=status,
                )
            )
        if i % 6 == 0:
            chart.x_ticks.append(Tick(round(LEFT + (i + 0.5) * slot, 2), f"{hour:%H}:00"))
    chart.x_ticks.append(Tick(WIDTH, f"{hours[-1]:%H}:00 (now)", anchor="end"))
    for value in (0, top // 2, top):
        chart.y_ticks.append(Tick(round(HEIGHT - BOTTOM - plot_h * value / top, 2), str(value)))
    chart.legend = [(s, COLOURS[s]) for s in STACK]
    return chart


@dataclass(frozen=True)
class Span:
    """A step as the timeline needs it."""

    name: str
    status: str
    started_at: datetime | None
    finished_at: datetime | None


def timeline(spans: Sequence[Span], now: datetime) -> Chart:
    """Steps as horizontal bars from their start to their end (``now`` while running), on
    one axis from the first start to the last end; steps not started get no bar."""
    row_h, label_w = 22, 150
    chart = Chart(
        WIDTH,
        TOP + row_h * max(len(spans), 1) + BOTTOM,
        plot_left=label_w,
        y_label_x=4,
        y_label_anchor="start",
    )
    chart.plot_bottom = chart.height - BOTTOM
    started = [s.started_at for s in spans if s.started_at]
    if not started:
        return chart
    begin = min(started)
    end = max((s.finished_at or now) for s in spans if s.started_at)
    total = max((end - begin).total_seconds(), 0.001)
    plot_w = WIDTH - label_w - 10
    for i, span in enumerate(spans):
        if span.started_at is None:
            continue
        stop = span.finished_at or now
        x0 = (span.started_at - begin).total_seconds() / total * plot_w
        width = max((stop - span.started_at).total_seconds() / total * plot_w, 2)
        took = (stop - span.started_at).total_seconds()
        chart.bars.append(
            Bar(
                x=round(label_w + x0, 2),
                y=TOP + i * row_h + 3,
                width=round(width, 2),
                height=row_h - 6,
                colour=COLOURS.get(span.status, COLOURS["pending"]),
                title=f"{span.name}: {span.status}, {took:.1f} s",
                status=span.status,
            )
        )
    chart.y_ticks = [Tick(TOP + i * row_h + row_h / 2 + 4, s.name) for i, s in enumerate(spans)]
    chart.x_ticks = [
        Tick(round(label_w + plot_w * f, 2), f"+{total * f:.1f} s", anchor)
        for f, anchor in ((0, "start"), (0.5, "middle"), (1, "end"))
    ]
    chart.total = len(chart.bars)
    return chart


def spans_of(steps: Iterable) -> list[Span]:
    """The spans of step rows (anything with name, status, started_at, finished_at)."""
    return [Span(s.name, s.status, s.started_at, s.finished_at) for s in steps]
