"""The DBOS Transact side of benchmarks/compare_dbos.py (runs in a venv with dbos==3.4.0).

    python benchmarks/_dbos_workload.py --database-url URL --workflows N --steps S --concurrency C...

Same shape as benchmarks/throughput.py: S steps that return a small dict, C callers each starting a
workflow and waiting for its result. One JSON object per line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from typing import Any

from dbos import DBOS, DBOSConfig


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--database-url", required=True)
    p.add_argument("--workflows", type=int, default=300)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1])
    p.add_argument("--warmup", type=int, default=20)
    args = p.parse_args()
    steps = args.steps

    @DBOS.step()
    def step(i: int, n: int) -> dict:
        return {"i": i, "n": n + 1}

    @DBOS.workflow()
    def bench_workflow(n: int) -> int:
        for i in range(steps):
            n = step(i, n)["n"]
        return n

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

        cpu0, t0 = time.process_time(), time.perf_counter()
        threads = [threading.Thread(target=caller) for _ in range(c)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        lat.sort()
        print(json.dumps({
            "scenario": f"{steps}-step workflows, {c} in flight", "engine": "dbos 3.4.0", "concurrency": c,
            "workflows": args.workflows, "steps": steps, "workflows_per_s": round(args.workflows / elapsed, 1),
            "lat_ms": {"p50": round(lat[len(lat) // 2], 3), "p95": round(lat[int(len(lat) * 0.95)], 3),
                       "mean": round(statistics.mean(lat), 3)},
            "client_cpu_ms_per_workflow": round(cpu * 1000 / args.workflows, 3),
        }), flush=True)
    DBOS.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
