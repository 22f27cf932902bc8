"""A synthetic run of any size for the observer's tests and benchmarks, written with COPY.

The journal is what a long pipeline writes: activities named fetch / parse / store one after the
other (every 97th fails once and is retried as a new activity), a side effect every 500 events, a
5 s timer in the middle and a signal wait at the end (open: the run is suspended on it).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg

NAMES = ("fetch", "parse", "store")


def journal(n_events: int, started: datetime) -> list[tuple[int, str, dict[str, Any], datetime]]:
    """(seq, event_type, payload, inserted_at) for about ``n_events`` events."""
    out: list[tuple[int, str, dict[str, Any], datetime]] = []
    t = 0.0   # ms since the start
    i = 0
    timer_done = False
    while len(out) < n_events - 2:
        seq = len(out) + 1
        if not timer_done and len(out) >= n_events // 2:
            out.append((seq, "timer_started", {"ordinal": 0, "duration_s": 5.0}, started + timedelta(milliseconds=t)))
            t += 5000
            out.append((seq + 1, "timer_fired", {"started_seq": seq}, started + timedelta(milliseconds=t)))
            timer_done = True
            continue
        if len(out) % 500 == 499:
            out.append((seq, "side_effect", {"kind": "uuid4", "ordinal": i, "value": str(uuid.UUID(int=i))},
                        started + timedelta(milliseconds=t)))
            continue
        name = NAMES[i % 3]
        out.append((seq, "activity_scheduled", {"activity": name, "ordinal": i, "args": [i], "kwargs": {}},
                    started + timedelta(milliseconds=t)))
        t += 1 + (i % 5)
        failed = i % 97 == 96
        kind = "activity_failed" if failed else "activity_completed"
        body: dict[str, Any] = {"activity": name, "scheduled_seq": seq, "attempts": 1}
        body.update({"error": {"type": "IOError", "message": f"item {i}", "traceback": ""}} if failed
                    else {"result": {"item": i, "rows": i % 17}})
        out.append((seq + 1, kind, body, started + timedelta(milliseconds=t)))
        t += 2
        i += 1
    seq = len(out) + 1
    out.append((seq, "signal_awaited", {"name": "approve", "ordinal": 0, "timeout_s": None},
                started + timedelta(milliseconds=t)))
    return out


def insert_run(url: str, n_events: int, *, workflow: str = "pipeline_at_size") -> uuid.UUID:
    """A suspended run of ``workflow`` with about ``n_events`` events, started so that its last
    event is a few seconds ago (the current month's partition holds them all)."""
    run_id = uuid.uuid4()
    span = journal(n_events, datetime(2000, 1, 1, tzinfo=timezone.utc))
    length = span[-1][3] - span[0][3]
    started = datetime.now(timezone.utc) - length - timedelta(seconds=2)
    rows = journal(n_events, started)
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO continuum_runs (id, workflow, version_hash, state, input, started_at, last_seq) "
            "VALUES (%s, %s, 'v-synthetic', 'suspended', '{}', %s, %s)",
            (run_id, workflow, started, rows[-1][0] if rows else 0),
        )
        with conn.cursor() as cur, cur.copy(
            "COPY continuum_events (run_id, seq, event_type, payload, inserted_at) FROM STDIN"
        ) as copy:
            for seq, kind, payload, at in rows:
                copy.write_row((run_id, seq, kind, json.dumps(payload), at))
    return run_id
