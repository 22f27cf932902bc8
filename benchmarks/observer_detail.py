"""How fast the observer opens the detail of a long run, one JSON object per line on stdout.

    python benchmarks/observer_detail.py --database-url postgresql://postgres@127.0.0.1:5432/postgres \
        [--events 10000 100000] [--repeat 5]

A scratch database is created on that server (and dropped afterwards), migrated, and given one
synthetic run per size (``tests/observer_data.py``: fetch/parse/store activities, failures, side
effects, a timer, an open signal wait). For each size:

- ``detail_viewmodel``: what selecting the run costs without widgets — the run row, the slim
  timeline query, pairing into spans, the lane/bar aggregation for the whole run, the counts per
  event type and the first page of 50 events rendered. Target: <= 300 ms at 10,000 events.
- ``zoom``: one zoom (re-aggregating the spans for a window; no database).
- ``app_select``: the same through the ipywidgets app (``table.selected_id = ...``), when the
  notebook extra is installed.
- ``bars``: how many bars the browser receives for the whole run (never more than its pixels).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402
from psycopg.conninfo import make_conninfo  # noqa: E402

from continuum_nb.observer.journal_view import events_html  # noqa: E402
from continuum_nb.observer.lanes import timeline_view  # noqa: E402
from continuum_nb.observer.timeline import journal_spans  # noqa: E402
from continuum_nb.store.database import conninfo as to_conninfo  # noqa: E402
from continuum_nb.store.migrate import migrate  # noqa: E402
from continuum_nb.store.observer_sql import ObserverQueries  # noqa: E402
from tests.observer_data import insert_run  # noqa: E402


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[dict[str, float], Any]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return {"best_ms": round(min(times) * 1000, 1), "median_ms": round(statistics.median(times) * 1000, 1)}, result


def _detail(q: ObserverQueries, run_id: uuid.UUID) -> dict[str, Any]:
    detail = q.run_detail(run_id, max_events=0)
    assert detail is not None
    started = detail.run["started_at"]
    spans = journal_spans(q.timeline_events(run_id, started), started_at=started, now=detail.db_now,
                          completed_at=detail.run.get("completed_at"), tasks=detail.tasks)
    view = timeline_view(spans)
    counts = q.event_counts(run_id, started)
    page = events_html(q.events_page(run_id, started, limit=50), started_at=started)
    return {"spans": spans, "view": view, "events": sum(counts.values()), "page_chars": len(page)}


def _bench(url: str, sizes: list[int], repeat: int) -> None:
    q = ObserverQueries(url)
    try:
        for size in sizes:
            run_id = insert_run(url, size)
            with psycopg.connect(url) as conn:
                conn.execute("ANALYZE continuum_events")
            stats, out = _timed(lambda run_id=run_id: _detail(q, run_id), repeat)
            print(json.dumps({"benchmark": "detail_viewmodel", "events": out["events"], "repeat": repeat, **stats,
                              "target_ms": 300 if size <= 10_000 else None, "bars": len(out["view"]["bars"]),
                              "lanes": len(out["view"]["lanes"])}), flush=True)
            t_end = out["spans"].t_end
            stats, _ = _timed(lambda out=out, t_end=t_end: timeline_view(out["spans"], window=[t_end * 0.4, t_end * 0.6]),
                              repeat)
            print(json.dumps({"benchmark": "zoom", "events": out["events"], "repeat": repeat, **stats}), flush=True)
            try:
                from continuum_nb.observer.app import ObserverApp
                from tests.integration.test_observer_queries import _Recorder
            except ImportError:
                continue
            app = ObserverApp(ObserverQueries(url), conninfo=url, actions=_Recorder(), live=False)
            try:
                def select(app: Any = app, run_id: uuid.UUID = run_id) -> None:
                    app.table.selected_id = ""
                    app.table.selected_id = str(run_id)
                stats, _ = _timed(select, repeat)
                print(json.dumps({"benchmark": "app_select", "events": out["events"], "repeat": repeat, **stats}),
                      flush=True)
            finally:
                app.close()
    finally:
        q.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="a PostgreSQL server to create the scratch database on")
    parser.add_argument("--events", type=int, nargs="+", default=[10_000, 100_000], help="run sizes")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    if min(args.events) < 10 or args.repeat < 1:
        parser.error("--events must be >= 10 and --repeat >= 1")
    admin = to_conninfo(args.database_url)
    name = "cn_bench_observer_" + uuid.uuid4().hex[:8]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = make_conninfo(admin, dbname=name)
        migrate(url)
        _bench(url, args.events, args.repeat)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
