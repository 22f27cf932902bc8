"""continuum_nb at real size: build a database of real size, then measure what users do with it.
One JSON object per figure on stdout (progress on stderr).

    python benchmarks/scale.py --admin-url postgresql://postgres@127.0.0.1:5432/postgres
    python benchmarks/scale.py --admin-url URL --runs 20000 --events 200000 --big 1000 5000   # small

The database (``--database``, default ``cn_scale``) is dropped and created, migrated with
``continuum migrate``'s migrations (the exact schema), given a monthly partition for each of the
last ``--months`` months, and filled with set-based SQL (``INSERT ... SELECT`` over
``generate_series``, one statement per chunk of runs; nothing row by row from Python):

- ``--runs`` runs (default 1,000,000) over ``--workflows`` workflows (10), in every state:
  completed (with a result), failed and drifted (with an error), cancelled, running (leased),
  and ``--suspended`` (100,000) suspended, half on a signal and half on a timer (a timer row
  each); a quarter carry a trace context, a tenth a retention (and retention_until once ended),
  a tenth search attributes (``customer``, ``region``);
- ``--events`` journal events (10,000,000) over ``--months`` months (12; ``--partitions`` 36 in
  all, the older ones empty), in seq order per run with
  ``last_seq`` kept as the wake function keeps it, including runs of ``--big`` events (10,000
  and 100,000).

Then it measures (p50/p95 of ``--repeat`` calls after one warm-up, from call to rows):
``cn.list_runs`` first page, each filter, next page and a deep page; the observer's list (first
page, run-id prefix search, next page); exact counts per state; the wake's seq check (the key
probe it makes now against the max(seq) it made before) and a commit_wake on the big database
against an empty one; ``continuum partitions list``; with ``--analytics``, the ready-made
analytics queries through the postgres scanner, over the whole journal and the last 31 days (and
this process's peak RSS; benchmarks/analytics_scale.py measures them in detail); with ``--throughput``,
benchmarks/throughput.py on an empty database and on the big one, alternated. ``--explain``
prints the plans of the list queries. ``--keep`` keeps the databases (``--reuse`` measures an
existing one without building it).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402
from psycopg.conninfo import conninfo_to_dict, make_conninfo  # noqa: E402

import continuum_nb as cn  # noqa: E402
from continuum_nb.partitions import create as create_partition  # noqa: E402
from continuum_nb.store.base import Event, NewRun, Wake  # noqa: E402
from continuum_nb.store.migrate import migrate  # noqa: E402
from continuum_nb.store.observer_sql import ObserverQueries  # noqa: E402
from continuum_nb.store.partitions import list_partitions  # noqa: E402
from continuum_nb.store.postgres import PostgresStore  # noqa: E402

STATES = ("completed", "failed", "drifted", "cancelled", "running", "suspended")
REGIONS = ("eu", "us", "apac", "latam", "africa")


def log(msg: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def emit(figure: str, **values: Any) -> None:
    print(json.dumps({"figure": figure, **values}, default=str), flush=True)


def db_url(admin_url: str, name: str) -> str:
    return make_conninfo(**{**conninfo_to_dict(admin_url), "dbname": name})


def recreate(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = db_url(admin_url, name)
    migrate(url)
    return url


def drop(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def add_months(d: date, n: int) -> date:
    m = d.month - 1 + n
    return date(d.year + m // 12, m % 12 + 1, 1)


# --- building -------------------------------------------------------------------------------------

# Run g (1..R) in SQL. Runs 1..len(big) carry the big journals; the rest share the other events
# evenly (exact integer split, so the total is exactly --events). started_at grows with g.
_N_EVENTS = """(CASE {big_cases} ELSE ((g - {nb})::bigint * %(rest)s / (%(runs)s - {nb})
                 - (g - {nb} - 1)::bigint * %(rest)s / (%(runs)s - {nb})) END)"""
_STARTED = "(%(floor)s::timestamptz + make_interval(secs => (g::float8 / %(runs)s) * %(span)s))"
# State by g modulo 1000: the suspended share first (from --suspended), then fixed shares.
_STATE = """(CASE WHEN g <= {nb} THEN 'suspended'
      WHEN g %% 1000 < %(susp)s THEN 'suspended'
      WHEN g %% 1000 < %(susp)s + 5 THEN 'running'
      WHEN g %% 1000 < %(susp)s + 55 THEN 'failed'
      WHEN g %% 1000 < %(susp)s + 60 THEN 'drifted'
      WHEN g %% 1000 < %(susp)s + 70 THEN 'cancelled'
      ELSE 'completed' END)"""
_ID = "md5('cn-scale-run-' || g)::uuid"

RUNS_SQL = """
INSERT INTO continuum_runs (id, workflow, version_hash, state, input, result, error, trace_context,
                            started_at, completed_at, lease_owner, lease_token, lease_expires_at,
                            next_wakeup_at, retention_until, attributes, retention, last_seq)
