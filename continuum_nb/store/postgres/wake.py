"""One wake on PostgreSQL: one call of the ``continuum_commit_wake`` function (migration
20260701000003, replaced by 20261207010000: the journal's end is checked against
``continuum_runs.last_seq``; and by 20261207070000: child runs), for ``PostgresStore.commit_wake`` and ``create_run(first_wake=...)``.

``wake_values`` builds the call's values (pure Python: a bad value fails before anything is sent),
``wake_args`` their text form for one call, group.py their JSON for a batch;
``exec_commit_wake`` runs the prepared call straight on libpq (the hot path).
"""

from __future__ import annotations

import weakref
from datetime import datetime
from typing import Any, cast
from uuid import UUID

import psycopg
from psycopg import errors as pgerrors
from psycopg.pq import ConnStatus, ExecStatus

from ..base import FINISHED_STATES, NewRun, Wake
from ..checks import check_first_wake, check_wake
from ..payloads import dumps
from ..starts import StartingWake
from . import sql as q
from .pool import Conn

__all__ = ["WakeRow", "checked_wake_values", "exec_commit_wake", "exec_commit_wake_once", "exec_commit_wakes",
           "jsonb_or_null", "new_run_value", "wake_args", "wake_text", "wake_values"]


def jsonb_or_null(value: Any) -> str | None:
    """A nullable jsonb parameter: SQL NULL for None."""
    return None if value is None else dumps(value)


def _rows(rows: list[Any]) -> list[Any] | None:
    """Rows of one kind, or None (SQL NULL) when there are none: the function skips that kind."""
    return rows or None


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def new_run_value(run: NewRun, owner: str) -> dict[str, Any]:
    """The ``p_new_run`` argument: a run inserted by the wake call, leased to ``owner``."""
    out = {
        "workflow": run.workflow, "version": run.version_hash, "input": run.input,
        "trace": None if run.trace_context is None else bytes(run.trace_context).hex(),
        "started": _ts(run.started_at), "retention": _ts(run.retention_until), "owner": owner,
    }
    if run.attributes:  # (migration 20261201000000) absent keys: what older clients send
        out["attributes"] = run.attributes
    if run.retention is not None:
        out["retention_s"] = run.retention.total_seconds()
    return out


# How each parameter of continuum_commit_wake travels as text (``wake_args``), in order.
_TEXT, _JSON, _BOOL, _FLOAT = range(4)
_KINDS = (_TEXT, _TEXT, _JSON, _TEXT, _JSON, _JSON, _JSON, _JSON, _JSON, _JSON, _JSON, _JSON, _JSON, _JSON,
          _TEXT, _JSON, _JSON, _TEXT, _TEXT, _BOOL, _TEXT, _TEXT, _BOOL, _FLOAT, _JSON, _JSON, _JSON)


def wake_values(wake: Wake, run_id: UUID, new_run: dict[str, Any] | None = None,
                lease_ttl: float | None = None) -> list[Any]:
    """The values of ``continuum_commit_wake``'s parameters for ``wake``, in order
    (``sql.COMMIT_WAKE``), each as a JSON value: what ``continuum_commit_wakes_json`` takes for
    one wake of a batch, and what ``wake_args`` turns into text. Every kind of row is one array
    of arrays (far cheaper to build than a typed array per column); None where the function
    takes SQL NULL. ``new_run`` (``new_run_value``): insert the run with this first wake, leased
    for ``lease_ttl`` seconds (default: the wake's)."""
    events, tasks, outs = wake.events, wake.new_tasks, wake.task_outcomes
    trace = wake.trace_context
    return [
        str(run_id),
        wake.lease_token,
        new_run,
        events[0].seq - 1 if events else None,
        [[e.seq, e.event_type, e.payload] for e in events],
        [
            [str(t.id), t.seq, t.args, t.activity, t.attempt, t.available_at.isoformat(),
             t.idempotency_key, t.lease_to_self]
            for t in tasks
        ],
        _rows([[str(o.task_id), o.state, o.result, o.error] for o in outs]),
        _rows([[o.idempotency[0], o.idempotency[1], o.seq, o.result] for o in outs
               if o.state == "completed" and o.idempotency is not None]),
        _rows([[str(t.id), t.seq, t.fires_at.isoformat()] for t in wake.new_timers]),
        _rows([str(t) for t in wake.fired_timers]),
        _rows([[sig, seq] for sig, seq in wake.consumed_signals.items()]),
        _rows([str(t) for t in wake.cancelled_tasks]),
        list(wake.awaiting_signals),
        list(wake.awaiting_tasks or ()),
        wake.state,
        wake.result,
        wake.error,
        _ts(wake.now),
        _ts(wake.next_wakeup_at),
        wake.state in FINISHED_STATES,
        wake.version_hash,
        None if trace is None else "\\x" + bytes(trace).hex(),
        wake.release,
        float(wake.lease_ttl if lease_ttl is None else lease_ttl),
        _rows([
            [str(c.id), c.workflow, c.version_hash, c.input, _ts(c.started_at), str(c.correlation_id),
             c.on_parent_cancel, None if c.retention is None else c.retention.total_seconds()]
            for c in wake.new_children
        ]),
        _rows([str(c) for c in wake.awaiting_children]),
        _rows([str(c) for c in wake.cancelled_children]),
    ]


def wake_args(wake: Wake, run_id: UUID, new_run: dict[str, Any] | None = None,
              lease_ttl: float | None = None) -> list[str | None]:
    """``wake_values`` as the call's parameters in text form (``wake_text``)."""
    return wake_text(wake_values(wake, run_id, new_run, lease_ttl))


