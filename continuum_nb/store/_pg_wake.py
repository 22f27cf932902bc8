"""The parameters of one wake (``PostgresStore.commit_wake`` and ``create_run(first_wake=...)``):
one call of the ``continuum_commit_wake`` function (migration 20260701000003)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from .._json import dumps
from .base import FINISHED_STATES, Wake

__all__ = ["jsonb_or_null", "wake_params"]


def jsonb_or_null(value: Any) -> str | None:
    """A nullable jsonb parameter: SQL NULL for None."""
    return None if value is None else dumps(value)


_j = jsonb_or_null


def _rows_or_null(rows: list[Any]) -> str | None:
    """A JSON array of rows, or SQL NULL when there are none (the function skips that kind)."""
    return dumps(rows) if rows else None


def wake_params(wake: Wake, run_id: UUID) -> dict[str, Any]:
    """The parameters of ``COMMIT_WAKE`` for ``wake``. Every kind of row travels as one JSON
    array of arrays (far cheaper for the client to build than a typed array per column).

    Pure Python: every parameter (JSON included) is built before anything is sent, so a bad value
    fails here with nothing written."""
    events, tasks, outs = wake.events, wake.new_tasks, wake.task_outcomes
    idem = [o for o in outs if o.state == "completed" and o.idempotency is not None]
    return {
        "run": run_id,
        "token": wake.lease_token,
        "last": events[0].seq - 1 if events else None,
        "events": dumps([[e.seq, e.event_type, e.payload] for e in events]),
        "tasks": dumps([
            [str(t.id), t.seq, t.args, t.activity, t.attempt, t.available_at.isoformat(),
             t.idempotency_key, t.lease_to_self]
            for t in tasks
        ]),
        "outcomes": _rows_or_null([[str(o.task_id), o.state, o.result, o.error] for o in outs]),
        "results": _rows_or_null([
            [o.idempotency[0], o.idempotency[1], o.seq, o.result] for o in idem if o.idempotency
        ]),
        "timers": _rows_or_null([[str(t.id), t.seq, t.fires_at.isoformat()] for t in wake.new_timers]),
        "fired": _rows_or_null([str(t) for t in wake.fired_timers]),
        "signals": _rows_or_null([[sig, seq] for sig, seq in wake.consumed_signals.items()]),
        "cancelled": _rows_or_null([str(t) for t in wake.cancelled_tasks]),
        "names": dumps(list(wake.awaiting_signals)),
        "awaited": dumps(list(wake.awaiting_tasks or ())),
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
    }
