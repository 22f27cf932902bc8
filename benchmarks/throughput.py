"""Throughput and latency of S-step workflows, one JSON object per line on stdout.

    python benchmarks/throughput.py --database-url URL --workflows 300 --steps 3 --concurrency 1
    python benchmarks/throughput.py --database-url URL --workflows 1000 --steps 3 --concurrency 8

Each workflow runs S activities that return a small dict; C callers each start a run and wait for
its result, one after another (C=1: strictly sequential). The database must already be migrated.
Reported per scenario: workflows_per_s, lat_ms (p50, p95, p99), commits_per_workflow (from
pg_stat_database.xact_commit once the backends have published it: every transaction the database
saw, read-only ones included, e.g. each LISTEN connection reads the notification queue in a
transaction when a NOTIFY arrives), wal_syncs_per_workflow (pg_stat_wal.wal_sync, server-wide:
the WAL flushes, i.e. the durable commits, fewer than the commits when several share one flush),
engine_commits_per_workflow (commits of the run itself: create_run + commit_wake + complete_task),
store_calls_per_workflow (statements sent by the engine for the run, a proxy for round trips),
client_cpu_ms_per_workflow (CPU of this whole process: client and engine threads),
server_cpu_ms_per_workflow (CPU of the PostgreSQL backends serving the database, from /proc: the
server must run on this machine) and machine_cpu_busy_pct (all cores, over the same window: at
~100 % the rate is bound by CPU, whichever side spends it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402

import continuum_nb as cn  # noqa: E402
from benchmarks._proc_cpu import ServerCpu  # noqa: E402
from continuum_nb.workflow import WorkflowDef  # noqa: E402


@cn.activity(name="bench.step")
def step(i: int, n: int) -> dict[str, Any]:
    return {"i": i, "n": n + 1}


def make_workflow(steps: int) -> WorkflowDef:
    async def bench_workflow(n: int) -> int:
        for i in range(steps):
            out = await step(i, n)
            n = out["n"]
        return n

    return WorkflowDef(bench_workflow, name=f"bench_{steps}_steps", source=f"bench {steps}", origin="module")


def xact_commits(conninfo: str) -> int:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
        assert row is not None
        return int(row[0])


def wal_syncs(conninfo: str) -> int | None:
    """pg_stat_wal.wal_sync (PostgreSQL 14+): how many times the server flushed its WAL."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        try:
            row = conn.execute("SELECT wal_sync FROM pg_stat_wal").fetchone()
        except psycopg.errors.UndefinedTable:
            return None
        return int(row[0]) if row else None


def settled_commits(conninfo: str, timeout: float = 3.0) -> int:
    """xact_commit once the backends have published their counts: PostgreSQL 15+ flushes each
    backend's statistics up to a second late (and at exit), so read until two reads agree."""
    deadline = time.monotonic() + timeout
    last = xact_commits(conninfo)
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = xact_commits(conninfo)
        if now == last:
            return now
        last = now
    return last


class Counting:
    """Wraps the store to count the run's own commits and all store calls."""

    COMMITS = ("create_run", "commit_wake", "commit_wakes", "complete_task", "retry_task", "mark_drifted")
    RUN_CALLS = COMMITS + ("load_journal", "task_outcomes", "pending_signals", "get_run",
                           "get_activity_result", "claim_runs", "claim_tasks", "claim_run")

    def __init__(self, store: Any) -> None:
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()
        for name in self.RUN_CALLS:
            original = getattr(store, name)

            def wrapper(*a: Any, _o: Any = original, _n: str = name, **k: Any) -> Any:
                with self._lock:
                    self.counts[_n] = self.counts.get(_n, 0) + 1
                return _o(*a, **k)

            setattr(store, name, wrapper)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)


