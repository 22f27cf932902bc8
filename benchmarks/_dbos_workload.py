"""The DBOS Transact side of benchmarks/compare_dbos.py (runs in a venv with dbos==3.4.0).

    python benchmarks/_dbos_workload.py --database-url URL --workflows N --steps S --concurrency C...

Same shape as benchmarks/throughput.py: S steps that return a small dict, C callers each starting a
workflow and waiting for its result; the same counters (``pg_stat_database.xact_commit`` of the
database, the server's WAL flushes, the backends' CPU from /proc, this process's CPU). One JSON
object per line.

With ``--signals N`` (after the throughput scenarios), the cross-process signal of
benchmarks/signal_latency.py, DBOS's way: a workflow here blocks in ``DBOS.recv("go")``; a second
process (this script with ``--send``, DBOS launched with an executor id of its own, so that it
recovers none of this one's workflows) calls ``DBOS.send`` with ``time.monotonic_ns()`` in the
message; the latency runs until the workflow's result is back here (``get_result()``). DBOS keeps
a workflow that waits in ``recv`` in memory, blocked on its thread.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
from dbos import DBOS, DBOSConfig

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._proc_cpu import ServerCpu  # noqa: E402


def _stat(url: str, sql: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


def xact_commits(url: str) -> int:
    return _stat(url, "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")


def settled_commits(url: str, timeout: float = 3.0) -> int:
    """xact_commit once the backends published it (up to a second late on PostgreSQL 15+)."""
    deadline = time.monotonic() + timeout
    last = xact_commits(url)
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = xact_commits(url)
        if now == last:
            return now
        last = now
    return last


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 3)


def send(url: str) -> int:
    """The sender: one workflow id a line on stdin; DBOS.send to it, answers the call's duration."""
    config: DBOSConfig = {"name": "continuum-compare", "system_database_url": url, "executor_id": "sender"}
    DBOS(config=config)
    DBOS.launch()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        wfid = line.strip()
        if not wfid:
            continue
        t0 = time.monotonic_ns()
        DBOS.send(wfid, {"sent_ns": t0}, topic="go")
        print(json.dumps({"send_ms": (time.monotonic_ns() - t0) / 1e6}), flush=True)
    DBOS.destroy()
    return 0


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--database-url", required=True)
    p.add_argument("--workflows", type=int, default=300)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--concurrency", type=int, nargs="*", default=[1])
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--signals", type=int, default=0, help="signals sent from another process (0: none)")
    p.add_argument("--send", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.send:
        return send(args.database_url)
    steps = args.steps
    ready = threading.Event()

    @DBOS.step()
    def step(i: int, n: int) -> dict:
        return {"i": i, "n": n + 1}

    @DBOS.workflow()
    def bench_workflow(n: int) -> int:
        for i in range(steps):
            n = step(i, n)["n"]
        return n

    @DBOS.workflow()
    def signal_waiter(i: int) -> Any:
        ready.set()  # in memory, for the benchmark's pacing: the next call blocks in recv
        return DBOS.recv("go", timeout_seconds=60)

    config: DBOSConfig = {"name": "continuum-compare", "system_database_url": args.database_url}
    DBOS(config=config)
    DBOS.launch()
    for i in range(args.warmup):
        DBOS.start_workflow(bench_workflow, i).get_result()
    for c in args.concurrency:
        lat: list[float] = []
        lock = threading.Lock()
        todo = iter(range(args.workflows))

        def caller(lock: threading.Lock = lock, todo: Any = todo, lat: list[float] = lat) -> None:
            while True:
                with lock:
                    i = next(todo, None)
                if i is None:
                    return
                t0 = time.perf_counter()
                r = DBOS.start_workflow(bench_workflow, i).get_result()
                dt = time.perf_counter() - t0
                assert r == i + steps
                with lock:
                    lat.append(dt * 1000)

        commits0 = xact_commits(args.database_url)
        syncs0 = _stat(args.database_url, "SELECT wal_sync FROM pg_stat_wal")
        server = ServerCpu(args.database_url)
        server.start()
        cpu0, t0 = time.process_time(), time.perf_counter()
        threads = [threading.Thread(target=caller) for _ in range(c)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        server_cpu, busy = server.stop()
        syncs = _stat(args.database_url, "SELECT wal_sync FROM pg_stat_wal") - syncs0
        # the measuring connections' own transactions (about 10) left out
        commits = settled_commits(args.database_url) - commits0 - 10
        lat.sort()
        print(json.dumps({
            "scenario": f"{steps}-step workflows, {c} in flight", "engine": "dbos 3.4.0", "concurrency": c,
            "workflows": args.workflows, "steps": steps, "workflows_per_s": round(args.workflows / elapsed, 1),
            "lat_ms": {"p50": round(lat[len(lat) // 2], 3), "p95": round(lat[int(len(lat) * 0.95)], 3),
                       "mean": round(statistics.mean(lat), 3)},
            "commits_per_workflow": round(commits / args.workflows, 2),
            "wal_syncs_per_workflow": round(syncs / args.workflows, 2),
            "client_cpu_ms_per_workflow": round(cpu * 1000 / args.workflows, 3),
            "server_cpu_ms_per_workflow": round(server_cpu * 1000 / args.workflows, 3),
            "machine_cpu_busy_pct": round(busy, 1),
        }), flush=True)
    if args.signals > 0:
        print(json.dumps(signal_latency(args, signal_waiter, ready)), flush=True)
    DBOS.destroy()
    return 0


def signal_latency(args: argparse.Namespace, waiter: Any, ready: threading.Event, warmup: int = 5) -> dict:
    sender = subprocess.Popen([sys.executable, __file__, "--send", "--database-url", args.database_url],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert sender.stdin is not None and sender.stdout is not None
    latencies: list[float] = []
    sends: list[float] = []
    try:
        while True:  # DBOS logs to stdout too: the sender is ready at its JSON line
            line = sender.stdout.readline()
            if not line:
                raise RuntimeError("the sender did not start")
            if line.startswith("{"):
                break
        for i in range(warmup + args.signals):
            ready.clear()
            handle = DBOS.start_workflow(waiter, i)
            if not ready.wait(30):
                raise RuntimeError("the waiting workflow did not start")
            sender.stdin.write(handle.get_workflow_id() + "\n")
            sender.stdin.flush()
            got = handle.get_result()
            done = time.monotonic_ns()
            line = sender.stdout.readline()
            while not line.startswith("{"):
                line = sender.stdout.readline()
            if i >= warmup:
                latencies.append((done - int(got["sent_ns"])) / 1e6)
                sends.append(float(json.loads(line)["send_ms"]))
    finally:
        sender.stdin.close()
        sender.wait(30)
    return {
        "scenario": "signal from another process to a waiting run, until resumed and committed",
        "engine": "dbos 3.4.0", "signals": args.signals,
        "lat_ms": {"p50": _pct(latencies, 0.5), "p95": _pct(latencies, 0.95), "mean": round(statistics.mean(latencies), 3)},
        "send_call_ms": {"p50": _pct(sends, 0.5), "p95": _pct(sends, 0.95)},
    }


if __name__ == "__main__":
    sys.exit(main())
