"""The statements of one wake (``PostgresStore.commit_wake`` and ``create_run(first_wake=...)``).
Only the kinds of rows a wake has are sent."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from .._json import dumps
from . import _pg_sql as q
from .base import FINISHED_STATES, Wake

__all__ = ["jsonb_or_null", "wake_statements"]


def jsonb_or_null(value: Any) -> str | None:
    """A nullable jsonb parameter: SQL NULL for None."""
    return None if value is None else dumps(value)


_j = jsonb_or_null


def wake_statements(wake: Wake, run_id: UUID) -> list[tuple[str, dict[str, Any]]]:
    """The statements of one wake, to send after FENCE: one per rarer kind of row present (timers,
    signals, outcomes, cancellations), then WAKE_MAIN (seq check, events, tasks, the run row,
    NOTIFY), whose first column is signal_pending.

    Pure Python: every parameter (JSON included) is built before anything is sent, so a bad value
    fails here with nothing written."""
    out: list[tuple[str, dict[str, Any]]] = []
    run = {"run": run_id}
    if wake.new_timers:
        out.append((q.INSERT_TIMERS, {
            **run,
            "ids": [t.id for t in wake.new_timers],
            "seqs": [t.seq for t in wake.new_timers],
            "fires": [t.fires_at for t in wake.new_timers],
        }))
    if wake.fired_timers:
        out.append((q.FIRE_TIMERS, {**run, "ids": list(wake.fired_timers)}))
    if wake.consumed_signals:
        out.append((q.CONSUME_SIGNALS, {
            **run,
            "ids": list(wake.consumed_signals),
            "seqs": list(wake.consumed_signals.values()),
        }))
    if wake.task_outcomes:
        outs = wake.task_outcomes
        out.append((q.APPLY_OUTCOMES, {
            **run,
            "ids": [o.task_id for o in outs],
            "states": [o.state for o in outs],
            "results": [_j(o.result) for o in outs],
            "errors": [_j(o.error) for o in outs],
        }))
        idem = [o for o in outs if o.state == "completed" and o.idempotency is not None]
        if idem:
            out.append((q.INSERT_RESULTS, {
                **run,
                "modules": [o.idempotency[0] for o in idem if o.idempotency],
                "keys": [o.idempotency[1] for o in idem if o.idempotency],
                "seqs": [o.seq for o in idem],
                "results": [dumps(o.result) for o in idem],
            }))
    if wake.cancelled_tasks:
        out.append((q.CANCEL_TASKS, {**run, "ids": list(wake.cancelled_tasks)}))
    events, tasks = wake.events, wake.new_tasks
    out.append((q.WAKE_MAIN, {
        **run,
        "last": events[0].seq - 1 if events else None,
        "events": dumps([[e.seq, e.event_type, e.payload] for e in events]),
        "tasks": dumps([
            [str(t.id), t.seq, t.args, t.activity, t.attempt, t.available_at.isoformat(),
             t.idempotency_key, t.lease_to_self]
            for t in tasks
        ]),
        "run_text": str(run_id),
        "names": dumps(list(wake.awaiting_signals)),
        "awaited": dumps(list(getattr(wake, "awaiting_tasks", ()) or ())),
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
    }))
    return out
