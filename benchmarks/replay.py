"""Replay cost, one JSON object per line on stdout.

    python benchmarks/replay.py [--database-url URL] [--events 10000]

- ``in_memory``: µs per replayed event for an N-event journal (N/2 activities: scheduled +
  completed), pure replay of the workflow coroutine against the journal, no I/O.
- ``from_postgres``: the same journal written to a fresh run in the database, then a full resume:
  load the journal through the store and replay it (what an engine does when it claims the run).
- ``from_postgres_with_snapshot``: the same resume when a snapshot covers the journal
  (``snapshot_threshold``): load the newest snapshot plus the events after it, replay (every
  compacted step still validated). Reports the speed-up over the full resume. Both resumes run
  twice: with tiny activity arguments, and with ~512-byte arguments (a record passed to each step),
  which the journal keeps and a snapshot drops.

``resume_ms`` / ``speedup_vs_full`` are best-of-``--repeat``; the ``*_median`` fields are medians
(the machine is shared: compare runs by those too).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import continuum_nb as cn  # noqa: E402
from continuum_nb.replay import Completed, Replayer  # noqa: E402
from continuum_nb.store.base import Event  # noqa: E402


@cn.activity(name="bench.replay_step")
def replay_step(i: int) -> int:
    return i


async def long_workflow(steps: int) -> int:
    total = 0
    for i in range(steps):
        total += await replay_step(i)
    return total


class NothingLive:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def task_outcome(self, seq: int) -> None:
        return None

    def signal(self, name: str, skip: set[int]) -> None:
        return None


def make_journal(steps: int, arg_bytes: int = 0) -> list[Event]:
    events: list[Event] = []
    seq = 0
    record = {"customer": "x" * max(0, arg_bytes - 40), "lines": [1, 2, 3]} if arg_bytes else None
    for i in range(steps):
        seq += 1
        events.append(Event(seq, "activity_scheduled", {
            "activity": "bench.replay_step", "ordinal": i, "args": [i] if record is None else [i, record],
            "kwargs": {}, "idempotency_key": None, "task_id": str(uuid.uuid4())}))
        seq += 1
        events.append(Event(seq, "activity_completed", {
            "activity": "bench.replay_step", "scheduled_seq": seq - 1, "result": i, "attempts": 1,
            "idempotency_hit": False}))
    return events


def replay_once(journal: list[Event], steps: int) -> float:
    t0 = time.perf_counter()
    rep = Replayer("bench", "long_workflow", lambda: long_workflow(steps), journal)
    out = rep.advance(NothingLive())
    dt = time.perf_counter() - t0
    assert isinstance(out, Completed) and out.result == steps * (steps - 1) // 2, out
    return dt


def bench_memory(events: int, repeat: int) -> dict[str, Any]:
    steps = events // 2
    journal = make_journal(steps)
    times = [replay_once(journal, steps) for _ in range(repeat)]
    best = min(times)
    return {"scenario": "replay in memory", "events": len(journal), "repeat": repeat,
            "us_per_event": round(best * 1e6 / len(journal), 3),
            "us_per_event_median": round(statistics.median(times) * 1e6 / len(journal), 3),
            "total_ms": round(best * 1000, 2)}


def bench_postgres(url: str, events: int, repeat: int, arg_bytes: int = 0) -> list[dict[str, Any]]:
    from continuum_nb.replay.snapshots import build_snapshot, replayer_from
    from continuum_nb.store.base import NewRun, Snapshot, Wake
    from continuum_nb.store.postgres import PostgresStore
    from continuum_nb.workflow import WorkflowDef

    steps = events // 2
    journal = make_journal(steps, arg_bytes)
    store = PostgresStore(url)
    wf = WorkflowDef(long_workflow, name="long_workflow")
    run_id = uuid.uuid4()
    now = datetime.now(timezone.utc)
    token = store.create_run(NewRun(run_id, wf.name, wf.version_hash, {"steps": steps}, now), owner="bench")
    assert token is not None
    for i in range(0, len(journal), 1000):
        store.commit_wake(Wake(run_id=run_id, lease_token=token, now=now, state="suspended",
                               events=journal[i:i + 1000]))
    out: list[dict[str, Any]] = []

    def full() -> float:
        t0 = time.perf_counter()
        loaded = store.load_journal(run_id)
        rep = Replayer(str(run_id), wf.name, lambda: long_workflow(steps), loaded)
        assert isinstance(rep.advance(NothingLive()), Completed)
        return time.perf_counter() - t0

    full_times = [full() for _ in range(repeat)]
    shape = f"activity arguments of ~{arg_bytes} bytes" if arg_bytes else "small arguments"
    out.append({"scenario": f"resume from postgres (full journal; {shape})", "events": len(journal),
                "us_per_event": round(min(full_times) * 1e6 / len(journal), 3),
                "resume_ms": round(min(full_times) * 1000, 2),
                "resume_ms_median": round(statistics.median(full_times) * 1000, 2)})

    snap = build_snapshot(run_id, wf.version_hash, journal)
    store.save_snapshot(Snapshot(run_id, snap.through_seq, wf.version_hash, snap.payload,
                                 len(json.dumps(snap.payload))), token)

    def with_snapshot() -> float:
        t0 = time.perf_counter()
        loaded = store.load_snapshot(run_id)
        assert loaded is not None
        rest = store.load_journal(run_id, after_seq=loaded.through_seq)
        rep = replayer_from(str(run_id), wf.name, lambda: long_workflow(steps), loaded, rest)
        assert isinstance(rep.advance(NothingLive()), Completed)
        return time.perf_counter() - t0

    snap_times = [with_snapshot() for _ in range(repeat)]
    out.append({"scenario": f"resume from postgres (snapshot; {shape})", "events": len(journal),
                "snapshot_bytes": len(json.dumps(snap.payload)),
                "format": snap.payload["format"],
                "resume_ms": round(min(snap_times) * 1000, 2),
                "resume_ms_median": round(statistics.median(snap_times) * 1000, 2),
                "speedup_vs_full": round(min(full_times) / min(snap_times), 2),
                "speedup_vs_full_median": round(statistics.median(full_times) / statistics.median(snap_times), 2)})
    store.close()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--database-url")
    p.add_argument("--events", type=int, default=10_000)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args(argv)
    print(json.dumps(bench_memory(args.events, args.repeat)), flush=True)
    if args.database_url:
        for arg_bytes in (0, 512):
            for row in bench_postgres(args.database_url, args.events, args.repeat, arg_bytes):
                print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
