"""The observer's run detail against real PostgreSQL: the slim timeline query, the paged and
filtered journal, and the app wiring (collapsed events, a timeline click selects events, zoom
recomputes the view, a new selection clears what was typed)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from continuum_nb.store.observer_sql import ObserverQueries
from tests.integration.test_observer_queries import _app
from tests.observer_data import insert_run, journal

pytestmark = pytest.mark.postgres


def test_timeline_events_counts_and_pages(db_url: str) -> None:
    run_id = insert_run(db_url, 1200)
    q = ObserverQueries(db_url)
    try:
        run = q.run_detail(run_id, max_events=0)
        assert run is not None and run.events == []
        started = run.run["started_at"]
        slim = q.timeline_events(run_id, started)
        assert len(slim) == 1199 and "payload" not in slim[0]
        completed = [r for r in slim if r["event_type"] == "activity_completed"]
        assert (completed[0]["ref"], completed[0]["name"], completed[0]["attempts"]) == (1, "fetch", 1)
        assert slim[0]["t_ms"] == 0.0 and slim[-1]["name"] == "approve" and slim[-1]["ref"] is None
        counts = q.event_counts(run_id, started)
        assert sum(counts.values()) == 1199 and counts["signal_awaited"] == 1 and counts["timer_started"] == 1
        first = q.events_page(run_id, started, limit=50)
        assert [e["seq"] for e in first] == list(range(1, 51)) and first[1]["payload"]["result"]["item"] == 0
        page3 = q.events_page(run_id, started, offset=100, limit=50)
        assert [e["seq"] for e in page3] == list(range(101, 151))
        failed = q.events_page(run_id, started, event_type="activity_failed", limit=1000)
        assert len(failed) == counts["activity_failed"] and {e["event_type"] for e in failed} == {"activity_failed"}
        picked = q.events_page(run_id, started, seqs=[7, 3, 999_999])
        assert [e["seq"] for e in picked] == [3, 7]
    finally:
        q.close()


def test_app_detail_is_in_proportion_and_a_timeline_click_selects_events(db_url: str) -> None:
    big = insert_run(db_url, 1000)
    small = insert_run(db_url, 20, workflow="small")
    app: Any = _app(db_url)
    try:
        app.table.selected_id = str(big)
        assert app.details.selected_index is None            # the journal is collapsed
        assert app.details.get_title(0) == "events (999)"
        assert app.events.rows.value.count("<details") == 50   # one page
        assert "events 1–50 of 999" in app.events.caption.value
        view = app.timeline.view
        assert [lane["title"] for lane in view["lanes"]] == ["fetch", "parse", "store", "waits", "side effects · failures"]
        assert len(view["bars"]) < 300 and sum(b["count"] for b in view["bars"][:1]) > 1   # merged at full size
        assert app.signal_name.value == "approve"             # what the run waits for

        # the next page, a type filter
        app.events.next_button.click()
        assert 'data-seq="51"' in app.events.rows.value
        app.events.type_filter.value = "activity_failed"
        assert app.events.rows.value.count("<details") == app.events.pager.counts["activity_failed"]

        # zoom into the first 50 ms: recomputed server-side, bars separate
        app.timeline.window = [0.0, 50.0]
        zoomed = app.timeline.view
        assert zoomed["window"] == [0.0, 50.0] and all(b["count"] == 1 for b in zoomed["bars"])
        # a click on a bar selects its events and opens the list
        bar = zoomed["bars"][0]
        app.timeline.selected = {"seqs": bar["seqs"], "label": bar["label"], "count": bar["count"]}
        assert app.details.selected_index == 0
        assert [int(s) for s in bar["seqs"]] == [1, 2]
        assert app.events.rows.value.count("<details") == 2 and "selected" in app.events.caption.value

        # what was typed for one run is gone when another is selected
        app.signal_payload.value = '{"approved": true}'
        app.table.selected_id = str(small)
        assert app.signal_payload.value == "" and app.signal_name.value == "approve"
        assert app.timeline.window == [] and app.events.pager.event_type is None
        assert app.details.get_title(0) == "events (19)"
    finally:
        app.close()


def test_the_synthetic_journal_is_well_formed() -> None:
    from datetime import datetime, timezone

    rows = journal(500, datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
    assert all(a[3] <= b[3] for a, b in zip(rows, rows[1:], strict=False))
    assert uuid.UUID(int=0)  # ids in side effects are valid UUIDs


def test_partitions_tab_shows_human_sizes(db_url: str) -> None:
    app: Any = _app(db_url)
    try:
        app.partitions.load()
        page = app.partitions.output.value
        assert "<th>size</th>" in page and ("kB" in page or "bytes" in page)
        assert "size_bytes" not in page
    finally:
        app.close()


def test_a_finished_run_is_not_reread_on_every_refresh(db_url: str) -> None:
    import psycopg

    run_id = insert_run(db_url, 200)
    with psycopg.connect(db_url) as conn:
        conn.execute("UPDATE continuum_runs SET state = 'completed', completed_at = now() WHERE id = %s", (run_id,))
    app: Any = _app(db_url)
    reads: list[uuid.UUID] = []
    real = app.queries.timeline_events
    app.queries.timeline_events = lambda rid, started, **kw: reads.append(rid) or real(rid, started, **kw)
    try:
        app.table.selected_id = str(run_id)
        app.refresh()
        app.refresh()
        assert reads == [run_id] and "completed" in app.header.value
        with psycopg.connect(db_url) as conn:   # it changes (e.g. resumed elsewhere): read again
            conn.execute("UPDATE continuum_runs SET state = 'running', completed_at = NULL WHERE id = %s", (run_id,))
        app.refresh()
        app.refresh()
        assert reads == [run_id] * 3
    finally:
        app.close()
