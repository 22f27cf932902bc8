"""The COPY fallback kept up to date incrementally: after new runs, new events of old runs, updated
rows, deleted runs and a dropped partition, a refreshed connection answers exactly as a full load
(and as the scanner), having loaded only the rows that changed."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import duckdb
import pandas as pd
import psycopg
import pytest

from continuum_nb import analytics
from continuum_nb.analytics import connection as connection_module
from continuum_nb.errors import ConfigurationError

UTC = timezone.utc
KEYS = {"runs": "id", "events": "run_id, seq", "activity_tasks": "id", "signals": "id",
        "children": "run_id", "chains": "run_id"}
QUERIES: tuple[Callable[..., pd.DataFrame], ...] = (
    analytics.events_by_type_and_month, analytics.run_durations, analytics.activity_latency,
    analytics.signal_wait_times, analytics.throughput_per_minute,
)


def _run(conn: psycopg.Connection[Any], n_events: int, *, state: str = "completed",
         at: datetime | None = None) -> uuid.UUID:
    """A run with n_events journal events (activity pairs), its task rows, written as the engine
    writes them: last_seq is the last seq."""
    run_id = uuid.uuid4()
    start = at or datetime.now(UTC) - timedelta(minutes=30)
    conn.execute(
        "INSERT INTO continuum_runs (id, workflow, version_hash, state, input, started_at, completed_at, last_seq) "
        "VALUES (%s, 'shop', 'v1', %s, '{}', %s, %s, 0)",
        (run_id, state, start, start + timedelta(seconds=42) if state == "completed" else None))
    _append(conn, run_id, 0, n_events, start)
    return run_id


def _append(conn: psycopg.Connection[Any], run_id: uuid.UUID, after: int, n: int, start: datetime) -> None:
    for seq in range(after + 1, after + n + 1):
        at = start + timedelta(seconds=seq)
        if seq % 2:
            conn.execute(
                "INSERT INTO continuum_events (run_id, seq, event_type, payload, inserted_at) VALUES (%s, %s, "
                "'activity_scheduled', %s, %s)", (run_id, seq, json.dumps({"activity": f"a{seq % 3}"}), at))
            conn.execute(
                "INSERT INTO continuum_activity_tasks (id, run_id, seq, activity, mfa, attempt, state, scheduled_at) "
                "VALUES (gen_random_uuid(), %s, %s, %s, '{\"args\": [], \"kwargs\": {}}', 1, 'available', %s)",
                (run_id, seq, f"a{seq % 3}", at))
        else:
            conn.execute(
                "INSERT INTO continuum_events (run_id, seq, event_type, payload, inserted_at) VALUES (%s, %s, "
                "'activity_completed', %s, %s)",
                (run_id, seq, json.dumps({"scheduled_seq": seq - 1, "attempts": 1 + seq % 2}), at))
            conn.execute("UPDATE continuum_activity_tasks SET state = 'completed', completed_at = %s "
                         "WHERE run_id = %s AND seq = %s", (at, run_id, seq - 1))
    conn.execute("UPDATE continuum_runs SET last_seq = %s WHERE id = %s", (after + n, run_id))


def _same(a: duckdb.DuckDBPyConnection, b: duckdb.DuckDBPyConnection) -> None:
    for view, key in KEYS.items():
        text = f"SELECT * FROM {view} ORDER BY {key}"  # noqa: S608 - constant names
        pd.testing.assert_frame_equal(a.execute(text).to_arrow_table().to_pandas(),
                                      b.execute(text).to_arrow_table().to_pandas())
    for query in QUERIES:
        pd.testing.assert_frame_equal(query(a), query(b))


def _full(url: str) -> duckdb.DuckDBPyConnection:
    return analytics.connect(database_url=url, mode="copy")


def test_refresh_loads_only_what_changed_and_equals_a_full_load(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        old = [_run(conn, 6) for _ in range(5)]
        conn.execute("INSERT INTO continuum_signals (run_id, name, payload) VALUES (%s, 'approve', '{}')", (old[0],))
    con = _full(db_url)
    assert analytics.refresh(con) == {"runs": 0, "activity_tasks": 0, "signals": 0, "events": 0}
    started = datetime.now(UTC) - timedelta(minutes=10)
    with psycopg.connect(db_url, autocommit=True) as conn:
        _run(conn, 4)                                                    # a new run: 4 events
        _append(conn, old[1], 6, 3, started)                            # an old run goes on: 3 events
        conn.execute("UPDATE continuum_runs SET state = 'failed' WHERE id = %s", (old[2],))  # no event
        conn.execute("UPDATE continuum_signals SET delivered = true, delivered_seq = 6 WHERE run_id = %s", (old[0],))
    loaded = analytics.refresh(con)
    # the new run, the old run that went on and the failed one; 2 + 2 new tasks; 4 + 3 events
    assert loaded == {"runs": 3, "activity_tasks": 4, "signals": 1, "events": 7}
    _same(con, _full(db_url))
    _same(con, analytics.connect(database_url=db_url, mode="scanner"))
    assert con.execute("SELECT max(seq) FROM events WHERE run_id = ?", [str(old[1])]).fetchone() == (9,)
    assert analytics.refresh(con) == {"runs": 0, "activity_tasks": 0, "signals": 0, "events": 0}


def test_refresh_forgets_deleted_runs_and_dropped_partitions(db_url: str) -> None:
    old_month = datetime(2025, 2, 10, tzinfo=UTC)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE continuum_events_y2025_m02 PARTITION OF continuum_events "
                     "FOR VALUES FROM ('2025-02-01 00:00:00+00') TO ('2025-03-01 00:00:00+00')")
        runs = [_run(conn, 4) for _ in range(3)]
        archived = _run(conn, 4, at=old_month)
    con = _full(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DELETE FROM continuum_activity_tasks WHERE run_id = %s", (runs[0],))   # retention
        conn.execute("DELETE FROM continuum_events WHERE run_id = %s", (runs[0],))
        conn.execute("DELETE FROM continuum_runs WHERE id = %s", (runs[0],))
        conn.execute("DROP TABLE continuum_events_y2025_m02")   # continuum partitions drop
    analytics.refresh(con)
    _same(con, _full(db_url))
    assert con.execute("SELECT count(*) FROM events WHERE run_id IN (?, ?)",
                       [str(runs[0]), str(archived)]).fetchone() == (0,)


def test_sql_in_copy_mode_loads_once_then_only_new_rows(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTINUUM_ANALYTICS_MODE", "copy")
    loads: list[str] = []
    real = connection_module.load_copy

    def counting(*args: Any, **kwargs: Any) -> None:
        loads.append("load")
        real(*args, **kwargs)

    monkeypatch.setattr(connection_module, "load_copy", counting)
    try:
        with psycopg.connect(db_url, autocommit=True) as conn:
            run = _run(conn, 2)
        assert analytics.sql("SELECT count(*) AS n FROM events", database_url=db_url)["n"].tolist() == [2]
        with psycopg.connect(db_url, autocommit=True) as conn:
            _append(conn, run, 2, 2, datetime.now(UTC))
            _run(conn, 2)
        assert analytics.sql("SELECT count(*) AS n FROM events", database_url=db_url)["n"].tolist() == [6]
        assert analytics.run_durations(database_url=db_url)["runs"].tolist() == [2]
        assert loads == ["load"]           # one full load, then refreshes
    finally:
        analytics.close_shared()


def test_refresh_of_a_foreign_connection_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="not made by cn.analytics.connect"):
        analytics.refresh(duckdb.connect())
