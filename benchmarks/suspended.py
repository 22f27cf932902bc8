"""Many suspended runs on one engine, one JSON object per line on stdout.

    python benchmarks/suspended.py --database-url URL [--runs 100000] [--timers 100000] [--signals 200] \
        [--timer-workers N]

The database must be migrated and should be a scratch one (the runs stay in it). One process:
a client starts the runs with ``cn.start_many``, one engine (this process, ``run_concurrency``
64) drives every first wake. Figures:

- ``suspend``: N runs that await a signal, from the start call until all are suspended (the
  first-wake rate of one engine), and this process's RSS then and its peak. A run that waits
  longer than ``release_after`` gives back its lease and coroutine at that commit, so the engine
  holds only the runs it is driving: the RSS does not grow with N.
- ``signal_resume``: ``--signals`` random runs among them, one after another: ``cn.signal`` then
  ``cn.wait`` for the result; p50/p95 of that round trip (the signal's NOTIFY, a claim, the
  replay of a 1-event journal, the final commit, the waiter's NOTIFY).
- ``timers``: ``--timers`` runs that each sleep until one common instant a little after they are
  all suspended; seconds from that instant until every one has completed: by this process's
  engine alone, or with ``--timer-workers N`` by it and N ``continuum worker`` processes started
  before the sleepers (``engines`` in the output).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

import continuum_nb as cn  # noqa: E402
from benchmarks._workers_common import Worker as _Worker  # noqa: E402


async def bench_waiter(i: int) -> Any:
    return await cn.signal("go")


async def bench_sleeper(i: int, until: str) -> int:
    due = datetime.fromisoformat(until)
    left = (due - cn.now()).total_seconds()
    if left > 0:
        await cn.timer(cn.seconds(left))
    return i


if __name__ != "__main__":  # imported by a `continuum worker` of --timer-workers: its workflow
    cn.workflow(name="bench_sleeper")(bench_sleeper)


class Worker(_Worker):
    """``continuum worker`` importing this module, as its own process (benchmarks/_workers_common.py)."""

    def __init__(self, url: str, name: str, lease_ttl: float) -> None:
        super().__init__(url, module="benchmarks.suspended", lease_ttl=lease_ttl, concurrency=16, name=name,
                         quiet=True)


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return -1.0


def _peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _count(url: str, workflow: str, state: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM continuum_runs WHERE workflow = %s AND state = %s",
                           (workflow, state)).fetchone()
    return int(row[0]) if row else 0


def _suspended_waiting(url: str, workflow: str) -> int:
    """Runs of ``workflow`` that have journaled their wait and gave back their lease."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM continuum_runs r WHERE r.workflow = %s AND r.state = 'suspended' "
            "AND r.lease_owner IS NULL AND EXISTS (SELECT 1 FROM continuum_events e WHERE e.run_id = r.id)",
            (workflow,)).fetchone()
    return int(row[0]) if row else 0


def _until(what: str, check: Any, timeout: float, every: float = 0.5) -> float:
    t0 = time.monotonic()
    while not check():
        if time.monotonic() - t0 > timeout:
            raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)
    return time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--timers", type=int, default=100_000)
    ap.add_argument("--signals", type=int, default=200)
    ap.add_argument("--timer-workers", type=int, default=0,
                    help="worker processes that fire the timers with this process's engine")
    ap.add_argument("--timeout", type=float, default=3600.0, help="give up on any phase after this")
    args = ap.parse_args()
    url = args.database_url
    inst = cn.Instance("bench-suspended", database_url=url, pool_size=8)
    waiter = cn.workflow(name="bench_waiter", instance=inst)(bench_waiter)
    sleeper = cn.workflow(name="bench_sleeper", instance=inst)(bench_sleeper)
    workers: list[Worker] = []
    try:
        t0 = time.monotonic()
        runs = cn.start_many(waiter, [{"i": i} for i in range(args.runs)], instance=inst)
        started = time.monotonic() - t0
        took = _until("every waiter to suspend", lambda: _suspended_waiting(url, "bench_waiter") >= args.runs,
                      args.timeout) + started
        print(json.dumps({"benchmark": "suspend", "runs": args.runs, "start_many_s": round(started, 2),
                          "all_suspended_s": round(took, 1), "first_wakes_per_s": round(args.runs / took),
                          "held_by_engine": len(inst.engine.held) if inst.engine else None,
                          "rss_mib": _rss_mib(), "peak_rss_mib": _peak_rss_mib()}), flush=True)

        picks = random.Random(7).sample(range(args.runs), min(args.signals, args.runs))
        latencies = []
        for i in picks:
            s0 = time.perf_counter()
            cn.signal(runs[i].id, "go", i, instance=inst)
            got = cn.wait(runs[i].id, timeout=60, instance=inst)
            latencies.append(time.perf_counter() - s0)
            assert got == i, (got, i)
        latencies.sort()
        print(json.dumps({"benchmark": "signal_resume", "signals": len(latencies),
                          "p50_ms": round(statistics.median(latencies) * 1000, 2),
                          "p95_ms": round(latencies[int(len(latencies) * 0.95) - 1] * 1000, 2),
                          "target_p50_ms": 10}), flush=True)

        if args.timers:
            for k in range(args.timer_workers):
                workers.append(Worker(url, f"timers{k}", inst.config.lease_ttl))
                workers[-1].wait_ready()
            # the instant: far enough ahead for every first wake to commit before it
            margin = max(30.0, args.timers / max(args.runs / took, 1.0) * 1.5)
            due = datetime.fromtimestamp(time.time() + margin, timezone.utc)
            cn.start_many(sleeper, [{"i": i, "until": due.isoformat()} for i in range(args.timers)], instance=inst)
            _until("every sleeper to suspend", lambda: _suspended_waiting(url, "bench_sleeper") >= args.timers,
                   args.timeout)
            left = (due - datetime.now(timezone.utc)).total_seconds()
            if left < 0:
                raise SystemExit("the sleepers took longer to suspend than the margin; rerun with fewer --timers")
            time.sleep(left)  # a benchmark waiting for its own instant, not a test synchronising
            fired = _until("every timer to fire", lambda: _count(url, "bench_sleeper", "completed") >= args.timers,
                           args.timeout, every=0.25)
            print(json.dumps({"benchmark": "timers", "timers": args.timers, "engines": 1 + len(workers),
                              "all_fired_s": round(fired, 1),
                              "timers_per_s": round(args.timers / max(fired, 0.001)), "target_s": 120,
                              "rss_mib": _rss_mib(), "peak_rss_mib": _peak_rss_mib()}), flush=True)
    finally:
        for w in workers:
            w.stop()
        inst.close()


if __name__ == "__main__":
    main()
