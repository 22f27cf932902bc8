"""The values of one wake (``PostgresStore.commit_wake`` and ``create_run(first_wake=...)``):
one call of the ``continuum_commit_wake`` function (migration 20260701000003)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from .base import FINISHED_STATES, NewRun, Wake
from .payloads import dumps

__all__ = ["jsonb_or_null", "new_run_json", "wake_args"]


def jsonb_or_null(value: Any) -> str | None:
    """A nullable jsonb parameter: SQL NULL for None."""
    return None if value is None else dumps(value)


_j = jsonb_or_null


def _rows_or_null(rows: list[Any]) -> str | None:
    """A JSON array of rows, or SQL NULL when there are none (the function skips that kind)."""
    return dumps(rows) if rows else None


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def new_run_json(run: NewRun, owner: str) -> str:
    """The ``p_new_run`` argument: a run inserted by the wake call, leased to ``owner``."""
    return dumps({
        "workflow": run.workflow, "version": run.version_hash, "input": run.input,
        "trace": None if run.trace_context is None else bytes(run.trace_context).hex(),
        "started": _ts(run.started_at), "retention": _ts(run.retention_until), "owner": owner,
    })


def wake_args(wake: Wake, run_id: UUID, new_run: str | None = None,
              lease_ttl: float | None = None) -> list[str | None]:
    """The values of ``continuum_commit_wake``'s parameters for ``wake``, in order
    (``_pg_sql.WAKE_PARAMS``), each in PostgreSQL's text form (None for SQL NULL). Every kind
    of row travels as one JSON array of arrays: far cheaper to build than a typed array per
    column. ``new_run`` (``new_run_json``): insert the run with this first wake, leased for
    ``lease_ttl`` seconds (default: the wake's).

    Pure Python: every value (JSON included) is built before anything is sent, so a bad value
    fails here with nothing written."""
    events, tasks, outs = wake.events, wake.new_tasks, wake.task_outcomes
    idem = [o for o in outs if o.state == "completed" and o.idempotency is not None]
    trace = wake.trace_context
    return [
        str(run_id),
        str(wake.lease_token),
        new_run,
        str(events[0].seq - 1) if events else None,
        dumps([[e.seq, e.event_type, e.payload] for e in events]),
        dumps([
            [str(t.id), t.seq, t.args, t.activity, t.attempt, t.available_at.isoformat(),
             t.idempotency_key, t.lease_to_self]
            for t in tasks
        ]),
        _rows_or_null([[str(o.task_id), o.state, o.result, o.error] for o in outs]),
        _rows_or_null([[o.idempotency[0], o.idempotency[1], o.seq, o.result] for o in idem if o.idempotency]),
        _rows_or_null([[str(t.id), t.seq, t.fires_at.isoformat()] for t in wake.new_timers]),
        _rows_or_null([str(t) for t in wake.fired_timers]),
        _rows_or_null([[sig, seq] for sig, seq in wake.consumed_signals.items()]),
        _rows_or_null([str(t) for t in wake.cancelled_tasks]),
        dumps(list(wake.awaiting_signals)),
        dumps(list(wake.awaiting_tasks or ())),
        wake.state,
        _j(wake.result),
        _j(wake.error),
        _ts(wake.now),
        _ts(wake.next_wakeup_at),
        _bool(wake.state in FINISHED_STATES),
        wake.version_hash,
        None if trace is None else "\\x" + bytes(trace).hex(),
        _bool(wake.release),
        repr(float(wake.lease_ttl if lease_ttl is None else lease_ttl)),
    ]
