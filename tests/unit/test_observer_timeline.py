"""The observer's timeline and journal list as view-models: pairing a journal into spans, lanes
with totals, bars merged below a pixel, everything inside the axis, zoom windows, paging."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from continuum_nb.observer.journal_view import EventsPager, events_html, one_line
from continuum_nb.observer.lanes import (
    MAX_ACTIVITY_LANES,
    MAX_SEQS,
    PLOT_WIDTH,
    clamp_window,
    fmt_ms,
    timeline_view,
)
from continuum_nb.observer.timeline import EFFECTS_LANE, WAITS_LANE, journal_spans

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def _ev(seq: int, etype: str, secs: float, **payload: object) -> dict[str, object]:
    return {"seq": seq, "event_type": etype, "payload": payload, "inserted_at": T0 + timedelta(seconds=secs)}


def _loop_journal(items: int = 20, timer_s: float = 5.0) -> list[dict[str, Any]]:
    """A workflow looping over ``items`` items with two activities each (3 ms apart), then a timer:
    all activities fall in the first 0.2 s of a 5 s run."""
    events: list[dict[str, Any]] = []
    t = 0.0
    for _ in range(items):
        for name in ("fetch", "store"):
            s = len(events) + 1
            events.append(_ev(s, "activity_scheduled", t, activity=name))
            t += 0.003
            events.append(_ev(s + 1, "activity_completed", t, activity=name, scheduled_seq=s, attempts=1))
            t += 0.002
    s = len(events) + 1
    events.append(_ev(s, "timer_started", t, duration_s=timer_s))
    events.append(_ev(s + 1, "timer_fired", t + timer_s, started_seq=s))
    return events


def test_spans_pair_a_journal() -> None:
    events = [
        _ev(1, "activity_scheduled", 0, activity="charge"),
        _ev(2, "activity_completed", 2, activity="charge", scheduled_seq=1),
        _ev(3, "signal_awaited", 2, name="approve"),
        _ev(4, "signal_received", 10, name="approve", awaited_seq=3),
        _ev(5, "timer_started", 10),
        _ev(6, "timer_fired", 70, started_seq=5),
        _ev(7, "activity_scheduled", 70, activity="ship"),
        _ev(8, "activity_scheduled", 70, activity="notify"),
        _ev(9, "activity_failed", 75, activity="notify", scheduled_seq=8, attempts=5),
        _ev(10, "activity_completed", 80, activity="ship"),
        _ev(11, "side_effect", 80, kind="uuid4", value="x"),
    ]
    sp = journal_spans(events, started_at=T0, now=T0 + timedelta(seconds=500),
                       completed_at=T0 + timedelta(seconds=81), tasks=[{"seq": 1, "attempt": 3}])
    assert sp.t_end == 81000 and sp.events == 11
    got = [(s.kind, s.lane, s.label, s.start, s.end, s.status, s.seqs) for s in sp.spans]
    assert got == [
        ("activity", "charge", "charge", 0, 2000, "completed", [1, 2]),
        ("wait", WAITS_LANE, "signal 'approve'", 2000, 10000, "received", [3, 4]),
        ("wait", WAITS_LANE, "timer", 10000, 70000, "fired", [5, 6]),
        ("activity", "ship", "ship", 70000, 80000, "completed", [7, 10]),   # paired by name (no scheduled_seq)
        ("activity", "notify", "notify", 70000, 75000, "failed", [8, 9]),
        ("effect", EFFECTS_LANE, "notify failed", 75000, 75000, "failed", [9]),
        ("effect", EFFECTS_LANE, "uuid4", 80000, 80000, "effect", [11]),
    ]
    assert sp.spans[0].attempts == 3 and sp.spans[4].attempts == 5


def test_spans_timeout_pending_signal_open_waits_and_cancelled_runs() -> None:
    events = [
        _ev(1, "signal_received", 0, name="early"),            # was in the mailbox: no wait
        _ev(2, "signal_awaited", 1, name="approve", timeout_s=5),
        _ev(3, "timer_fired", 6, started_seq=2, signal="approve"),
        _ev(4, "activity_scheduled", 6, activity="a"),
        _ev(5, "signal_awaited", 7, name="go"),
    ]
    sp = journal_spans(events, started_at=T0, now=T0 + timedelta(seconds=30))
    assert [(s.kind, s.status) for s in sp.spans] == [
        ("effect", "effect"), ("wait", "timed out"), ("activity", "pending"), ("wait", "waiting")]
    assert sp.spans[2].end == 30000 and sp.open_signals == ["go"]
    ended = journal_spans(events, started_at=T0, now=T0 + timedelta(hours=1), completed_at=T0 + timedelta(seconds=20))
    assert [s.status for s in ended.spans][2:] == ["abandoned", "abandoned"] and ended.open_signals == []
    assert ended.t_end == 20000


def test_slim_rows_read_like_full_events() -> None:
    """ObserverQueries.timeline_events gives the payload keys as columns, without payloads."""
    slim = [{"seq": 1, "event_type": "activity_scheduled", "t_ms": 0.0, "name": "a", "ref": None, "attempts": None},
            {"seq": 2, "event_type": "activity_completed", "t_ms": 1000.0, "name": "a", "ref": 1, "attempts": 2},
            {"seq": 3, "event_type": "signal_awaited", "t_ms": 1000.0, "name": "go", "ref": None, "attempts": None}]
    sp = journal_spans(slim, started_at=T0, now=T0 + timedelta(seconds=2))
    span, wait = sp.spans
    assert (span.lane, span.end, span.status, span.attempts) == ("a", 1000, "completed", 2)
    assert (wait.label, wait.end, sp.open_signals) == ("signal 'go'", 2000, ["go"])


def test_lanes_one_per_activity_name_then_waits_then_effects_with_totals() -> None:
    sp = journal_spans(_loop_journal(), started_at=T0, now=T0 + timedelta(seconds=6),
                       completed_at=T0 + timedelta(seconds=5.2))
    view = timeline_view(sp)
    assert [(lane["title"], lane["count"]) for lane in view["lanes"]] == [("fetch", 20), ("store", 20), (WAITS_LANE, 1)]
    assert view["lanes"][0]["total_ms"] == pytest.approx(60.0)
    assert view["lanes"][0]["summary"] == "20 · 60 ms"


def test_bars_closer_than_a_pixel_merge_with_a_count_and_stay_inside_the_axis() -> None:
    sp = journal_spans(_loop_journal(), started_at=T0, now=T0 + timedelta(seconds=6),
                       completed_at=T0 + timedelta(seconds=5.2))
    view = timeline_view(sp)
    fetch = [b for b in view["bars"] if b["lane"] == 0]
    # 20 fetches within 0.2 s of a 5.2 s run: a few pixels, so one merged bar says how many
    assert sum(b["count"] for b in fetch) == 20 and len(fetch) < 20
    merged = max(fetch, key=lambda b: b["count"])
    assert merged["label"].startswith(f"{merged['count']} × fetch") and "completed" in merged["tip"]
    for lane in range(len(view["lanes"])):
        row = sorted((b for b in view["bars"] if b["lane"] == lane), key=lambda b: b["x0"])
        for left, right in zip(row, row[1:], strict=False):
            assert right["x0"] >= left["x1"] + 1.0, (left, right)   # never overlapping
    assert all(0 <= b["x0"] < b["x1"] <= PLOT_WIDTH for b in view["bars"])
    (timer,) = [b for b in view["bars"] if b["kind"] == "wait"]
    assert timer["wait"] == "timer" and timer["x1"] <= PLOT_WIDTH and timer["label"] == "timer · fired · 5.0 s"


def test_zooming_in_separates_bars_and_clips_to_the_window() -> None:
    sp = journal_spans(_loop_journal(), started_at=T0, now=T0 + timedelta(seconds=6),
                       completed_at=T0 + timedelta(seconds=5.2))
    view = timeline_view(sp, window=[0, 25])      # the first 25 ms: 3 items
    assert view["window"] == [0, 25]
    fetch = [b for b in view["bars"] if b["lane"] == 0]
    assert [b["count"] for b in fetch] == [1, 1, 1] and fetch[0]["label"] == "fetch · completed · 3 ms"
    assert all(0 <= b["x0"] < b["x1"] <= PLOT_WIDTH for b in view["bars"])
    assert view["lanes"][0]["in_view"] == 3 and view["lanes"][0]["count"] == 20   # totals stay whole-run
    # a bar that crosses the window's edge is cut at the axis
    (timer,) = timeline_view(sp, window=[150, 1000])["bars"][-1:]
    assert timer["kind"] == "wait" and timer["x1"] == PLOT_WIDTH


def test_bars_stay_within_the_width_at_100000_events() -> None:
    events: list[dict[str, Any]] = []
    for i in range(50_000):
        events.append(_ev(2 * i + 1, "activity_scheduled", i * 0.01, activity=f"step{i % 3}"))
        events.append(_ev(2 * i + 2, "activity_completed", i * 0.01 + 0.004, activity=f"step{i % 3}",
                          scheduled_seq=2 * i + 1))
    sp = journal_spans(events, started_at=T0, now=T0 + timedelta(seconds=600))
    view = timeline_view(sp)
    assert len(view["lanes"]) == 3 and sum(b["count"] for b in view["bars"]) == 50_000
    assert len(view["bars"]) <= 3 * PLOT_WIDTH
    assert all(len(b["seqs"]) <= MAX_SEQS for b in view["bars"])


def test_many_activity_names_share_an_other_lane() -> None:
    events = [_ev(i + 1, "activity_scheduled", i, activity=f"a{i}") for i in range(MAX_ACTIVITY_LANES + 5)]
    view = timeline_view(journal_spans(events, started_at=T0, now=T0 + timedelta(seconds=100)))
    titles = [lane["title"] for lane in view["lanes"]]
    assert len(titles) == MAX_ACTIVITY_LANES and titles[-1] == "other activities"
    assert view["lanes"][-1]["count"] == 6


def test_windows_are_clamped() -> None:
    assert clamp_window(None, 5000) == (0.0, 5000)
    assert clamp_window([], 5000) == (0.0, 5000)
    assert clamp_window([-100, 99999], 5000) == (0.0, 5000)
    assert clamp_window([3000, 1000], 5000) == (0.0, 5000)
    assert clamp_window([10, 10.2], 5000) == (pytest.approx(9.6), pytest.approx(10.6))
    assert clamp_window(["x", 2], 5000) == (0.0, 5000)
    assert fmt_ms(3) == "3 ms" and fmt_ms(5000) == "5.0 s" and fmt_ms(0.4) == "0.4 ms"


def test_empty_journal_has_no_lanes() -> None:
    view = timeline_view(journal_spans([], started_at=T0, now=T0 + timedelta(seconds=3)))
    assert view["lanes"] == [] and view["bars"] == [] and view["t_end"] == 3000


# --- the journal list ------------------------------------------------------------------------------


def test_events_pager_pages_of_50_filters_by_type_and_selection() -> None:
    pager = EventsPager(counts={"activity_scheduled": 60, "activity_completed": 60})
    assert pager.total == 120 and pager.pages == 3 and pager.query() == {
        "event_type": None, "seqs": None, "offset": 0, "limit": 50}
    assert pager.move(1) and pager.query()["offset"] == 50 and pager.caption(50) == "events 51–100 of 120 · page 2 of 3"
    assert pager.move(5) and pager.page == 2 and not pager.move(1)
    pager.set_type("activity_completed")
    assert pager.page == 0 and pager.pages == 2 and pager.query()["event_type"] == "activity_completed"
    with pytest.raises(ValueError, match="no 'nope' events"):
        pager.set_type("nope")
    pager.select([5, 3, 5])
    assert pager.query()["seqs"] == [3, 5] and pager.total == 2
    assert pager.options()[0] == ("all types (120)", "")


def test_event_rows_are_one_line_until_opened_and_escaped() -> None:
    big = {"text": "<script>" + "x" * 5000}
    page = events_html([{"seq": 7, "event_type": "side_effect", "payload": big,
                         "inserted_at": T0 + timedelta(seconds=2)}], started_at=T0)
    assert page.startswith('<details class="cn-ev-row" data-seq="7">') and "<script>" not in page
    summary = page[page.index("<summary>"):page.index("</summary>")]
    assert "+2.0 s" in summary and "…" in summary and len(summary) < 800
    assert "more characters" in page
    assert one_line({"a": [1, 2]}) == '{"a": [1, 2]}'


def test_children_get_a_lane_each_workflow_and_their_failures_an_effect_point() -> None:
    evs = [_ev(1, "child_started", 0, workflow="ship"), _ev(2, "child_started", 0, workflow="pack"),
           _ev(3, "child_completed", 2, workflow="ship", started_seq=1),
           _ev(4, "child_cancelled", 3, workflow="pack", started_seq=2, reason="cancelled")]
    spans = journal_spans(evs, started_at=T0, now=T0 + timedelta(seconds=5)).spans
    kids = {s.lane: (s.start, s.end, s.status, s.seqs) for s in spans if s.kind == "activity"}
    assert kids == {"child ship": (0.0, 2000.0, "completed", [1, 3]), "child pack": (0.0, 3000.0, "failed", [2, 4])}
    assert [(s.lane, s.label) for s in spans if s.kind == "effect"] == [(EFFECTS_LANE, "child pack cancelled")]
    slim = [{"seq": 1, "event_type": "child_started", "t_ms": 0.0, "name": "ship", "ref": None},
            {"seq": 2, "event_type": "child_failed", "t_ms": 10.0, "name": "ship", "ref": 1}]
    (bar, point) = journal_spans(slim, started_at=T0, now=T0).spans
    assert (bar.label, bar.status, bar.end, point.label) == ("child ship", "failed", 10.0, "child ship failed")
