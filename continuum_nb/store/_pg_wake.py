"""The statements of one wake, queued on a pipelined connection (``PostgresStore.commit_wake``
and ``create_run(first_wake=...)``). Only the kinds of rows a wake has are sent."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg

from .._json import dumps
from . import _pg_sql as q
from .base import FINISHED_STATES, Wake

__all__ = ["jsonb_or_null", "queue_wake"]


def jsonb_or_null(value: Any) -> str | None:
    """A nullable jsonb parameter: SQL NULL for None."""
    return None if value is None else dumps(value)


_j = jsonb_or_null


def queue_wake(conn: psycopg.Connection[Any], wake: Wake, run_id: UUID) -> psycopg.Cursor[Any]:
    """Queue the statements of one wake (inside the caller's pipelined transaction, after FENCE):
    one statement per rarer kind of row present (timers, signals, outcomes, cancellations), then
    WAKE_MAIN (seq check, events, tasks, the run row, NOTIFY).

    Returns the cursor of WAKE_MAIN, whose first column is signal_pending."""
    run = {"run": run_id}
    if wake.new_timers:
        conn.execute(q.INSERT_TIMERS, {
            **run,
            "ids": [t.id for t in wake.new_timers],
            "seqs": [t.seq for t in wake.new_timers],
            "fires": [t.fires_at for t in wake.new_timers],
        })
    if wake.fired_timers:
        conn.execute(q.FIRE_TIMERS, {**run, "ids": list(wake.fired_timers)})
    if wake.consumed_signals:
        conn.execute(q.CONSUME_SIGNALS, {
            **run,
            "ids": list(wake.consumed_signals),
            "seqs": list(wake.consumed_signals.values()),
        })
    if wake.task_outcomes:
        outs = wake.task_outcomes
        conn.execute(q.APPLY_OUTCOMES, {
            **run,
            "ids": [o.task_id for o in outs],
            "states": [o.state for o in outs],
            "results": [_j(o.result) for o in outs],
            "errors": [_j(o.error) for o in outs],
        })
        idem = [o for o in outs if o.state == "completed" and o.idempotency is not None]
        if idem:
            conn.execute(q.INSERT_RESULTS, {
                **run,
                "modules": [o.idempotency[0] for o in idem if o.idempotency],
                "keys": [o.idempotency[1] for o in idem if o.idempotency],
                "seqs": [o.seq for o in idem],
                "results": [dumps(o.result) for o in idem],
            })
    if wake.cancelled_tasks:
        conn.execute(q.CANCEL_TASKS, {**run, "ids": list(wake.cancelled_tasks)})
    events, tasks = wake.events, wake.new_tasks
    return conn.execute(q.WAKE_MAIN, {
        **run,
        "last": events[0].seq - 1 if events else None,
        "seqs": [e.seq for e in events],
        "types": [e.event_type for e in events],
        "payloads": [dumps(e.payload) for e in events],
        "t_ids": [t.id for t in tasks],
        "t_seqs": [t.seq for t in tasks],
        "t_mfas": [dumps(t.args) for t in tasks],
        "t_acts": [t.activity for t in tasks],
        "t_attempts": [t.attempt for t in tasks],
        "t_avail": [t.available_at for t in tasks],
        "t_keys": [t.idempotency_key for t in tasks],
        "t_mine": [t.lease_to_self for t in tasks],
        "run_text": str(run_id),
        "names": list(wake.awaiting_signals),
        "awaited": list(getattr(wake, "awaiting_tasks", ()) or ()),
        "state": wake.state,
        "result": _j(wake.result),
        "error": _j(wake.error),
        "now": wake.now,
        "next": wake.next_wakeup_at,
        "finished": wake.state in FINISHED_STATES,
        "version": wake.version_hash,
        "trace": wake.trace_context,
        "release": wake.release,
        "ttl": wake.lease_ttl,
    })
