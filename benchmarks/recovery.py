"""Recovery after kill -9: N runs held by one worker, taken over by the others. JSON lines.

    python benchmarks/recovery.py --admin-url postgresql://postgres@/postgres?host=/var/run/postgresql \
        [--runs 10000] [--workers 2] [--lease-ttl 10]

On a scratch database (created and dropped here): worker A (`continuum worker`, holding every
run it drives: `release_after` and `max_cached_runs` raised) drives the first wake of N runs
started by `cn.start_many`; each run then sleeps on a timer until one common instant
(`--margin` seconds after the start). Once A holds all N, `--workers` more workers start; A is
killed with SIGKILL a second before that instant. Its leases lapse after `--lease-ttl`; the
others claim the runs (their timers are due by then), replay each from its journal and complete
it. Figures, in seconds from the kill:

- ``all_claimed_s``: every run is held by a surviving worker or completed (what the target
  "recovered within lease TTL + 5 s" measures);
- ``all_completed_s``: every run completed;
- ``leases_lapse_s``: when the holder's leases lapse, read at the kill (its last heartbeat renewed
  them up to TTL / 3 before); ``first_claimed_s``: a survivor held the first run;
  ``completed_after_lapse_s``: the survivors' share (``all_completed_s`` − ``leases_lapse_s``);
- ``lease_ttl_s`` beside them, and the runs' final state counts (nothing lost, no duplicate).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg.conninfo import make_conninfo  # noqa: E402

import continuum_nb as cn  # noqa: E402
from benchmarks._workers_common import Worker as _Worker  # noqa: E402
from benchmarks.suspended import _until  # noqa: E402

WORKFLOW = "bench_recovery"


@cn.workflow(name=WORKFLOW)
async def bench_recovery(i: int, until: str) -> int:
    left = (datetime.fromisoformat(until) - cn.now()).total_seconds()
    if left > 0:
        await cn.timer(cn.seconds(left))
    return i


def _one(url: str, sql: str, params: tuple[Any, ...] = ()) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(sql, params).fetchone()
    return row[0] if row else None


class Worker(_Worker):
    """``continuum worker`` importing this module, as its own process (benchmarks/_workers_common.py)."""

    def __init__(self, url: str, name: str, lease_ttl: float, extra_env: dict[str, str]) -> None:
        super().__init__(url, module="benchmarks.recovery", lease_ttl=lease_ttl, concurrency=16, name=name,
                         extra_env=extra_env, quiet=True)


def run(admin: str, runs: int, workers: int, lease_ttl: float, margin: float, timeout: float) -> None:
    name = f"continuum_bench_recovery_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")  # generated above, not user input
    url = make_conninfo(admin, dbname=name)
    procs: list[Worker] = []
    try:
        holder = Worker(url, "holder", lease_ttl, {"CONTINUUM_RELEASE_AFTER": "86400",
                                                    "CONTINUUM_MAX_CACHED_RUNS": str(runs * 2),
                                                    "CONTINUUM_RUN_CONCURRENCY": str(runs * 2)})
        procs.append(holder)
        holder.wait_ready()
        client = cn.Instance("bench-recovery-client", database_url=url, run_engine=False)
        # The instant the timers fall due: far enough ahead for every first wake on the holder
        # (--margin); the holder is killed a second before it.
        due_ts = time.time() + margin
        due = datetime.fromtimestamp(due_ts, timezone.utc)
        t0 = time.monotonic()
        cn.start_many(WORKFLOW, [{"i": i, "until": due.isoformat()} for i in range(runs)], instance=client)
        held_sql = ("SELECT count(*) FROM continuum_runs WHERE workflow = %s AND state = 'suspended' "
                    "AND lease_owner IS NOT NULL AND next_wakeup_at IS NOT NULL AND last_seq > 0")
        _until("the holder to hold every run", lambda: _one(url, held_sql, (WORKFLOW,)) >= runs, timeout, 0.5)
        took = time.monotonic() - t0
        print(json.dumps({"benchmark": "recovery_setup", "runs": runs, "all_held_s": round(took, 1),
                          "first_wakes_per_s": round(runs / took)}), flush=True)
        for k in range(workers):
            w = Worker(url, f"survivor{k}", lease_ttl, {})
            procs.append(w)
            w.wait_ready()
        if time.time() > due_ts - 1.0:
            raise SystemExit(f"the setup took longer than --margin {margin:.0f}s: raise it")
        time.sleep(due_ts - 1.0 - time.time())  # the benchmark's own schedule, not a synchronisation
        holder.stop(signal.SIGKILL)
        killed = time.monotonic()
        # When the dead holder's leases lapse, from the kill (the database's clock): the last
        # heartbeat renewed them all, up to a heartbeat interval (TTL / 3) before the kill.
        lapse = _one(url, "SELECT extract(epoch FROM max(lease_expires_at) - now())::float8 FROM continuum_runs "
                          "WHERE workflow = %s AND lease_owner LIKE 'holder@%%'", (WORKFLOW,))
        recovered_sql = ("SELECT count(*) FROM continuum_runs WHERE workflow = %s AND "
                         "(state = 'completed' OR lease_owner LIKE 'survivor%%')")
        first = _until("a run claimed by a survivor", lambda: _one(url, recovered_sql, (WORKFLOW,)) > 0, timeout, 0.05)
        claimed = _until("every run claimed by a survivor", lambda: _one(url, recovered_sql, (WORKFLOW,)) >= runs,
                         timeout, 0.1) + first
        done_sql = "SELECT count(*) FROM continuum_runs WHERE workflow = %s AND state = 'completed'"
        _until("every run completed", lambda: _one(url, done_sql, (WORKFLOW,)) >= runs, timeout, 0.1)
        completed = time.monotonic() - killed
        with psycopg.connect(url, autocommit=True) as conn:
            states = dict(conn.execute("SELECT state, count(*) FROM continuum_runs GROUP BY state").fetchall())
            dup = conn.execute("SELECT count(*) FROM (SELECT run_id, seq FROM continuum_events GROUP BY run_id, seq "
                               "HAVING count(*) > 1) d").fetchone()
        print(json.dumps({"benchmark": "recovery", "runs": runs, "survivors": workers, "lease_ttl_s": lease_ttl,
                          "leases_lapse_s": round(lapse, 2) if lapse is not None else None,
                          "first_claimed_s": round(first, 2), "all_claimed_s": round(claimed, 2),
                          "all_completed_s": round(completed, 2),
                          "completed_after_lapse_s": round(completed - lapse, 2) if lapse is not None else None,
                          "target_s": lease_ttl + 5, "states": states, "duplicate_seqs": dup[0] if dup else None}), flush=True)
        client.close()
    finally:
        for p in procs:
            p.stop()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--admin-url", required=True)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=2, help="survivors started before the kill")
    ap.add_argument("--lease-ttl", type=float, default=10.0)
    ap.add_argument("--margin", type=float, default=120.0,
                    help="seconds from the start to the timers' instant (covers every first wake)")
    ap.add_argument("--timeout", type=float, default=1800.0)
    args = ap.parse_args()
    run(args.admin_url, args.runs, args.workers, args.lease_ttl, args.margin, args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
