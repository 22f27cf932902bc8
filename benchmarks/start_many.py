"""Bulk start rate, one JSON object per line on stdout.

    python benchmarks/start_many.py --database-url URL [--runs 10000] [--repeat 3]

Starts ``--runs`` runs of one workflow with ``cn.start_many`` from a client instance
(``run_engine=False``: nothing claims them while the clock runs), then the same number with
``cn.start`` one by one for comparison (``--compare`` runs, default 1,000, scaled to the rate).
Each repeat uses fresh run ids; the runs are cancelled-free rows left in the database (use a
scratch database). Reports runs/s (best and median of ``--repeat``) and the database's commits.
The database must already be migrated (``continuum migrate --database-url URL``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import continuum_nb as cn  # noqa: E402


async def bench_bulk_item(day: str, n: int) -> int:
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--compare", type=int, default=1_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    inst = cn.Instance("bench-bulk", database_url=args.database_url, run_engine=False)
    wf = cn.workflow(name="bench_bulk_item", instance=inst)(bench_bulk_item)
    inst.save_version(wf)
    try:
        rates = []
        for _ in range(args.repeat):
            inputs = [{"day": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}", "n": i} for i in range(args.runs)]
            t0 = time.perf_counter()
            runs = cn.start_many(wf, inputs, attributes={"bench": "bulk"}, instance=inst)
            seconds = time.perf_counter() - t0
            assert len(runs) == args.runs and not any(r.existing for r in runs)
            rates.append(args.runs / seconds)
        print(json.dumps({"benchmark": "start_many", "runs": args.runs, "repeat": args.repeat,
                          "runs_per_s_best": round(max(rates)), "runs_per_s_median": round(statistics.median(rates)),
                          "target_runs_per_s": 5000}), flush=True)
        t0 = time.perf_counter()
        for i in range(args.compare):
            cn.start(wf, {"day": "2026-01-01", "n": i}, instance=inst)
        seconds = time.perf_counter() - t0
        print(json.dumps({"benchmark": "start_one_by_one", "runs": args.compare,
                          "runs_per_s": round(args.compare / seconds)}), flush=True)
    finally:
        inst.close()


if __name__ == "__main__":
    main()
