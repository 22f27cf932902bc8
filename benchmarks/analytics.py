"""DuckDB analytics over a large journal: each ready-made query through the postgres scanner and
through the COPY fallback.

    python benchmarks/analytics.py --database-url postgresql://postgres@127.0.0.1:5432/postgres \
        [--events 1000000] [--repeat 3]

A scratch database is created on that server (and dropped afterwards), migrated, and filled in
SQL with ``generate_series``: runs of 10 events each (3 activities scheduled and finished — one
in four retried, the third one failing —, a signal awaited and received, a timer), spread over the
last three months and this one, plus their activity tasks and signal rows.

One JSON object per line:
- ``{"phase": "load", ...}``: the time to generate the journal;
- ``{"query": "connect", "mode": ...}``: ``analytics.connect`` (the fallback loads all four tables
  here: that is its real cost);
- ``{"query": <ready-made query>, "mode": "scanner"|"copy", "best_s", "median_s", "rows"}``;
- ``{"query": "events_by_type_and_month", "mode": "postgresql"}``: the same aggregate run by
  PostgreSQL itself, the reference for how fast a full scan of the journal can be on this server.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from continuum_nb import analytics
from continuum_nb.store.database import conninfo as to_conninfo
from continuum_nb.store.migrate import migrate

QUERIES = analytics.QUERIES  # every ready-made query

# Partitions for the three months before this one, this one and the next (the migration already
# made this month and the three after it; IF NOT EXISTS keeps the rest).
PARTITIONS = """
DO $$
DECLARE m date;
BEGIN
    FOR m IN SELECT (date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => k))::date
               FROM generate_series(-3, 1) AS k
    LOOP
        EXECUTE format(
            'CREATE TABLE IF NOT EXISTS %I PARTITION OF continuum_events FOR VALUES FROM (%L) TO (%L)',
            'continuum_events_y' || to_char(m, 'YYYY') || '_m' || to_char(m, 'MM'),
            to_char(m, 'YYYY-MM-DD') || ' 00:00:00+00',
            to_char((m + interval '1 month')::date, 'YYYY-MM-DD') || ' 00:00:00+00');
    END LOOP;
END $$
"""

# %(runs)s runs; run r starts at r * %(step)s seconds after the first day of three months ago.
RUNS = """
INSERT INTO continuum_runs (id, workflow, version_hash, state, input, result, started_at, completed_at)
SELECT md5('run' || r)::uuid, 'workflow_' || (r %% 3), 'v1', 'completed', jsonb_build_object('r', r),
       '{"ok": true}', b.t0 + r * %(step)s * interval '1 second',
       b.t0 + r * %(step)s * interval '1 second' + (20 + r %% 50) * interval '1 second'
  FROM generate_series(1, %(runs)s) AS r,
       (SELECT date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '3 months' AS t0) AS b
"""

EVENTS = """
INSERT INTO continuum_events (run_id, seq, event_type, payload, inserted_at)
SELECT md5('run' || r)::uuid, s,
       (ARRAY['activity_scheduled', 'activity_completed', 'activity_scheduled', 'activity_completed',
              'signal_awaited', 'signal_received', 'timer_started', 'timer_fired',
              'activity_scheduled', 'activity_failed'])[s],
       CASE s
         WHEN 1 THEN jsonb_build_object('activity', 'charge', 'args', jsonb_build_object('args', jsonb_build_array(r), 'kwargs', '{}'::jsonb), 'ordinal', 0)
         WHEN 2 THEN jsonb_build_object('scheduled_seq', 1, 'result', jsonb_build_object('receipt', r), 'attempts', 1 + (r %% 4 = 0)::int)
         WHEN 3 THEN jsonb_build_object('activity', 'ship', 'args', '{"args": [], "kwargs": {}}'::jsonb, 'ordinal', 0)
         WHEN 4 THEN jsonb_build_object('scheduled_seq', 3, 'result', null, 'attempts', 1)
         WHEN 5 THEN jsonb_build_object('name', 'approve', 'timeout_s', 86400)
         WHEN 6 THEN jsonb_build_object('name', 'approve', 'payload', jsonb_build_object('by', 'ana'))
         WHEN 7 THEN jsonb_build_object('fire_at', '2026-01-01T00:00:00Z', 'duration_s', 5)
         WHEN 8 THEN '{}'::jsonb
         WHEN 9 THEN jsonb_build_object('activity', 'notify', 'args', '{"args": [], "kwargs": {}}'::jsonb, 'ordinal', 0)
         ELSE jsonb_build_object('scheduled_seq', 9, 'error', jsonb_build_object('type', 'TimeoutError', 'message', 'no answer'), 'attempts', 3)
       END,
       b.t0 + r * %(step)s * interval '1 second' + (s * 2 + (r * s) %% 7) * interval '1 second'
  FROM generate_series(1, %(runs)s) AS r, generate_series(1, 10) AS s,
       (SELECT date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '3 months' AS t0) AS b
