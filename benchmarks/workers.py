"""N ``continuum worker`` processes on one machine against one database: where does it saturate?

    python benchmarks/workers.py                                   # PostgreSQL at CONTINUUM_TEST_PG15_URL
    python benchmarks/workers.py --admin-url URL --workers 1,2,4,8 --runs 2000 --steps 3

For each N, a fresh database is created and migrated, a pure client (run_engine=False) queues R
runs of an S-step workflow (trivial activities), then N workers are started and the benchmark
waits until every run is completed. ``runs_per_s`` is the steady rate (between the 20th and 80th
percentile of completion times). Figures come from the database (started_at of
the first run to completed_at of the last) and from /proc (CPU of the worker processes and of the
server processes serving this database, over the same window), so the JSON line says both how
fast it went and what one run costs in CPU on each side (``*_cpu_ms_per_run``): with C cores and
nothing else running, C / (worker + backend ms per run) bounds the runs per second of one machine. A pgbench line (a one-row INSERT per transaction, the same number of client
connections as the workers use) gives the server's own commit ceiling on this machine.

Output: one JSON object per line on stdout, the last one a summary (``workers_summary``): where
the rate stops growing and what bounds it there. Scratch databases are dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg.conninfo import conninfo_to_dict, make_conninfo  # noqa: E402

import continuum_nb as cn  # noqa: E402
from benchmarks._proc_cpu import process_cpu  # noqa: E402
from benchmarks._workers_common import Worker  # noqa: E402

WORKFLOW = "bench_workers"


@cn.activity(name="bench_workers.step")
def step(i: int, n: int) -> int:
    return n + i


@cn.workflow(name=WORKFLOW)
async def bench_workers(n: int, steps: int) -> int:
    for i in range(steps):
        n = await step(i, n)
    return n


# --- measurement helpers -----------------------------------------------------------------------


def _cpu(pids: list[int]) -> dict[int, float]:
    """utime + stime (and reaped children) of each process, in seconds."""
    return process_cpu(pids, children=True)


def _all_pids() -> list[int]:
    return [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()]


def _backend_pids(url: str) -> list[int]:
    """Server processes serving this database (the benchmark's own connections included)."""
    with psycopg.connect(url, autocommit=True) as conn:
        return [int(r[0]) for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()").fetchall()]


def _machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts) - idle, sum(parts)


def _xact_commit(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()").fetchone()
        return int(row[0]) if row else 0


def _one(url: str, sql: str) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(sql).fetchone()
        return row[0] if row else None


# --- scratch databases and workers -------------------------------------------------------------


def _create_db(admin: str) -> tuple[str, str]:
    name = f"continuum_bench_workers_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")  # name is generated above, not user input
    return name, make_conninfo(admin, dbname=name)


def _drop_db(admin: str, name: str) -> None:
    if not name.startswith("continuum_bench_workers_"):
        raise ValueError(f"refusing to drop {name!r}")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _start_runs(url: str, runs: int, steps: int, threads: int) -> float:
    """Start ``runs`` runs from a pure client; returns the seconds it took."""
    inst = cn.Instance(f"bench-client-{uuid.uuid4().hex[:6]}", database_url=url, run_engine=False,
                       auto_migrate=False, pool_size=threads)
    t0 = time.perf_counter()
    per = [runs // threads + (1 if i < runs % threads else 0) for i in range(threads)]

    def go(k: int) -> None:
        for i in range(k):
            cn.start(WORKFLOW, {"n": i, "steps": steps}, instance=inst)

    ts = [threading.Thread(target=go, args=(k,)) for k in per]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.perf_counter() - t0
    inst.close()
    return elapsed


def run_scenario(admin: str, n_workers: int, runs: int, steps: int, concurrency: int, lease_ttl: float,
                 timeout: float) -> dict[str, Any]:
    from continuum_nb.store.migrate import migrate

    name, url = _create_db(admin)
    workers: list[Worker] = []
    try:
        migrate(url)
        # The runs are queued first, so the client's insert rate never limits the workers.
        insert_s = _start_runs(url, runs, steps, threads=16)
        workers = [Worker(url, module="benchmarks.workers", lease_ttl=lease_ttl, concurrency=concurrency)
                   for _ in range(n_workers)]
        for w in workers:
            w.wait_ready()
        # The window: from every worker ready to every run completed (start-up CPU excluded).
        pids = [w.proc.pid for w in workers]
        done0 = int(_one(url, "SELECT count(*) FROM continuum_runs WHERE state = 'completed'"))
        commits0, busy0 = _xact_commit(url), _machine_busy()
        cpu0 = _cpu(_all_pids())
        t0 = time.perf_counter()
        deadline = time.monotonic() + timeout
        while _one(url, "SELECT count(*) FROM continuum_runs WHERE state = 'completed'") < runs:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{n_workers} workers did not finish {runs} runs in {timeout:g}s")
            time.sleep(0.2)
        wall = time.perf_counter() - t0
        backends = _backend_pids(url)  # pooled connections live as long as the workers
        commits1, busy1 = _xact_commit(url), _machine_busy()
        cpu1 = _cpu(pids + backends)
        wcpu = sum(cpu1[p] - cpu0.get(p, 0.0) for p in pids if p in cpu1)
        pgcpu = sum(cpu1[p] - cpu0.get(p, 0.0) for p in backends if p in cpu1)
        in_window = max(1, runs - done0)
        # Steady state: the rate between the 20th and the 80th percentile of completion times,
        # so neither the staggered start of the workers nor the tail counts.
        middle = float(_one(url, """
            SELECT extract(epoch FROM percentile_disc(0.8) WITHIN GROUP (ORDER BY completed_at)
                                    - percentile_disc(0.2) WITHIN GROUP (ORDER BY completed_at))
              FROM continuum_runs"""))
        steady = 0.6 * runs / middle if middle > 0 else float("nan")
        events = int(_one(url, "SELECT count(*) FROM continuum_events"))
        return {
            "benchmark": "workers",
            "workers": n_workers,
            "runs": runs,
            "steps": steps,
            "activity_concurrency": concurrency,
            "runs_per_s": round(steady, 1),
            "steps_per_s": round(steady * steps, 1),
            "events_per_s": round(steady * events / runs, 1),
            "window_runs_per_s": round(in_window / wall, 1),
            "commits_per_s": round((commits1 - commits0) / wall, 1),
            "commits_per_run": round((commits1 - commits0) / in_window, 2),
            "window_s": round(wall, 2),
            "completed_before_all_ready": done0,
            "client_insert_runs_per_s": round(runs / insert_s, 1),
            "machine_cpu_busy_pct": round(100.0 * (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]), 1),
            "workers_cpu_cores": round(wcpu / wall, 2),
            "backends_cpu_cores": round(pgcpu / wall, 2),
            "worker_cpu_ms_per_run": round(1000 * wcpu / in_window, 2),
            "backend_cpu_ms_per_run": round(1000 * pgcpu / in_window, 2),
            "cores": os.cpu_count() or 1,
        }
    finally:
        for w in workers:
            w.stop()
        _drop_db(admin, name)


def pgbench_ceiling(admin: str, clients: int, seconds: int) -> dict[str, Any]:
    """Commits/s of a one-row INSERT per transaction from ``clients`` connections (pgbench)."""
    name, url = _create_db(admin)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE bench_insert (id bigserial PRIMARY KEY, v int NOT NULL)")
        with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
            script.write("INSERT INTO bench_insert (v) VALUES (1);\n")
        params = conninfo_to_dict(url)
        env = {**os.environ, "PGPASSWORD": str(params.get("password", ""))}
        argv = ["pgbench", "-n", "-f", script.name, "-c", str(clients), "-j", str(min(clients, os.cpu_count() or 1)),
                "-T", str(seconds), "-d", url]
        out = subprocess.run(argv, capture_output=True, text=True, env=env, check=True, timeout=seconds + 60).stdout  # noqa: S603
        tps = next(float(line.split("=")[1].split()[0]) for line in out.splitlines() if line.startswith("tps"))
        return {"benchmark": "pgbench_insert", "clients": clients, "commits_per_s": round(tps, 1)}
    finally:
        os.unlink(script.name)
        _drop_db(admin, name)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--admin-url", default=os.environ.get("CONTINUUM_TEST_PG15_URL",
                                                          "postgresql://postgres@127.0.0.1:5432/postgres"),
                   help="a superuser conninfo of the server; scratch databases are created there")
    p.add_argument("--workers", default="1,2,4,8", help="comma-separated worker counts")
    p.add_argument("--runs", type=int, default=2000)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=8, help="activity concurrency of each worker")
    p.add_argument("--lease-ttl", type=float, default=30.0)
    p.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per scenario")
    p.add_argument("--pgbench-seconds", type=int, default=5, help="0 skips the pgbench ceiling")
    args = p.parse_args(argv)
    counts = [int(x) for x in args.workers.split(",") if x.strip()]
    if not counts or min(counts) < 1:
        p.error("--workers takes positive integers, e.g. 1,2,4,8")
    with psycopg.connect(args.admin_url, autocommit=True) as conn:
        settings = {k: conn.execute(f"SHOW {k}").fetchone()[0]  # type: ignore[index]
                    for k in ("server_version", "synchronous_commit", "fsync", "max_connections")}
    print(json.dumps({"benchmark": "workers_setup", **settings, "cores": os.cpu_count()}), flush=True)
    rows = []
    for n in counts:
        row = run_scenario(args.admin_url, n, args.runs, args.steps, args.concurrency, args.lease_ttl, args.timeout)
        print(json.dumps(row), flush=True)
        rows.append(row)
    ceilings = []
    if args.pgbench_seconds > 0:
        for clients in sorted({4, 4 * max(counts)}):  # a worker's pool has 4 connections
            ceilings.append(pgbench_ceiling(args.admin_url, clients, args.pgbench_seconds))
            print(json.dumps(ceilings[-1]), flush=True)
    print(json.dumps(summarize(rows, ceilings)), flush=True)
    return 0


