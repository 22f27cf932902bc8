"""A signal sent from another process to a waiting run: until the run has resumed and committed.

    python benchmarks/signal_latency.py --database-url URL [--signals 100] [--warmup 5]

The database must already be migrated. This process runs the engine (an instance with default
settings); it starts a run that awaits ``cn.signal("go")`` and returns the payload, and waits
until the run's wait is journaled and its lease given back (a run waiting on a signal with no
timeout gives back its lease and coroutine in that same commit: a later signal resumes it by a
claim, a journal read and a replay). A second process (this script with ``--send``, a pure
client: ``run_engine=False``) then sends the signal with ``cn.signal``, putting
``time.monotonic_ns()`` in the payload just before the call; here ``cn.wait`` returns when the
run's final commit is done (a run that ended on this engine is reported to local waiters without
a read), and the latency is the difference (CLOCK_MONOTONIC is one clock for every process of a
Linux machine). One run at a time. One JSON object on stdout: p50/p95/mean of the latency, and
of the ``cn.signal`` call alone in the sender. ``--held``: the run waits with a 10-minute timeout
and the engine's ``release_after`` is an hour, so the run stays held by the engine (no claim, no
journal read, no replay when the signal comes): the difference is what the release costs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402

import continuum_nb as cn  # noqa: E402
from continuum_nb.workflow import WorkflowDef  # noqa: E402


async def bench_signal_wait(i: int) -> Any:
    return await cn.signal("go")


async def bench_signal_wait_held(i: int) -> Any:
    # a due time (the timeout) nearer than the engine's release_after: the run stays held
    return await cn.signal("go", timeout=cn.minutes(10))


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 3)


def _suspended(conninfo: str, run_id: str, released: bool, timeout: float = 30.0) -> None:
    """Until the run has journaled its wait (and given back its lease, if ``released``); polled:
    the benchmark's own set-up, before the measured part."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(conninfo, autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT state, lease_owner, last_seq FROM continuum_runs WHERE id = %s",
                               (run_id,)).fetchone()
            if row is not None and row[0] == "suspended" and (row[1] is None or not released) and (row[2] or 0) > 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"run {run_id} did not suspend on its signal: {row}")
            time.sleep(0.002)


def send(conninfo: str) -> int:
    """The sender: one run id a line on stdin; signals it, answers the call's duration."""
    inst = cn.Instance(f"bench-signal-send-{uuid.uuid4().hex[:6]}", database_url=conninfo, run_engine=False,
                       auto_migrate=False, pool_size=2)
    try:
        print(json.dumps({"ready": True}), flush=True)
        for line in sys.stdin:
            run_id = line.strip()
            if not run_id:
                continue
            t0 = time.monotonic_ns()
            cn.signal(run_id, "go", {"sent_ns": t0}, instance=inst)
            print(json.dumps({"send_ms": (time.monotonic_ns() - t0) / 1e6}), flush=True)
    finally:
        inst.close()
    return 0


def measure(conninfo: str, signals: int, warmup: int, held: bool = False) -> dict[str, Any]:
    settings: dict[str, Any] = {"release_after": 3600.0} if held else {}
    inst = cn.Instance(f"bench-signal-wait-{uuid.uuid4().hex[:6]}", database_url=conninfo, auto_migrate=False,
                       **settings)
    released = not held
    fn = bench_signal_wait_held if held else bench_signal_wait
    wf = WorkflowDef(fn, name=fn.__name__, source=fn.__name__, origin="module")
    inst.registry.register(wf)
    sender = subprocess.Popen(  # noqa: S603 - this script
        [sys.executable, __file__, "--send", "--database-url", conninfo],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert sender.stdin is not None and sender.stdout is not None
    latencies: list[float] = []
    sends: list[float] = []
    try:
        if not sender.stdout.readline():
            raise RuntimeError("the sender did not start")
        for i in range(warmup + signals):
            run = cn.start(wf, {"i": i}, instance=inst)
            _suspended(conninfo, run.id, released)
            sender.stdin.write(run.id + "\n")
            sender.stdin.flush()
            got = cn.wait(run.id, timeout=60, instance=inst)
            done = time.monotonic_ns()
            sent = json.loads(sender.stdout.readline())
            if i >= warmup:
                latencies.append((done - int(got["sent_ns"])) / 1e6)
                sends.append(float(sent["send_ms"]))
    finally:
        sender.stdin.close()
        sender.wait(30)
        inst.close()
    return {
        "scenario": "signal from another process to a waiting run, until resumed and committed",
        "engine": "continuum_nb", "signals": signals, "run_released_while_waiting": released,
        "lat_ms": {"p50": _pct(latencies, 0.5), "p95": _pct(latencies, 0.95),
                   "mean": round(statistics.mean(latencies), 3)},
        "send_call_ms": {"p50": _pct(sends, 0.5), "p95": _pct(sends, 0.95)},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--database-url", required=True)
    p.add_argument("--signals", type=int, default=100)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--held", action="store_true",
                   help="the run waits with a 10-minute timeout and release_after is an hour: it stays held")
    p.add_argument("--send", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.send:
        return send(args.database_url)
    print(json.dumps(measure(args.database_url, args.signals, args.warmup, args.held)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