SELECT {id}, 'wf_' || (g %% %(workflows)s), 'v1', x.state,
       jsonb_build_object('order_id', 'A' || g, 'cents', g %% 10000),
       CASE WHEN x.state = 'completed' THEN jsonb_build_object('ok', true, 'n', g) END,
       CASE WHEN x.state IN ('failed', 'drifted')
            THEN jsonb_build_object('type', 'builtins.RuntimeError', 'message', 'payment ' || g || ' declined') END,
       CASE WHEN g %% 4 = 0 THEN convert_to('00-' || md5('t' || g) || '-' || left(md5('s' || g), 16) || '-01', 'UTF8') END,
       x.started,
       CASE WHEN x.state IN ('completed', 'failed', 'cancelled') THEN x.started + make_interval(secs => x.n + g %% 3600) END,
       CASE WHEN x.state = 'running' THEN 'scale-node' END,
       CASE WHEN x.state = 'running' THEN g END,
       CASE WHEN x.state = 'running' THEN now() + interval '30 days' END,
       CASE WHEN x.state = 'suspended' AND g %% 2 = 1 THEN now() + make_interval(secs => 86400 + g %% 2592000) END,
       CASE WHEN g %% 10 = 1 AND x.state IN ('completed', 'failed', 'cancelled')
            THEN x.started + make_interval(secs => x.n + g %% 3600) + interval '30 days' END,
       CASE WHEN g %% 10 = 0 THEN jsonb_build_object('customer', 'c' || (g / 10) %% 10000,
                                                    'region', (%(regions)s::text[])[1 + g %% 5]) END,
       CASE WHEN g %% 10 = 1 THEN interval '30 days' END,
       x.n
  FROM generate_series(%(lo)s::int, %(hi)s::int) AS g
  CROSS JOIN LATERAL (SELECT {state} AS state, {started} AS started, {n} AS n) AS x
"""

# The journal of runs lo..hi: activity_scheduled / activity_completed pairs, and a last event
# that says where a suspended run waits (signal_awaited, or timer_started for a timer).
EVENTS_SQL = """
INSERT INTO continuum_events (run_id, seq, event_type, payload, inserted_at)
SELECT {id}, s,
       CASE WHEN s = x.n AND x.state = 'suspended' THEN (CASE WHEN g %% 2 = 1 THEN 'timer_started' ELSE 'signal_awaited' END)
            WHEN s %% 2 = 1 THEN 'activity_scheduled' ELSE 'activity_completed' END,
       CASE WHEN s = x.n AND x.state = 'suspended' AND g %% 2 = 1
                 THEN jsonb_build_object('ordinal', 0, 'fire_at', x.started + interval '1 day', 'timer_id', md5('tm' || g)::uuid,
                                         'duration_s', 86400)
            WHEN s = x.n AND x.state = 'suspended'
                 THEN jsonb_build_object('name', 'approve', 'ordinal', 0, 'timeout_at', null, 'timer_id', null, 'timeout_s', null)
            WHEN s %% 2 = 1
                 THEN jsonb_build_object('activity', 'shop.charge', 'ordinal', s / 2, 'args', jsonb_build_array(g, s),
                                         'kwargs', '{{}}'::jsonb, 'idempotency_key', null,
                                         'task_id', md5('task' || g || '-' || s)::uuid)
            ELSE jsonb_build_object('scheduled_seq', s - 1, 'result', jsonb_build_object('ok', true, 'cents', s),
                                    'attempts', 1, 'idempotency_hit', false) END,
       x.started + make_interval(secs => s)
  FROM generate_series(%(lo)s::int, %(hi)s::int) AS g
  CROSS JOIN LATERAL (SELECT {state} AS state, {started} AS started, {n} AS n) AS x
  CROSS JOIN LATERAL generate_series(1, x.n::int) AS s
