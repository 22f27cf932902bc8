"""Cost of the store's hot path on a real PostgreSQL: µs per call, round trips, durable commits.

    python benchmarks/store_commit.py --database-url postgresql://postgres@127.0.0.1:5432/postgres \
        [--database-url postgresql://postgres@/postgres?host=/var/run/postgresql] [--n 2000]

For each URL a scratch database is created (and dropped afterwards), migrated, and each operation
is timed N times one after another. One JSON object per line: ``op``, ``transport``, ``n``,
``us_per_op`` (mean), ``p50_us``, ``p95_us``, ``round_trips_per_op`` (client waits for the server,
counted from a libpq trace of one extra call) and ``commits_per_op`` (pg_stat_database.xact_commit
delta of the scratch database; for the writing calls these are the durable commits, a read-only
call counts one commit that flushes nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from continuum_nb.store.base import Event, NewRun, NewTask, TaskOutcome, Wake
from continuum_nb.store.migrate import migrate
from continuum_nb.store.postgres import PostgresStore


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _commits(store: PostgresStore, admin: str, db: str) -> int:
    """pg_stat_database.xact_commit of the scratch database, after making the store's backend
    flush its pending statistics (they are otherwise published up to a second late). The two
    statements used for that add 2 commits, subtracted by the caller."""
    with store._db.pool.connection() as conn:  # noqa: SLF001 - benchmark introspection
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("SELECT 1")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (db,)).fetchone()
    return int(row[0]) if row else 0


def _round_trips(store: PostgresStore, call: Callable[[], Any]) -> int:
    """Run ``call`` once with a libpq trace on the (single) pooled connection; count the turns
    from client messages (F) to server messages (B): each is one wait for the server."""
    fd, path = tempfile.mkstemp(suffix=".trace")
    with store._db.pool.connection() as conn:  # noqa: SLF001 - benchmark introspection
        conn.pgconn.trace(fd)
    try:
        call()
    finally:
        with store._db.pool.connection() as conn:  # noqa: SLF001
            conn.pgconn.untrace()
        os.close(fd)
    turns, last = 0, None
    with open(path) as fh:
        for line in fh:
            fields = line.split("\t")
            direction = next((f for f in fields[:2] if f in ("F", "B")), None)
            if direction is None:
                continue
            if direction == "B" and last == "F":
                turns += 1
            last = direction
    os.unlink(path)
    return turns


def bench(url: str, n: int, transport: str) -> list[dict[str, Any]]:
    admin = url
    db = "cn_bench_store_" + uuid.uuid4().hex[:8]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {db}")
    dburl = make_conninfo(admin, dbname=db)
    migrate(dburl)
    store = PostgresStore(dburl, pool_size=1, instance="bench")
    store._db.ensure_open()  # noqa: SLF001 - the baselines below use the pool directly
    out: list[dict[str, Any]] = []
    try:
        def measure(op: str, setup: Callable[[int], Any], call: Callable[[Any], Any]) -> None:
            args = [setup(i) for i in range(n + 1)]
            call(args[0])  # warm up: prepares the statements on the connection
            c0 = _commits(store, admin, db)
            times = []
            for a in args[1:]:
                t = time.perf_counter_ns()
                call(a)
                times.append((time.perf_counter_ns() - t) / 1000)
            c1 = _commits(store, admin, db) - 2
            extra = setup(n + 1)
            rt = _round_trips(store, lambda: call(extra))
            times.sort()
            out.append({
                "op": op, "transport": transport, "n": n,
                "us_per_op": round(statistics.fmean(times), 1),
                "p50_us": round(times[len(times) // 2], 1),
                "p95_us": round(times[int(len(times) * 0.95)], 1),
                "round_trips_per_op": rt,
                "commits_per_op": round((c1 - c0) / n, 2),
            })

        # Baselines under the same load: one bare round trip, and one single-row durable commit
        # (what pgbench's INSERT-only script measures).
        with store._db.pool.connection() as conn:  # noqa: SLF001
            conn.execute("CREATE TABLE bench_baseline (id bigserial PRIMARY KEY, v int)")

        def bare(sql: str) -> Callable[[Any], Any]:
            def run(_: Any) -> Any:
                with store._db.pool.connection() as conn:  # noqa: SLF001
                    return conn.execute(sql).fetchall()
            return run

        measure("baseline: SELECT 1", lambda i: None, bare("SELECT 1"))
        measure("baseline: INSERT 1 row", lambda i: None, bare("INSERT INTO bench_baseline (v) VALUES (1) RETURNING id"))

        # a run held by this engine; each wake appends 2 events and schedules 1 activity task
        rid = uuid.uuid4()
        token = store.create_run(NewRun(rid, "bench", "v1", {"i": 0}, _now()), owner="bench")
        assert token is not None
        state = {"seq": 0}

        def wake_args(i: int) -> Wake:
            s = state["seq"]
            state["seq"] += 2
            return Wake(
                run_id=rid, lease_token=token, now=_now(), state="suspended",
                events=[Event(s + 1, "side_effect", {"value": i}), Event(s + 2, "activity_scheduled",
                        {"activity": "step", "args": [i], "kwargs": {}})],
                new_tasks=[NewTask(uuid.uuid4(), s + 2, "step", {"args": [i], "kwargs": {}}, _now())],
            )

        measure("commit_wake[2 events + 1 task]", wake_args, store.commit_wake)

        def first_wake_args(i: int) -> tuple[NewRun, Wake]:
            r = uuid.uuid4()
            return (NewRun(r, "bench", "v1", {"i": i}, _now()),
                    Wake(run_id=r, lease_token=0, now=_now(), state="suspended",
                         events=[Event(1, "activity_scheduled", {"activity": "step"})],
                         new_tasks=[NewTask(uuid.uuid4(), 1, "step", {"args": [], "kwargs": {}}, _now(),
                                            lease_to_self=True)]))

        measure("create_run[first_wake: 1 event + 1 self-leased task]", first_wake_args,
                lambda a: store.create_run(a[0], owner="bench", first_wake=a[1]))

        claimed: list[Any] = []
        measure("claim_tasks[limit 1]", lambda i: None,
                lambda _: claimed.extend(store.claim_tasks("bench", ["step"], _now() + timedelta(seconds=1), 30, 1)))
        assert len(claimed) == n + 2, "each claim must have found a task"
        it = iter(claimed)
        measure("complete_task", lambda i: next(it),
                lambda t: store.complete_task(t, TaskOutcome(t.id, "completed", {"ok": 1}), _now()))

        measure(f"load_journal[{min(100, 2 * n)} events]", lambda i: None,
                lambda _: store.load_journal(rid, max(0, state["seq"] - 100)))
    finally:
        store.close()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--database-url", action="append", required=True,
                    help="an admin URL of the server (repeatable: e.g. TCP and Unix socket)")
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args(argv)
    for url in args.database_url:
        params = conninfo_to_dict(url)
        host = str(params.get("host") or "")
        transport = "unix" if host.startswith("/") or not host else "tcp"
        for row in bench(url, args.n, transport):
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