def wake_text(values: list[Any]) -> list[str | None]:
    """``wake_values`` as the call's parameters, each in PostgreSQL's text form (None for SQL
    NULL). Pure Python: every value (JSON included) is built before anything is sent, so a bad
    value fails here with nothing written."""
    out: list[str | None] = []
    for value, kind in zip(values, _KINDS, strict=True):
        if value is None:
            out.append(None)
        elif kind == _JSON:
            out.append(dumps(value))
        elif kind == _BOOL:
            out.append("true" if value else "false")
        elif kind == _FLOAT:
            out.append(repr(value))
        else:
            out.append(str(value))
    return out


def checked_wake_values(wake: Wake) -> list[Any]:
    """``wake_values`` of a wake after its checks, for ``commit_wake`` and ``commit_wakes``: a
    ``StartingWake`` (store/starts.py) as the first wake that inserts its run
    (``create_run(first_wake=...)``)."""
    if isinstance(wake, StartingWake):
        check_first_wake(wake)
        return wake_values(wake, wake.run_id, new_run_value(wake.run(), wake.owner), wake.start_lease_ttl)
    check_wake(wake)
    return wake_values(wake, wake.run_id)


# The hot path: the wake statements are prepared once per pooled connection and executed through
# libpq directly (one prepared execution with text parameters, the GIL released while it waits),
# which costs the client far less than the general cursor path for its 27 parameters.
_prepared: dict[bytes, weakref.WeakSet[Conn]] = {q.COMMIT_WAKE_NAME: weakref.WeakSet(),
                                                 q.COMMIT_WAKES_JSON_NAME: weakref.WeakSet()}


def _exec_prepared(conn: Conn, name: bytes, sql: str, args: list[bytes | None]) -> Any:
    """The result of the prepared statement ``name`` (prepared on ``conn`` first if needed).
    Errors are raised as the cursor path raises them: server errors as psycopg's classes by
    SQLSTATE, a lost connection as OperationalError."""
    pgconn = conn.pgconn
    prepared = _prepared[name]
    for attempt in (1, 2):
        if conn not in prepared:
            res = pgconn.prepare(name, sql.encode())
            if res.status != ExecStatus.COMMAND_OK:
                raise _error(conn, res)
            prepared.add(conn)
        res = pgconn.exec_prepared(name, cast(Any, args))  # None = SQL NULL
        if res.status == ExecStatus.TUPLES_OK:
            return res
        exc = _error(conn, res)
        if isinstance(exc, pgerrors.InvalidSqlStatementName) and attempt == 1:
            prepared.discard(conn)  # deallocated behind our back (DISCARD ALL): prepare again
            continue
        raise exc
    raise AssertionError("unreachable")


def exec_commit_wake(conn: Conn, args: list[bytes | None]) -> tuple[bool, int]:
    """Run COMMIT_WAKE on ``conn`` (autocommit: the call is its own transaction); its result,
    (signal_pending, lease token)."""
    res = _exec_prepared(conn, q.COMMIT_WAKE_NAME, q.COMMIT_WAKE, args)
    token = res.get_value(0, 1)
    return res.get_value(0, 0) == b"t", int(token) if token is not None else 0


#: One wake's row from continuum_commit_wakes: (signal_pending, lease token, SQLSTATE, message,
#: detail); the last three are None unless that wake was refused.
WakeRow = tuple[bool, int, "str | None", "str | None", "str | None"]


def exec_commit_wakes(conn: Conn, wakes_json: bytes) -> list[WakeRow]:
    """Run COMMIT_WAKES_JSON (``wakes_json``: the JSON array of each wake's ``wake_values``) on ``conn`` (autocommit: one transaction for every wake in it): a row per
    wake, in order. A wake the server refused is reported in its row (nothing of it written);
    an error of the call itself (a lost connection) is raised, and then nothing is known of any."""
    res = _exec_prepared(conn, q.COMMIT_WAKES_JSON_NAME, q.COMMIT_WAKES_JSON, [wakes_json])
    rows: list[WakeRow] = []
    for i in range(res.ntuples):
        token, state = res.get_value(i, 1), res.get_value(i, 2)
        rows.append((res.get_value(i, 0) == b"t", int(token) if token is not None else 0,
                     None if state is None else state.decode(), _text(res.get_value(i, 3)),
                     _text(res.get_value(i, 4))))
    return rows


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode(errors="replace")


def exec_commit_wake_once(conn: Conn, args: list[bytes | None]) -> tuple[bool, int]:
    """COMMIT_WAKE as an unnamed statement, for a call inside a transaction block (a continuing
    wake): a named statement may have been deallocated (psycopg clears its own after a failed
    transaction), and preparing it again there is not possible once the block has failed."""
    res = conn.pgconn.exec_params(q.COMMIT_WAKE.encode(), cast(Any, args))
    if res.status != ExecStatus.TUPLES_OK:
        raise _error(conn, res)
    token = res.get_value(0, 1)
    return res.get_value(0, 0) == b"t", int(token) if token is not None else 0


def _error(conn: Conn, res: Any) -> psycopg.Error:
    if conn.pgconn.status != ConnStatus.OK:
        message = (conn.pgconn.error_message or b"").decode(errors="replace").strip()
        return psycopg.OperationalError(message or "the connection to the server was lost")
    return pgerrors.error_from_result(res, encoding=conn.info.encoding)