"""

TIMERS_SQL = """
INSERT INTO continuum_timers (id, run_id, seq, fires_at)
SELECT md5('tm' || g)::uuid, {id}, x.n, now() + make_interval(secs => 86400 + g %% 2592000)
  FROM generate_series(%(lo)s::int, %(hi)s::int) AS g
  CROSS JOIN LATERAL (SELECT {state} AS state, {n} AS n) AS x
 WHERE x.state = 'suspended' AND g %% 2 = 1
"""


def add_empty_partitions(url: str, first: date, args: argparse.Namespace) -> None:
    """Empty months before the data, up to --partitions in all (the migration made 3 ahead)."""
    for k in range(1, max(args.partitions - args.months - 3, 0) + 1):
        create_partition(add_months(first, -k), database_url=url)


def build(url: str, args: argparse.Namespace) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    first = add_months(now.date().replace(day=1), -(args.months - 1))
    for k in range(args.months):
        create_partition(add_months(first, k), database_url=url)
    add_empty_partitions(url, first, args)
    floor = datetime(first.year, first.month, 1, tzinfo=timezone.utc) + timedelta(hours=1)
    span = (now - timedelta(days=2) - floor).total_seconds()
    big = list(args.big)
    nb = len(big)
    rest = args.events - sum(big)
    if rest < args.runs - nb:
        raise SystemExit("--events must leave at least one event for every run that is not big")
    susp = round(1000 * max(args.suspended - nb, 0) / max(args.runs - nb, 1))
    if susp + 70 > 1000:
        raise SystemExit("--suspended is too large a share of --runs")
    big_cases = " ".join(f"WHEN g = {i + 1} THEN {n}" for i, n in enumerate(big)) or "WHEN false THEN 0"
    parts = {"id": _ID, "state": _STATE.format(nb=nb), "started": _STARTED,
             "n": _N_EVENTS.format(big_cases=big_cases, nb=nb)}
    params = {"runs": args.runs, "rest": rest, "floor": floor, "span": span, "susp": susp,
              "workflows": args.workflows, "regions": list(REGIONS)}
    chunk = args.chunk
    t0 = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")  # a bulk load: durability of each chunk is moot
        for what, stmt in (("runs", RUNS_SQL), ("events", EVENTS_SQL), ("timers", TIMERS_SQL)):
            t = time.perf_counter()
            text = stmt.format(**parts)
            for lo in range(1, args.runs + 1, chunk):
                hi = min(lo + chunk - 1, args.runs)
                conn.execute(text, {**params, "lo": lo, "hi": hi})  # type: ignore[arg-type]
                if what == "events":
                    log(f"events of runs {lo}-{hi} of {args.runs}")
            log(f"{what} built in {time.perf_counter() - t:.1f} s")
        conn.execute("VACUUM (ANALYZE) continuum_runs")
        conn.execute("ANALYZE continuum_events")
        conn.execute("ANALYZE continuum_timers")
        counts = dict(conn.execute("SELECT state, count(*) FROM continuum_runs GROUP BY state").fetchall())
        events = conn.execute("SELECT count(*) FROM continuum_events").fetchone()
        size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()
    built = {"seconds": round(time.perf_counter() - t0, 1), "runs": sum(counts.values()), "states": counts,
             "events": events[0] if events else 0, "big_runs": big, "months": args.months,
             "database_size": size[0] if size else None}
    emit("build", **built)
    return built


# --- measuring ------------------------------------------------------------------------------------


def timed(fn: Callable[[], Any], repeat: int) -> tuple[dict[str, float], Any]:
    out = fn()  # warm-up (and the value, for what follows)
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return {"p50_ms": round(statistics.median(samples), 3),
            "p95_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.95))], 3),
            "max_ms": round(samples[-1], 3)}, out


def measure_list_runs(url: str, args: argparse.Namespace) -> None:
    inst = cn.Instance(f"scale-{uuid.uuid4().hex[:6]}", database_url=url, run_engine=False, auto_migrate=False)
    try:
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT min(started_at), max(started_at) FROM continuum_runs").fetchone()
        assert row is not None
        lo, hi = row
        mid = lo + (hi - lo) / 2
        cases: dict[str, dict[str, Any]] = {
            "first_page": {},
            **{f"state={s}": {"state": s} for s in STATES},
            "workflow=wf_3": {"workflow": "wf_3"},
            "state+workflow": {"state": "failed", "workflow": "wf_3"},
            "started_between(1 day)": {"started_after": mid, "started_before": mid + timedelta(days=1)},
            "started_between(30 days)": {"started_after": mid, "started_before": mid + timedelta(days=30)},
            "attributes(customer: rare)": {"attributes": {"customer": "c42"}},
            "attributes(region: common)": {"attributes": {"region": "eu"}},
        }
        for name, kw in cases.items():
            stats, page = timed(lambda kw=kw: cn.list_runs(limit=args.page, instance=inst, **kw), args.repeat)
            emit("list_runs", case=name, rows=len(page.runs), **stats)
            if name in ("first_page", "state=completed") and page.next_cursor:
                cursor = page.next_cursor
                stats, nxt = timed(lambda kw=kw, c=cursor: cn.list_runs(limit=args.page, cursor=c, instance=inst, **kw),
                                   args.repeat)
                emit("list_runs", case=f"{name}, next page", rows=len(nxt.runs), **stats)
                for _ in range(98):  # the 100th page, by following cursors
                    nxt = cn.list_runs(limit=args.page, cursor=nxt.next_cursor, instance=inst, **kw)
                deep = nxt.next_cursor
                stats, last = timed(lambda kw=kw, c=deep: cn.list_runs(limit=args.page, cursor=c, instance=inst, **kw),
                                    args.repeat)
                emit("list_runs", case=f"{name}, page 100", rows=len(last.runs), **stats)
    finally:
        inst.close()


def measure_observer(url: str, args: argparse.Namespace) -> None:
    obs = ObserverQueries(url)
    try:
        limit = args.page + 1
        cases = {"first_page": {}, "state=failed": {"state": "failed"}, "workflow=wf_3": {"workflow": "wf_3"},
                 "prefix 2 hex": {"search": "ab"}, "prefix 4 hex": {"search": "abcd"},
                 "prefix 8 hex": {"search": "abcdef01"}, "attributes(region)": {"attributes": {"region": "eu"}}}
        for name, kw in cases.items():
            stats, rows = timed(lambda kw=kw: obs.list_runs(limit=limit, **kw), args.repeat)
            emit("observer_list", case=name, rows=len(rows), **stats)
            if name == "first_page" and rows:
                after = (rows[-2].started_at, rows[-2].id)
                stats, nxt = timed(lambda a=after: obs.list_runs(limit=limit, after=a), args.repeat)
                emit("observer_list", case="first_page, next page", rows=len(nxt), **stats)
    finally:
        obs.close()


def measure_counts(url: str, args: argparse.Namespace) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        stats, _ = timed(lambda: conn.execute("SELECT state, count(*) FROM continuum_runs GROUP BY state").fetchall(),
                         max(3, args.repeat // 10))
        emit("counts_per_state", how="exact: count(*) GROUP BY state (scans the runs)", **stats)
        stats, _ = timed(lambda: conn.execute("SELECT reltuples FROM pg_class WHERE oid = 'continuum_runs'::regclass"
                                              ).fetchone(), args.repeat)
        emit("counts_per_state", how="estimated total: pg_class.reltuples", **stats)


def measure_seq_check(url: str, args: argparse.Namespace) -> None:
    rnd = random.Random(7)
    ids = [uuid.UUID(hex=__import__("hashlib").md5(f"cn-scale-run-{rnd.randrange(1, args.runs + 1)}".encode()).hexdigest())
           for _ in range(args.repeat * 4)]
    with psycopg.connect(url, autocommit=True) as conn:
        for name, q in (("last_seq key probe (now)", "SELECT last_seq FROM continuum_runs WHERE id = %s"),
                        ("max(seq) over the partitions (before)",
                         "SELECT coalesce(max(seq), 0) FROM continuum_events WHERE run_id = %s")):
            it = iter(ids)
            stats, _ = timed(lambda q=q, it=it: conn.execute(q, (next(it),), prepare=True).fetchone(), args.repeat * 3)
            emit("seq_check", query=name, **stats)


def commit_wakes(url: str, n: int) -> dict[str, float]:
    store = PostgresStore(url, pool_size=1, instance="scale")
    try:
        rid = uuid.uuid4()
        now = datetime.now(timezone.utc)
        first = Wake(run_id=rid, lease_token=0, now=now, state="suspended",
                     events=[Event(1, "side_effect", {"kind": "random", "ordinal": 0, "value": 0.5})])
        token = store.create_run(NewRun(rid, "scale_probe", "v1", {}, now), owner="scale", lease_ttl=300.0,
                                 first_wake=first)
        assert token is not None
        seq = [2]

        def one() -> None:
            s = seq[0]
            store.commit_wake(Wake(run_id=rid, lease_token=token, now=now, state="suspended", lease_ttl=300.0,
                                   events=[Event(s, "side_effect", {"kind": "random", "ordinal": s, "value": 0.5}),
                                           Event(s + 1, "side_effect", {"kind": "random", "ordinal": s + 1, "value": 0.5})]))
            seq[0] = s + 2

        stats, _ = timed(one, n)
        return stats
    finally:
        store.close()


def measure_partitions(url: str, args: argparse.Namespace) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        n = len(list_partitions(conn, counts=False))
        stats, _ = timed(lambda: list_partitions(conn), max(3, args.repeat // 10))
        emit("partitions_list", how="with row counts (exact under 100,000 rows, else the estimate)", partitions=n,
             **stats)
        stats, _ = timed(lambda: list_partitions(conn, counts=False), args.repeat)
        emit("partitions_list", how="without counts", partitions=n, **stats)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "continuum_nb", "partitions", "list", "--database-url", url],
                         capture_output=True, text=True, env=env, timeout=600)
    emit("partitions_list", how="`continuum partitions list` (a new process: imports included)", partitions=n,
         ms=round((time.perf_counter() - t) * 1000, 1), rc=out.returncode)


def throughput(url: str, workflows: int) -> float:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--database-url", url,
                          "--workflows", str(workflows), "--steps", "3"],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"throughput.py failed: {out.stderr.strip().splitlines()[-1:]}")
    return float(json.loads(out.stdout.strip().splitlines()[-1])["workflows_per_s"])


def peak_rss_mb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # kB on Linux


def measure_analytics(url: str, args: argparse.Namespace) -> None:
    """The ready-made queries of docs/analytics.md through the postgres scanner (the journal is
    read where it is); a fallback to COPY would time the wrong path, so it is an error here."""
    import warnings

    from continuum_nb import analytics

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = time.perf_counter()
        con = analytics.connect(database_url=url, mode="scanner")
        emit("analytics", query="connect", mode="scanner", ms=round((time.perf_counter() - t) * 1000, 1))
        try:
            con.execute("SET enable_progress_bar = false")
            month = datetime.now(timezone.utc) - timedelta(days=31)
            for window, since in (("all", None), ("31 days", month)):
                for query in analytics.QUERIES:
                    t = time.perf_counter()  # once each (benchmarks/analytics_scale.py repeats them)
                    frame = query(con, since=since)
                    emit("analytics", query=query.__name__, mode="scanner", window=window, rows=len(frame),
                         ms=round((time.perf_counter() - t) * 1000, 1), peak_rss_mb=peak_rss_mb())
        finally:
            con.close()


def explain(url: str, args: argparse.Namespace) -> None:
    from continuum_nb.store.postgres import sql as q

    with psycopg.connect(url) as conn:
        cases = {"first page": ((), {}), "state": (("state",), {"state": "failed"}),
                 "workflow": (("workflow",), {"workflow": "wf_3"}),
                 "attributes": (("attributes",), {"attributes": json.dumps({"customer": "c42"})})}
        for name, (filters, params) in cases.items():
            text = q.list_runs_sql(*filters)
            plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + text,  # type: ignore[arg-type]
                                {**params, "limit": args.page + 1}).fetchall()
            emit("explain", query=f"list_runs {name}", plan="\n".join(r[0] for r in plan))
        obs = ObserverQueries(url)
        try:
            emit("explain", query="observer prefix 'abcd'", plan=obs.explain_list_runs(search="abcd", limit=args.page + 1))
        finally:
            obs.close()
        plan = conn.execute("EXPLAIN (ANALYZE, COSTS OFF) SELECT coalesce(max(seq), 0) FROM continuum_events "
                            "WHERE run_id = md5('cn-scale-run-77')::uuid").fetchall()
        emit("explain", query="max(seq) over the partitions (the seq check before)", plan="\n".join(r[0] for r in plan))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--admin-url", required=True, help="a superuser conninfo (the databases are created there)")
    p.add_argument("--database", default="cn_scale")
    p.add_argument("--runs", type=int, default=1_000_000)
    p.add_argument("--events", type=int, default=10_000_000)
    p.add_argument("--workflows", type=int, default=10)
    p.add_argument("--suspended", type=int, default=100_000)
    p.add_argument("--months", type=int, default=12, help="months that hold the events")
    p.add_argument("--partitions", type=int, default=36, help="partitions in all (empty older months added)")
    p.add_argument("--big", type=int, nargs="*", default=[100_000, 10_000], help="runs with this many events")
    p.add_argument("--chunk", type=int, default=50_000, help="runs per INSERT statement")
    p.add_argument("--repeat", type=int, default=30)
    p.add_argument("--page", type=int, default=50)
    p.add_argument("--throughput", type=int, default=0, metavar="WORKFLOWS",
                   help="also run benchmarks/throughput.py with this many workflows on an empty and on the big database")
    p.add_argument("--explain", action="store_true")
    p.add_argument("--analytics", action="store_true", help="also time the ready-made analytics queries (scanner)")
    p.add_argument("--reuse", action="store_true", help="measure the existing database, do not build it")
    p.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    args = p.parse_args(argv)
    if args.runs < 1000 or args.runs <= len(args.big):
        p.error("--runs must be at least 1000")
    empty_name = f"{args.database}_empty"
    url = db_url(args.admin_url, args.database) if args.reuse else recreate(args.admin_url, args.database)
    empty = recreate(args.admin_url, empty_name)
    try:
        if not args.reuse:
            build(url, args)
        with psycopg.connect(args.admin_url) as conn:
            version = conn.execute("SHOW server_version").fetchone()
        emit("machine", cpus=os.cpu_count(), python=sys.version.split()[0], postgres=version[0] if version else None,
             date=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        measure_list_runs(url, args)
        measure_observer(url, args)
        measure_counts(url, args)
        measure_seq_check(url, args)
        for name, target in (("big", url), ("empty", empty), ("big", url), ("empty", empty)):
            emit("commit_wake", database=name, events_per_wake=2, **commit_wakes(target, args.repeat * 10))
        measure_partitions(url, args)
        if args.explain:
            explain(url, args)
        if args.analytics:
            measure_analytics(url, args)
        if args.throughput:
            rates: dict[str, list[float]] = {"empty": [], "big": []}
            for name, target in (("empty", empty), ("big", url), ("empty", empty), ("big", url)):
                rates[name].append(throughput(target, args.throughput))
                log(f"throughput on the {name} database: {rates[name][-1]} wf/s")
            emit("throughput", workflows=args.throughput, steps=3, empty_wf_s=rates["empty"], big_wf_s=rates["big"],
                 big_over_empty=round(statistics.mean(rates["big"]) / statistics.mean(rates["empty"]), 3))
    finally:
        if not args.keep:
            drop(args.admin_url, empty_name)
            if not args.reuse:
                drop(args.admin_url, args.database)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
