"""The observer's queries against real PostgreSQL, on synthetic rows inserted with SQL."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

from continuum_nb.api import events
from continuum_nb.errors import ConfigurationError, DatabaseUnavailable
from continuum_nb.observer.viewmodel import RunsPager
from continuum_nb.store.observer_sql import ObserverQueries, id_range

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def _insert_runs(url: str, n: int, *, same_time_every: int = 1) -> list[dict[str, Any]]:
    """n runs; ``same_time_every`` > 1 gives groups of runs the same started_at (keyset ties)."""
    rows = []
    for i in range(n):
        rows.append({
            "id": uuid.uuid4(),
            "workflow": ("order", "ship", "bill")[i % 3],
            "state": ("completed", "suspended", "running", "failed")[i % 4],
            "started_at": T0 + timedelta(seconds=i // same_time_every),
        })
    with psycopg.connect(url) as conn:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO continuum_runs (id, workflow, version_hash, state, input, started_at) "
                "VALUES (%s, %s, 'v1', %s, '{}', %s)",
                [(r["id"], r["workflow"], r["state"], r["started_at"]) for r in rows],
            )
    return rows


def _expected(rows: list[dict[str, Any]], **flt: Any) -> list[uuid.UUID]:
    sel = [r for r in rows if all(r[k] == v for k, v in flt.items())]
    sel.sort(key=lambda r: (-r["started_at"].timestamp(), r["id"]))
    return [r["id"] for r in sel]


def _walk(q: ObserverQueries, pager: RunsPager) -> list[uuid.UUID]:
    seen: list[uuid.UUID] = []
    pager.accept(q.list_runs(**pager.query()))
    seen.extend(r.id for r in pager.rows)
    while pager.next_page():
        pager.accept(q.list_runs(**pager.query()))
        seen.extend(r.id for r in pager.rows)
    return seen


def test_keyset_paging_visits_every_run_once_in_order_even_with_equal_timestamps(db_url: str) -> None:
    rows = _insert_runs(db_url, 53, same_time_every=4)
    q = ObserverQueries(db_url)
    try:
        pager = RunsPager(page_size=10)
        assert _walk(q, pager) == _expected(rows)
        assert pager.page == 5 and not pager.has_next
        # back one page shows the previous ten again
        assert pager.prev_page()
        pager.accept(q.list_runs(**pager.query()))
        assert [r.id for r in pager.rows] == _expected(rows)[40:50]
    finally:
        q.close()


@pytest.mark.parametrize("flt", [{"state": "suspended"}, {"workflow": "ship"}, {"state": "failed", "workflow": "order"}])
def test_filters_page_through_exactly_the_matching_runs(db_url: str, flt: dict[str, str]) -> None:
    rows = _insert_runs(db_url, 60, same_time_every=3)
    q = ObserverQueries(db_url)
    try:
        pager = RunsPager(page_size=4)
        pager.set_filters(**flt)
        got = _walk(q, pager)
        assert got == _expected(rows, **flt)
        assert got  # the synthetic data has matches for every filter used here
    finally:
        q.close()


def test_the_attributes_filter_pages_through_the_matching_runs(db_url: str) -> None:
    rows = _insert_runs(db_url, 30, same_time_every=2)
    acme = [r["id"] for r in rows[::3]]
    with psycopg.connect(db_url) as conn:
        conn.execute("UPDATE continuum_runs SET attributes = '{\"customer\": \"acme\", \"tier\": 2}' "
                     "WHERE id = ANY(%s)", (acme,))
        conn.execute("UPDATE continuum_runs SET attributes = '{\"customer\": \"other\"}' "
                     "WHERE NOT id = ANY(%s)", (acme,))
    q = ObserverQueries(db_url)
    try:
        pager = RunsPager(page_size=4)
        pager.set_filters(attributes="customer=acme, tier=2")
        assert _walk(q, pager) == [i for i in _expected(rows) if i in set(acme)]
        pager.set_filters(attributes="customer=nobody")
        assert _walk(q, pager) == []
    finally:
        q.close()


def test_search_by_full_id_and_by_prefix(db_url: str) -> None:
    rows = _insert_runs(db_url, 30)
    q = ObserverQueries(db_url)
    try:
        target = rows[7]["id"]
        assert [r.id for r in q.list_runs(search=str(target))] == [target]
        assert [r.id for r in q.list_runs(search=str(target).upper())] == [target]
        prefix = str(target)[:6]
        want = sorted(_expected([r for r in rows if str(r["id"]).startswith(prefix)]))
        assert sorted(r.id for r in q.list_runs(search=prefix, limit=100)) == want
        with pytest.raises(ConfigurationError, match="not a run id"):
            q.list_runs(search="order-42")
    finally:
        q.close()


def test_id_range_bounds() -> None:
    lo, hi = id_range("3FA8-5f")  # type: ignore[misc]
    assert str(lo) == "3fa85f00-0000-0000-0000-000000000000"
    assert str(hi) == "3fa85fff-ffff-ffff-ffff-ffffffffffff"
    assert id_range("xyz") is None


def test_workflow_names_include_runs_and_stored_versions(db_url: str) -> None:
    _insert_runs(db_url, 9)
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO continuum_workflow_versions (name, version_hash, source) VALUES ('audit', 'h', 'src')"
        )
    q = ObserverQueries(db_url)
    try:
        assert q.workflow_names() == ["audit", "bill", "order", "ship"]
    finally:
        q.close()


def test_run_detail_returns_journal_mailbox_tasks_timers_and_decodes_nothing_it_should_not(db_url: str) -> None:
    run_id = uuid.uuid4()
    other = uuid.uuid4()
    started = datetime.now(timezone.utc) - timedelta(minutes=5)
    traceparent = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO continuum_runs (id, workflow, version_hash, state, input, started_at, lease_owner, "
            "lease_token, trace_context) VALUES (%s, 'order', 'abc123', 'suspended', %s, %s, 'node-1', 42, %s)",
            (run_id, json.dumps({"order_id": "A1"}), started, traceparent),
        )
        for seq, kind, payload in [
            (1, "activity_scheduled", {"activity": "charge"}),
            (2, "activity_completed", {"activity": "charge", "result": {"ok": True}}),
            (3, "signal_awaited", {"name": "approve"}),
        ]:
            conn.execute(
                "INSERT INTO continuum_events (run_id, seq, event_type, payload) VALUES (%s, %s, %s, %s)",
                (run_id, seq, kind, json.dumps(payload)),
            )
        conn.execute(
            "INSERT INTO continuum_events (run_id, seq, event_type, payload) VALUES (%s, 1, 'side_effect', '{}')",
            (other,),
        )
        conn.execute(
            "INSERT INTO continuum_signals (run_id, name, payload) VALUES (%s, 'approve', '{\"by\": \"ana\"}')",
            (run_id,),
        )
        conn.execute(
            "INSERT INTO continuum_signals (run_id, name, payload, delivered) VALUES (%s, 'old', 'null', true)",
            (run_id,),
        )
        conn.execute(
            "INSERT INTO continuum_activity_tasks (id, run_id, seq, mfa, attempt, state, activity) "
            "VALUES (%s, %s, 1, '{}', 3, 'completed', 'charge')",
            (uuid.uuid4(), run_id),
        )
        conn.execute(
            "INSERT INTO continuum_timers (id, run_id, fires_at, seq) VALUES (%s, %s, now() + interval '1 hour', 4)",
            (uuid.uuid4(), run_id),
        )
    q = ObserverQueries(db_url)
    try:
        d = q.run_detail(run_id)
        assert d is not None
        assert d.run["state"] == "suspended" and d.run["lease_token"] == 42
        assert d.run["input"] == {"order_id": "A1"}
        assert d.run["trace_context"] == traceparent
        assert [e["seq"] for e in d.events] == [1, 2, 3]
        assert d.events[1]["payload"]["result"] == {"ok": True}
        assert not d.events_truncated
        assert [(s["name"], s["payload"]) for s in d.signals] == [("approve", {"by": "ana"})]
        assert [(t["activity"], t["attempt"]) for t in d.tasks] == [("charge", 3)]
        assert [t["seq"] for t in d.timers] == [4]
        limited = q.run_detail(run_id, max_events=2)
        assert limited is not None and limited.events_truncated and len(limited.events) == 2
        assert q.run_detail(uuid.uuid4()) is None
        assert q.states_of([run_id, other]) == {run_id: "suspended"}
    finally:
        q.close()


def test_paging_query_uses_an_index_over_many_runs(db_url: str) -> None:
    """The plan of a (filtered) page behind a cursor reads an index, never sorts the table."""
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO continuum_runs (id, workflow, version_hash, state, input, started_at) "
            "SELECT gen_random_uuid(), 'wf' || (i % 5), 'v', "
            "(ARRAY['completed','suspended','running','failed'])[1 + i % 4], '{}', "
            "timestamptz '2026-01-01' + make_interval(secs => i) FROM generate_series(1, 50000) i"
        )
        conn.execute("ANALYZE continuum_runs")
    q = ObserverQueries(db_url)
    try:
        after = (T0, uuid.UUID(int=0))
        for flt in ({}, {"state": "suspended"}, {"workflow": "wf3"}):
            plan = q.explain_list_runs(after=after, limit=26, **flt)
            assert "Index" in plan and "Sort" not in plan and "Seq Scan" not in plan, plan
        # an id prefix is a primary-key range; sorting its few matches is fine
        plan = q.explain_list_runs(after=after, limit=26, search="3fa8")
        assert "continuum_runs_pkey" in plan and "Seq Scan" not in plan, plan
    finally:
        q.close()


def test_unreachable_database_is_a_clear_error() -> None:
    q = ObserverQueries("postgresql://postgres@127.0.0.1:1/none", connect_timeout=2)
    with pytest.raises(DatabaseUnavailable, match="cannot reach PostgreSQL"):
        q.list_runs()


# --- the widget app over the same queries (no browser: widgets are plain Python objects) ---------


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def signal(self, run_id: str, name: str, payload: Any) -> None:
        self.calls.append(("signal", run_id, name, payload))

    def cancel(self, run_id: str) -> None:
        self.calls.append(("cancel", run_id))

    def resume(self, run_id: str) -> None:
        self.calls.append(("resume", run_id))

    def upgrade(self, run_id: str) -> bool:
        self.calls.append(("upgrade", run_id))
        return True


def _app(db_url: str, **kw: Any) -> Any:
    pytest.importorskip("ipywidgets")
    from continuum_nb.observer.app import ObserverApp

    kw.setdefault("actions", _Recorder())
    return ObserverApp(ObserverQueries(db_url), conninfo=db_url, live=False, page_size=5, **kw)


def test_app_lists_filters_selects_and_validates_signal_json(db_url: str) -> None:
    rows = _insert_runs(db_url, 12)
    app = _app(db_url)
    try:
        assert [r["id"] for r in app.table.rows] == [str(i) for i in _expected(rows)[:5]]
        assert not app.older.disabled and app.newer.disabled
        app.state_filter.value = "suspended"
        assert {r["state"] for r in app.table.rows} == {"suspended"}
        target = app.table.rows[0]["id"]
        app.table.selected_id = target
        assert app.timeline.run_id == target and "suspended" in app.header.value
        assert not app.action_buttons["cancel"].disabled and app.action_buttons["resume"].disabled
        app.signal_name.value = "approve"
        app.signal_payload.value = '{"approved": tru}'
        assert app.act("signal") is False
        assert "not valid JSON" in app.action_message.value and app._actions.calls == []
        app.signal_payload.value = '{"approved": true}'
        assert app.act("signal") is True
        assert app.act("cancel") is True
        assert app._actions.calls == [("signal", target, "approve", {"approved": True}), ("cancel", target)]
        snapshot = app.static_html()   # the static fallback: the visible page + the selected run
        assert snapshot.count('<td class="cn-obs-state cn-obs-state-suspended">suspended</td>') == len(app.table.rows) + 1
        assert target in snapshot
    finally:
        app.close()


def test_app_read_only_has_no_actions(db_url: str) -> None:
    rows = _insert_runs(db_url, 3)
    app = _app(db_url, read_only=True)
    try:
        app.table.selected_id = str(rows[1]["id"])
        assert all(b.disabled for b in app.action_buttons.values())
        assert not any(b in app.detail_box.children for b in app.action_buttons.values())
        assert app.act("cancel") is False and app._actions.calls == []
    finally:
        app.close()


def test_missing_schema_names_the_fix(empty_db_url: str) -> None:
    from continuum_nb.errors import MigrationError

    q = ObserverQueries(empty_db_url)
    try:
        with pytest.raises(MigrationError, match="continuum migrate"):
            q.list_runs()
    finally:
        q.close()


def test_app_warns_when_next_months_partition_is_missing(db_url: str) -> None:
    from continuum_nb.partitions import next_month, partition_name

    app = _app(db_url)
    try:
        assert app.partitions.missing is False and app.tabs.get_title(2) == "Partitions"
    finally:
        app.close()
    with psycopg.connect(db_url) as conn:
        conn.execute(f"DROP TABLE {partition_name(next_month())}")  # a validated, generated name
    app = _app(db_url)
    try:
        assert app.partitions.missing is True and app.tabs.get_title(2) == "Partitions ⚠"
        assert f"continuum partitions create {next_month():%Y-%m}" in app.partitions.warning.value
    finally:
        app.close()


def test_app_pauses_live_refresh_when_its_last_view_is_gone(db_url: str) -> None:
    app = _app(db_url)
    try:
        assert not app.bridge.paused
        app._view_count = 1          # the front end displayed it
        assert not app.bridge.paused
        app._view_count = 0          # its cell was re-run or cleared
        assert app.bridge.paused
        app._view_count = 1          # displayed again
        assert not app.bridge.paused
    finally:
        app.close()


def test_analytics_tab_without_the_extra_says_how_to_install_it(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    import continuum_nb

    app = _app(db_url)
    try:
        monkeypatch.setitem(sys.modules, "continuum_nb.analytics", None)   # import now raises ImportError
        monkeypatch.delitem(vars(continuum_nb), "analytics", raising=False)
        app.analytics.load()
        assert "pip install 'continuum-nb[analytics]'" in app.analytics.output.value
        assert app.table.rows == []   # the rest of the observer is unaffected
    finally:
        app.close()


# --- with the real engine: build_observer on an Instance, trace id, actions through the API ---------


def test_observer_on_a_real_instance_shows_trace_id_and_cancels_through_the_api(db_url: str) -> None:
    pytest.importorskip("ipywidgets")
    import continuum_nb as cn
    from continuum_nb.observer.app import build_observer
    from continuum_nb.otel import encode_trace_context

    inst = cn.Instance(name="observer-it", database_url=db_url, lease_ttl=5.0, poll_interval=0.1)
    try:
        @cn.activity(name="observer_it_step")
        def step(n: int) -> int:
            return n + 1

        @cn.workflow(name="observer_it_flow", instance=inst)
        async def flow(n: int) -> dict:
            first = await step(n)
            decision = await cn.signal("go")
            return {"first": first, "decision": decision}

        tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        run = cn.start(flow, {"n": 1}, instance=inst,
                       trace_context=encode_trace_context({"traceparent": tp, "tracestate": "k=v"}))
        deadline = time.monotonic() + 60
        while not any(e.event_type == "signal_awaited" for e in events(run.id, instance=inst)):
            assert time.monotonic() < deadline, "the run never reached its signal wait"
            time.sleep(0.05)

        app = build_observer(instance=inst, live=False)
        try:
            assert [r["id"] for r in app.table.rows] == [run.id]
            app.table.selected_id = run.id
            assert "4bf92f3577b34da6a3ce929d0e0e4736" in app.header.value
            assert [b["status"] for b in app.timeline.view["bars"] if b["kind"] == "activity"] == ["completed"]
            assert [(b["wait"], b["status"]) for b in app.timeline.view["bars"] if b["kind"] == "wait"] == [("signal", "waiting")]
            assert app.signal_name.value == "go"
            assert app.act("cancel") is True
            assert app.table.rows[0]["state"] == "cancelled"
            assert run.info().state == "cancelled"
            assert app.action_buttons["cancel"].disabled
        finally:
            app.close()
    finally:
        inst.close()


def test_new_workflow_names_join_the_filter_without_losing_the_page(db_url: str) -> None:
    _insert_runs(db_url, 12)
    app = _app(db_url)
    try:
        app.older.click()
        assert app.pager.page == 1
        with psycopg.connect(db_url) as conn:
            conn.execute(
                "INSERT INTO continuum_workflow_versions (name, version_hash, source) VALUES ('audit', 'h', 'src')"
            )
        app._on_live_change(set(), True)   # the periodic poll
        assert ("audit", "audit") in list(app.workflow_filter.options)
        assert app.pager.page == 1
    finally:
        app.close()