def summarize(rows: list[dict[str, Any]], ceilings: list[dict[str, Any]]) -> dict[str, Any]:
    """Where the rate stops growing (the first worker count after which one more step of workers
    adds less than 10 %), and what bounds it there: the machine's CPU when it is (nearly) all
    busy, the server's commit rate when the transactions come near pgbench's ceiling."""
    rates = {r["workers"]: r["runs_per_s"] for r in rows}
    counts = sorted(rates)
    stops = next((a for a, b in zip(counts, counts[1:], strict=False) if rates[b] < 1.1 * rates[a]), counts[-1])
    at = next(r for r in rows if r["workers"] == stops)
    ceiling = max((c["commits_per_s"] for c in ceilings), default=None)
    cpu_ms = at["worker_cpu_ms_per_run"] + at["backend_cpu_ms_per_run"]
    if at["machine_cpu_busy_pct"] >= 90:
        bound = f"CPU: the machine's {at['cores']} cores {at['machine_cpu_busy_pct']:g} % busy"
    elif ceiling is not None and at["commits_per_s"] >= 0.8 * ceiling:
        bound = "commits: the server's commit rate near pgbench's ceiling"
    else:
        bound = "neither CPU nor commits saturated: latency (too few runs in flight)"
    return {
        "benchmark": "workers_summary",
        "runs_per_s": {str(n): rates[n] for n in counts},
        "stops_growing_at_workers": stops,
        "bound": bound,
        "cpu_ms_per_run": round(cpu_ms, 2),
        # C cores / (worker + backend CPU per run): the most this machine can do, all else idle
        "cpu_bound_runs_per_s": round(1000 * at["cores"] / cpu_ms, 1) if cpu_ms > 0 else None,
        "commits_per_s": at["commits_per_s"],
        "pgbench_commits_per_s": ceiling,
        "share_of_pgbench_ceiling_pct": round(100 * at["commits_per_s"] / ceiling, 1) if ceiling else None,
    }


if __name__ == "__main__":
    raise SystemExit(main())
