"""The ready-made analytics queries over a journal of real size (one built by benchmarks/scale.py
with --keep), on the postgres scanner path and on the incremental COPY fallback.

    python benchmarks/scale.py --admin-url URL --database cn_scale --keep      # build it once
    python benchmarks/analytics_scale.py --database-url postgresql://postgres@127.0.0.1/cn_scale \
        [--repeat 3] [--window-days 31] [--paths scanner copy] [--explain]

Each path runs in a process of its own (its peak RSS is its own). One JSON object per line:

- ``{"path": "scanner", "query": "rollups", "window": "fill"|"check", "seconds", "months"}``:
  the monthly rollups' fill (from scratch with ``--refill``), then the check each whole-journal
  query makes (docs/analytics.md, "Monthly rollups");
- ``{"path": "scanner", "query": <name>, "window": "all"|"<n> days", "seconds": best,
  "median_seconds", "rows", "peak_rss_mb"}``: each ready-made query over the whole journal, then
  over the last ``--window-days`` days (``since=``), the window PostgreSQL prunes partitions by;
  with ``--live``, ``"window": "all, counted live"``: the queries that read the rollups, over the
  whole journal without them (once);
- ``{"path": "copy", "query": "load", ...}``: the first, full load (rows per view, peak RSS);
- ``{"path": "copy", "query": "refresh", ...}``: a refresh after ``--append`` new events were
  journaled to existing runs (rows loaded: only those), then a refresh with nothing new;
- ``{"path": "copy", "query": <name>, ...}``: each ready-made query over the loaded tables;
- with ``--explain``: the plans that show the pushdown (DuckDB's, and PostgreSQL's for the
  statement sent through postgres_query).

The benchmark appends events to the database it is given (runs of the scale.py journal, as the
engine journals them: the events and the run's last_seq in one transaction).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from continuum_nb import analytics  # noqa: E402
from continuum_nb.store import analytics_pushdown_sql as pq  # noqa: E402
from continuum_nb.store import analytics_rollups as rollups  # noqa: E402

QUERIES = analytics.QUERIES  # every ready-made query

# New events for existing runs, as a wake journals them (events, then last_seq, one transaction).
APPEND = """
WITH picked AS (
    SELECT id, last_seq FROM continuum_runs WHERE last_seq > 0 ORDER BY id LIMIT %(runs)s
), ins AS (
    INSERT INTO continuum_events (run_id, seq, event_type, payload)
    SELECT id, last_seq + k, CASE WHEN k %% 2 = 1 THEN 'activity_scheduled' ELSE 'activity_completed' END,
           CASE WHEN k %% 2 = 1 THEN jsonb_build_object('activity', 'shop.refund')
                ELSE jsonb_build_object('scheduled_seq', last_seq + k - 1, 'attempts', 1) END
      FROM picked, generate_series(1, 2) AS k
)
UPDATE continuum_runs r SET last_seq = p.last_seq + 2 FROM picked p WHERE r.id = p.id
"""


def emit(**fields: Any) -> None:
    print(json.dumps(fields, default=str), flush=True)


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # kB on Linux


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return round(min(times), 3), round(statistics.median(times), 3), out


def run_queries(con: Any, path: str, repeat: int, windows: list[tuple[str, datetime | None]]) -> None:
    for label, since in windows:
        for query in QUERIES:
            best, median, frame = timed(lambda q=query, s=since: q(con, since=s), repeat)
            emit(path=path, query=query.__name__, window=label, seconds=best, median_seconds=median,
                 rows=len(frame), peak_rss_mb=peak_rss_mb())


#: The queries that read the monthly rollups over the whole journal (with a window they never do).
ROLLED = ("events_by_type_and_month", "activity_latency", "throughput_per_minute")


def fill_rollups(url: str, refill: bool) -> None:
    """Time the monthly rollups' fill (with ``refill``: from scratch, as the first whole-journal
    query after the upgrade pays it once), then the check every later query makes."""
    if refill:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DELETE FROM continuum_analytics_rollups")
            conn.execute("UPDATE continuum_analytics_months SET closing_xmax = NULL")
    for label in (("fill" if refill else "check"), "check"):
        t = time.perf_counter()
        months = rollups.fill(url, "public", latency=True)
        emit(path="scanner", query="rollups", window=label, seconds=round(time.perf_counter() - t, 3),
             months=len(months), peak_rss_mb=peak_rss_mb())


def scanner(url: str, args: argparse.Namespace) -> None:
    t = time.perf_counter()
    con = analytics.connect(database_url=url, mode="scanner")
    emit(path="scanner", query="connect", seconds=round(time.perf_counter() - t, 3))
    con.execute("SET enable_progress_bar = false")
    fill_rollups(url, args.refill)
    since = datetime.now(timezone.utc) - timedelta(days=args.window_days)
    run_queries(con, "scanner", args.repeat, [("all", None), (f"{args.window_days} days", since)])
    if args.live:  # the same whole-journal answers counted without the rollups (a window that covers all)
        early = datetime(1900, 1, 1, tzinfo=timezone.utc)
        for query in (q for q in QUERIES if q.__name__ in ROLLED):
            best, median, frame = timed(lambda q=query: q(con, since=early), 1)
            emit(path="scanner", query=query.__name__, window="all, counted live", seconds=best,
                 median_seconds=median, rows=len(frame), peak_rss_mb=peak_rss_mb())
    if args.explain:
        explain(con, url, since)
    con.close()


def explain(con: Any, url: str, since: datetime) -> None:
    plan = con.execute("EXPLAIN SELECT event_type, count(*) FROM events WHERE inserted_at >= ? GROUP BY 1",
                       [since]).fetchall()
    emit(explain="duckdb: a window over the events view", plan=plan[0][1])
    text = pq.events_by_type_and_month("public", since, None)
    remote = text[text.index("postgres_query('pg', '") + len("postgres_query('pg', '"):text.rindex("')")]
    with psycopg.connect(url) as conn:
        rows = conn.execute("EXPLAIN (COSTS OFF) " + remote.replace("''", "'")).fetchall()  # type: ignore[arg-type]
    emit(explain="postgresql: events_by_type_and_month since= (sent through postgres_query)",
         plan="\n".join(r[0] for r in rows))


def copy(url: str, args: argparse.Namespace) -> None:
    t = time.perf_counter()
    con = analytics.connect(database_url=url, mode="copy", progress=False)
    counts = {v: con.execute(f"SELECT count(*) FROM {v}").fetchone()[0] for v in analytics.VIEWS}  # noqa: S608
    emit(path="copy", query="load", seconds=round(time.perf_counter() - t, 3), rows=counts, peak_rss_mb=peak_rss_mb())
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(APPEND, {"runs": args.append // 2})
    for label in ("after new events", "nothing new"):
        t = time.perf_counter()
        loaded = analytics.refresh(con)
        emit(path="copy", query="refresh", window=label, seconds=round(time.perf_counter() - t, 3), rows=loaded,
             peak_rss_mb=peak_rss_mb())
    run_queries(con, "copy", args.repeat, [("all", None)])
    con.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url", required=True, help="a database built by benchmarks/scale.py --keep")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--window-days", type=int, default=31)
    p.add_argument("--append", type=int, default=20_000, help="events journaled before the copy path's refresh")
    p.add_argument("--paths", nargs="*", default=["scanner", "copy"], choices=["scanner", "copy"])
    p.add_argument("--explain", action="store_true")
    p.add_argument("--refill", action="store_true",
                   help="forget the monthly rollups first: time their fill from scratch")
    p.add_argument("--live", action="store_true",
                   help="also time the rolled-up queries over the whole journal without the rollups")
    p.add_argument("--one", choices=["scanner", "copy"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.repeat < 1 or args.window_days < 1:
        p.error("--repeat and --window-days must be >= 1")
    if args.one:
        with warnings.catch_warnings():
            warnings.simplefilter("error")      # a silent fallback would time the wrong path
            (scanner if args.one == "scanner" else copy)(args.database_url, args)
        return 0
    same = ["--database-url", args.database_url, "--repeat", str(args.repeat), "--window-days",
            str(args.window_days), "--append", str(args.append), *(["--explain"] if args.explain else []),
            *(["--refill"] if args.refill else []), *(["--live"] if args.live else [])]
    for path in args.paths:                     # one process per path: its own peak RSS
        subprocess.run([sys.executable, __file__, *same, "--one", path], check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
