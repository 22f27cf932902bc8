"""What the timeline draws for one window of a run, aggregated here so the browser never receives
more bars than it has pixels.

Lanes: one per activity name (the busiest ``MAX_ACTIVITY_LANES``; the rest share "other
activities"), one for waits (signals, timers), one for side effects and failures. Each lane
carries its count and total duration over the whole run. Inside the window, spans of a lane
that are closer than a pixel (or overlap, as parallel activities do) merge into one bar with a
count, so bars of one lane never overlap and a lane holds at most ``width`` bars whatever the
run's size. Positions are in pixels of the plot area, clipped to ``[0, width]``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..notebook.formats import duration
from .timeline import EFFECTS_LANE, WAITS_LANE, Span, Spans

__all__ = ["MAX_ACTIVITY_LANES", "MAX_SEQS", "PLOT_WIDTH", "clamp_window", "fmt_ms", "timeline_view"]

#: Width of the plot area in the widget's SVG units (the widget draws lane titles left of it).
PLOT_WIDTH = 760
MAX_ACTIVITY_LANES = 10
#: A click on a bar selects its events; a merged bar of 10,000 spans selects the first of them.
MAX_SEQS = 200
#: The narrowest window one can zoom into, in ms.
MIN_WINDOW_MS = 1.0
#: A bar is drawn at least this wide (px), so a 0 ms activity or a point is visible and clickable.
MIN_BAR_PX = 2.0
OTHER_LANE = "other activities"


def fmt_ms(ms: float) -> str:
    """A duration for a human: ``3 ms``, ``4.2 s``, ``12.5 min``, ``3.0 h``, ``2.0 d``."""
    return duration(ms / 1000.0)


def clamp_window(window: Any, t_end: float) -> tuple[float, float]:
    """A requested window as a valid ``(start, end)`` inside ``[0, t_end]`` (the whole run when
    it is missing or unreadable), at least ``MIN_WINDOW_MS`` wide."""
    full = (0.0, max(t_end, MIN_WINDOW_MS))
    try:
        a, b = (float(window[0]), float(window[1]))
    except (TypeError, ValueError, IndexError, KeyError):
        return full
    if not (a == a and b == b) or b <= a:   # NaN or empty
        return full
    a, b = max(a, 0.0), min(b, full[1])
    if b - a < MIN_WINDOW_MS:
        mid = (a + b) / 2
        a, b = max(0.0, mid - MIN_WINDOW_MS / 2), min(full[1], mid + MIN_WINDOW_MS / 2)
    return (a, b) if b > a else full


@dataclass
class _Bar:
    x0: float
    x1: float            # drawn right edge (at least MIN_BAR_PX past x0)
    start: float
    end: float
    count: int
    statuses: Counter[str]
    names: Counter[str]
    total_ms: float
    seqs: list[int]
    attempts: int
    first: Span


def _lane_keys(spans: list[Span]) -> dict[str, str]:
    """Activity name -> lane title (the busiest names keep their own lane)."""
    counts = Counter(s.lane for s in spans if s.kind == "activity")
    keep = {name for name, _ in counts.most_common(MAX_ACTIVITY_LANES)}
    if len(counts) > MAX_ACTIVITY_LANES:
        keep = {name for name, _ in counts.most_common(MAX_ACTIVITY_LANES - 1)}
    return {name: (name if name in keep else OTHER_LANE) for name in counts}


def _bar_view(bar: _Bar, lane: int, lane_title: str) -> dict[str, Any]:
    status = next(iter(bar.statuses)) if len(bar.statuses) == 1 else "mixed"
    dur = fmt_ms(bar.end - bar.start)
    span = bar.first
    if bar.count == 1:
        tries = f" ×{span.attempts} attempts" if span.attempts > 1 else ""
        name = span.label
        label = f"{name} · {status}" + ("" if span.kind == "effect" else f" · {dur}")
        tip = f"{name} (seq {span.seqs[0]}): {status}{tries}, {dur}, +{fmt_ms(span.start)} → +{fmt_ms(span.end)}"
    else:
        what = bar.names.most_common(1)[0][0] if len(bar.names) == 1 else lane_title
        label = f"{bar.count} × {what}"
        parts = ", ".join(f"{n} {s}" for s, n in bar.statuses.most_common())
        tip = (f"{bar.count} × {what}: {parts}; +{fmt_ms(bar.start)} → +{fmt_ms(bar.end)}, "
               f"{fmt_ms(bar.total_ms)} in total")
    return {
        "lane": lane, "x0": round(bar.x0, 2), "x1": round(bar.x1, 2), "start": bar.start, "end": bar.end,
        "count": bar.count, "status": status, "kind": span.kind, "label": label, "tip": tip,
        "wait": ("timer" if span.label == "timer" else "signal") if span.kind == "wait" else "",
        "seqs": bar.seqs, "attempts": bar.attempts,
    }


def timeline_view(spans: Spans, *, window: Any = None, width: float = PLOT_WIDTH) -> dict[str, Any]:
    """The timeline of ``spans`` for ``window`` (``[start_ms, end_ms]``; None: the whole run),
    drawn ``width`` pixels wide: lanes with their totals, merged bars, and the window itself."""
    a, b = clamp_window(window, spans.t_end)
    scale = width / (b - a)
    names = _lane_keys(spans.spans)

    def lane_of(s: Span) -> str:
        return names[s.lane] if s.kind == "activity" else s.lane

    order: list[str] = []
    firsts: dict[str, float] = {}
    for s in spans.spans:
        key = lane_of(s)
        if key not in firsts:
            firsts[key] = s.start
    acts = sorted((k for k in firsts if k not in (WAITS_LANE, EFFECTS_LANE, OTHER_LANE)), key=lambda k: (firsts[k], k))
    order = acts + [k for k in (OTHER_LANE, WAITS_LANE, EFFECTS_LANE) if k in firsts]
    index = {k: i for i, k in enumerate(order)}
    lanes: list[dict[str, Any]] = [{"key": k, "title": k, "kind": "activity" if k not in (WAITS_LANE, EFFECTS_LANE) else
              ("wait" if k == WAITS_LANE else "effect"), "count": 0, "total_ms": 0.0, "failed": 0, "pending": 0,
              "in_view": 0} for k in order]

    per_lane: dict[int, list[Span]] = {i: [] for i in range(len(order))}
    for s in spans.spans:
        i = index[lane_of(s)]
        lane = lanes[i]
        lane["count"] += 1
        lane["total_ms"] += s.end - s.start
        lane["failed"] += s.status == "failed"
        lane["pending"] += s.status in ("pending", "waiting")
        if s.end >= a and s.start <= b:
            per_lane[i].append(s)

    bars: list[dict[str, Any]] = []
    for i, items in per_lane.items():
        lanes[i]["in_view"] = len(items)
        items.sort(key=lambda s: (s.start, s.seqs[0]))
        cur: _Bar | None = None
        for s in items:
            # at least MIN_BAR_PX wide, never past the axis (a point at the end is drawn inside it)
            x0 = min((max(s.start, a) - a) * scale, width - MIN_BAR_PX)
            x1 = min(max((min(s.end, b) - a) * scale, x0 + MIN_BAR_PX), float(width))
            if cur is not None and x0 < cur.x1 + 1.0:   # closer than a pixel (or overlapping): merge
                cur.x1 = max(cur.x1, x1)
                cur.end = max(cur.end, s.end)
                cur.count += 1
                cur.statuses[s.status] += 1
                cur.names[s.label] += 1
                cur.total_ms += s.end - s.start
                cur.attempts = max(cur.attempts, s.attempts)
                if len(cur.seqs) < MAX_SEQS:
                    cur.seqs.extend(s.seqs[: MAX_SEQS - len(cur.seqs)])
                continue
            if cur is not None:
                bars.append(_bar_view(cur, i, order[i]))
            cur = _Bar(x0, x1, s.start, s.end, 1, Counter({s.status: 1}), Counter({s.label: 1}), s.end - s.start,
                       list(s.seqs[:MAX_SEQS]), s.attempts, s)
        if cur is not None:
            bars.append(_bar_view(cur, i, order[i]))

    for lane in lanes:
        lane["summary"] = (f"{lane['count']} · {fmt_ms(lane['total_ms'])}" if lane["kind"] != "effect"
                           else f"{lane['count']}")
    return {
        "t_end": spans.t_end,
        "window": [a, b],
        "width": width,
        "lanes": lanes,
        "bars": bars,
        "events": spans.events,
        "activities": spans.activities,
        "waits": spans.waits,
    }