def scenario(conninfo: str, workflows: int, steps: int, concurrency: int, warmup: int,
             wake_batch_size: int = 64, commits_in_flight: int | None = None) -> dict[str, Any]:
    inst = cn.Instance(f"bench-{uuid.uuid4().hex[:6]}", database_url=conninfo,
                       pool_size=max(4, min(concurrency + 2, 20)), activity_concurrency=max(8, concurrency * 2),
                       run_concurrency=max(64, concurrency * 4), lease_ttl=30.0, wake_batch_size=wake_batch_size)
    wf = make_workflow(steps)
    inst.registry.register(wf)
    counting = Counting(inst.store)
    for i in range(warmup):
        cn.wait(cn.start(wf, {"n": i}, instance=inst).id, timeout=60, instance=inst)
    engine = inst.engine
    assert engine is not None
    if commits_in_flight is not None:  # an experiment's knob, not a setting (docs/benchmarks.md#group-commit)
        engine.group_commit.max_in_flight = commits_in_flight

    latencies: list[float] = []
    lat_lock = threading.Lock()
    todo = iter(range(workflows))
    todo_lock = threading.Lock()

    def caller() -> None:
        while True:
            with todo_lock:
                i = next(todo, None)
            if i is None:
                return
            t0 = time.perf_counter()
            result = cn.wait(cn.start(wf, {"n": i}, instance=inst).id, timeout=120, instance=inst)
            dt = time.perf_counter() - t0
            if result != i + steps:
                raise AssertionError(f"workflow {i} returned {result}, expected {i + steps}")
            with lat_lock:
                latencies.append(dt)

    before_counts = counting.snapshot()
    commits0 = xact_commits(conninfo)
    syncs0 = wal_syncs(conninfo)
    server = ServerCpu(conninfo)
    server.start()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=caller) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    server_cpu, machine_busy = server.stop()
    after = counting.snapshot()
    inst.close()  # its backends exit and publish their statistics
    reads = 1
    commits = settled_commits(conninfo)
    reads += 2 + 2  # at least the two settled reads, and ServerCpu's two; each measuring connection commits once
    commits = commits - commits0 - reads
    syncs1 = wal_syncs(conninfo)
    syncs = None if syncs0 is None or syncs1 is None else syncs1 - syncs0
    delta = {k: after.get(k, 0) - before_counts.get(k, 0) for k in after}
    engine_commits = sum(v for k, v in delta.items() if k in Counting.COMMITS)
    lat_ms = sorted(x * 1000 for x in latencies)

    def pct(p: float) -> float:
        return round(lat_ms[min(len(lat_ms) - 1, int(p * len(lat_ms)))], 3)

    return {
        "scenario": f"{steps}-step workflows, {concurrency} in flight",
        "engine": "continuum_nb",
        "concurrency": concurrency,
        "wake_batch_size": wake_batch_size,
        "commits_in_flight": engine.group_commit.max_in_flight,
        "workflows": workflows,
        "steps": steps,
        "elapsed_s": round(elapsed, 3),
        "workflows_per_s": round(workflows / elapsed, 1),
        "lat_ms": {"p50": pct(0.50), "p95": pct(0.95), "p99": pct(0.99), "mean": round(statistics.mean(lat_ms), 3)},
        "commits_per_workflow": round(commits / workflows, 2),
        "wal_syncs_per_workflow": None if syncs is None else round(syncs / workflows, 2),
        "engine_commits_per_workflow": round(engine_commits / workflows, 2),
        "store_calls_per_workflow": round(sum(delta.values()) / workflows, 2),
        "store_calls": {k: round(v / workflows, 2) for k, v in sorted(delta.items()) if v},
        "client_cpu_ms_per_workflow": round(cpu * 1000 / workflows, 3),
        "server_cpu_ms_per_workflow": round(server_cpu * 1000 / workflows, 3),
        "machine_cpu_busy_pct": round(machine_busy, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--database-url", required=True)
    p.add_argument("--workflows", type=int, default=300)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1])
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--wake-batch-size", type=int, nargs="+", default=[64],
                   help="group commit sizes to compare, alternated per concurrency (1: every wake alone)")
    p.add_argument("--commits-in-flight", type=int, nargs="+", default=[None],
                   help="group commit: commits of the engine in flight at once (default: the engine's)")
    args = p.parse_args(argv)
    for c in args.concurrency:
        for size in args.wake_batch_size:
            for flight in args.commits_in_flight:
                print(json.dumps(scenario(args.database_url, args.workflows, args.steps, c, args.warmup, size, flight)),
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