"""

TASKS = """
INSERT INTO continuum_activity_tasks (id, run_id, seq, activity, mfa, attempt, state, completed_at)
SELECT md5('task' || r || '.' || s)::uuid, md5('run' || r)::uuid, s,
       CASE s WHEN 1 THEN 'charge' WHEN 3 THEN 'ship' ELSE 'notify' END,
       '{"args": [], "kwargs": {}}', 1, CASE s WHEN 9 THEN 'failed' ELSE 'completed' END, now()
  FROM generate_series(1, %(runs)s) AS r, unnest(ARRAY[1, 3, 9]) AS s
"""

SIGNALS = """
INSERT INTO continuum_signals (run_id, name, payload, delivered, delivered_seq)
SELECT md5('run' || r)::uuid, 'approve', '{"by": "ana"}', true, 6 FROM generate_series(1, %(runs)s) AS r
"""

# A scratch database: the events' indexes are dropped for the bulk insert and rebuilt after it
# (a sorted build is several times faster than a million random b-tree inserts), leaving exactly
# the schema the migrations made.
DROP_EVENT_INDEXES = (
    "ALTER TABLE continuum_events DROP CONSTRAINT continuum_events_pkey",
    "DROP INDEX continuum_events_type_time_idx",
)
CREATE_EVENT_INDEXES = (
    "ALTER TABLE continuum_events ADD CONSTRAINT continuum_events_pkey PRIMARY KEY (run_id, seq, inserted_at)",
    "CREATE INDEX continuum_events_type_time_idx ON continuum_events (event_type, inserted_at)",
)

REFERENCE = """
SELECT date_trunc('month', inserted_at AT TIME ZONE 'UTC'), event_type, count(*)
  FROM continuum_events GROUP BY 1, 2
"""


def _emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def _fetch(conn: psycopg.Connection[Any], text: str) -> list[Any]:
    return conn.execute(text).fetchall()


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def _load(url: str, events: int) -> None:
    runs = max(events // 10, 1)
    spacing = 120 * 86400 / runs       # seconds between run starts: ~4 months in all
    t0 = time.perf_counter()
    with psycopg.connect(url) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute(PARTITIONS)
        params = {"runs": runs, "step": spacing}
        steps: dict[str, float] = {}

        def step(label: str, *statements: str) -> None:
            started = time.perf_counter()
            for statement in statements:
                conn.execute(statement, params if "%(" in statement else None)
            steps[label] = round(time.perf_counter() - started, 3)

        step("drop_indexes", *DROP_EVENT_INDEXES)
        step("runs", RUNS)
        step("events", EVENTS)
        step("tasks_and_signals", TASKS, SIGNALS)
        step("build_indexes", *CREATE_EVENT_INDEXES)
        conn.commit()
        conn.autocommit = True
        step("analyze", "ANALYZE")
    _emit(benchmark="analytics", phase="load", events=runs * 10, runs=runs,
          seconds=round(time.perf_counter() - t0, 3), steps=steps)


def _bench(url: str, events: int, repeat: int) -> None:
    with psycopg.connect(url) as conn:
        times, _ = _timed(partial(_fetch, conn, REFERENCE), repeat)
    _emit(benchmark="analytics", query="events_by_type_and_month", mode="postgresql", events=events,
          best_s=round(min(times), 3), median_s=round(statistics.median(times), 3))
    for mode in ("scanner", "copy"):
        times, con = _timed(partial(analytics.connect, database_url=url, mode=mode, progress=False), 1)
        _emit(benchmark="analytics", query="connect", mode=mode, events=events, best_s=round(times[0], 3))
        try:
            for query in QUERIES:
                times, frame = _timed(partial(query, con), repeat)
                _emit(benchmark="analytics", query=query.__name__, mode=mode, events=events,
                      best_s=round(min(times), 3), median_s=round(statistics.median(times), 3),
                      rows=len(frame))
        finally:
            con.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True,
                        help="a PostgreSQL server to create the scratch database on")
    parser.add_argument("--events", type=int, default=1_000_000, help="journal size (default 1,000,000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each query (best and median reported)")
    args = parser.parse_args(argv)
    if args.events < 10 or args.repeat < 1:
        parser.error("--events must be >= 10 and --repeat >= 1")
    admin = to_conninfo(args.database_url)
    name = "cn_bench_analytics_" + uuid.uuid4().hex[:8]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = make_conninfo(admin, dbname=name)
        migrate(url)
        _load(url, args.events)
        with warnings.catch_warnings():
            warnings.simplefilter("error")       # a silent fallback would time the wrong path
            _bench(url, (args.events // 10) * 10, args.repeat)
    finally:
        analytics.close_shared()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
