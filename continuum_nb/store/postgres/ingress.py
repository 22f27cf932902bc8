"""Idempotent ingress and search attributes on PostgreSQL: keyed starts (``continuum_ingress_keys``),
keyed signals (``continuum_signal_keys``) and ``set_attributes`` (migration 20261201000000).

A key row and what it names are written by ONE statement: the key is inserted first with
``ON CONFLICT DO NOTHING`` on its primary key, and the run (or signal) is inserted only from the
key row that statement inserted. A concurrent insert of the same key waits for the first
transaction and then does nothing, so exactly one run (one signal) exists per key, and a caller
that inserted nothing reads the winner's id afterwards (a new statement: it sees the committed
row).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import errors as pgerrors

from ..base import KeyedStart, NewRun
from ..checks import run_exists, run_not_active, run_not_found
from ..payloads import dumps
from .pool import Conn, first_line

__all__ = ["PgIngress", "duplicate_run", "run_params"]

# --- keyed starts --------------------------------------------------------------------------------

#: The run inserted from the key row only: nothing when the key exists.
INSERT_KEYED_RUN_UNLEASED = """
WITH k AS (
    INSERT INTO continuum_ingress_keys (workflow, key, run_id)
    VALUES (%(workflow)s, %(key)s, %(id)s)
    ON CONFLICT (workflow, key) DO NOTHING
    RETURNING run_id
), ins AS (
    INSERT INTO continuum_runs (id, workflow, version_hash, state, input, trace_context, started_at,
                                retention_until, next_wakeup_at, attributes, retention)
    SELECT k.run_id, %(workflow)s, %(version)s, 'suspended', %(input)s::jsonb, %(trace)s, %(started)s,
           %(retention_until)s, %(started)s, %(attributes)s::jsonb, %(retention)s::interval
      FROM k
    RETURNING id, lease_token)
SELECT ins.id, ins.lease_token, pg_notify('continuum_wake', ins.id::text) FROM ins
"""

#: Leased to its owner, state running, no wake yet: the owner commits the first wake itself.
INSERT_KEYED_RUN_LEASED = """
WITH k AS (
    INSERT INTO continuum_ingress_keys (workflow, key, run_id)
    VALUES (%(workflow)s, %(key)s, %(id)s)
    ON CONFLICT (workflow, key) DO NOTHING
    RETURNING run_id
), ins AS (
    INSERT INTO continuum_runs (id, workflow, version_hash, state, input, trace_context, started_at,
                                retention_until, lease_owner, lease_token, lease_expires_at, attributes, retention)
    SELECT k.run_id, %(workflow)s, %(version)s, 'running', %(input)s::jsonb, %(trace)s, %(started)s,
           %(retention_until)s, %(owner)s, nextval('continuum_lease_token_seq'),
           now() + make_interval(secs => %(ttl)s::float8), %(attributes)s::jsonb, %(retention)s::interval
      FROM k
    RETURNING id, lease_token)
SELECT ins.id, ins.lease_token, NULL FROM ins
"""

FIND_KEY = "SELECT run_id FROM continuum_ingress_keys WHERE workflow = %(workflow)s AND key = %(key)s"

# --- keyed signals -------------------------------------------------------------------------------

#: The run row is locked first (as SEND_SIGNAL does: a wake holding the lock sees the signal in
#: its re-check or is followed by this next_wakeup_at), then the key inserted; the signal, with
#: the id the key row took, and the wake-up follow only from an inserted key row.
SEND_SIGNAL_ONCE = """
WITH lock AS (
    SELECT id FROM continuum_runs
     WHERE id = %(run)s AND state IN ('running', 'suspended', 'drifted')
       FOR UPDATE
), k AS (
    INSERT INTO continuum_signal_keys (run_id, name, key, signal_id)
    SELECT lock.id, %(name)s, %(key)s, nextval('continuum_signals_id_seq') FROM lock
    ON CONFLICT (run_id, name, key) DO NOTHING
    RETURNING signal_id
), r AS (
    UPDATE continuum_runs
       SET next_wakeup_at = LEAST(coalesce(next_wakeup_at, %(now)s), %(now)s)
     WHERE id = %(run)s AND EXISTS (SELECT 1 FROM k)
), s AS (
    INSERT INTO continuum_signals (id, run_id, name, payload)
    SELECT k.signal_id, %(run)s, %(name)s, %(payload)s::jsonb FROM k
    RETURNING id
)
SELECT (SELECT count(*) FROM lock), s.id,
       CASE WHEN s.id IS NOT NULL THEN pg_notify('continuum_wake', %(run_text)s) END
  FROM (SELECT 1) AS one LEFT JOIN s ON true
"""

FIND_SIGNAL_KEY = """
SELECT signal_id FROM continuum_signal_keys WHERE run_id = %(run)s AND name = %(name)s AND key = %(key)s
"""

RUN_STATE = "SELECT state FROM continuum_runs WHERE id = %(run)s"

# --- attributes ----------------------------------------------------------------------------------

SET_ATTRIBUTES = """
UPDATE continuum_runs SET attributes = coalesce(attributes, '{}'::jsonb) || %(attributes)s::jsonb
 WHERE id = %(run)s
RETURNING attributes
"""


def run_params(run: NewRun, owner: str | None = None, lease_ttl: float = 30.0) -> dict[str, Any]:
    """The named parameters of a run insert (``sql.INSERT_RUN_*`` and the keyed ones)."""
    return {
        "id": run.id,
        "workflow": run.workflow,
        "version": run.version_hash,
        "input": dumps(run.input),
        "trace": run.trace_context,
        "started": run.started_at,
        "retention_until": run.retention_until,
        "retention": run.retention,
        "attributes": dumps(run.attributes) if run.attributes else None,
        "key": run.idempotency_key,
        "owner": owner,
        "ttl": lease_ttl,
    }


def duplicate_run(run_id: UUID, exc: pgerrors.UniqueViolation) -> ValueError:
    if exc.diag.constraint_name == "continuum_runs_pkey":
        return run_exists(run_id)
    return ValueError(f"run {run_id}: {first_line(exc)}")


class PgIngress:
    """The keyed and attribute calls of ``PostgresStore`` (see ``store.base.Store``)."""

    _connection: Callable[[], AbstractContextManager[Conn]]
    _read: Callable[[Callable[[Conn], Any]], Any]

    def create_keyed_run(self, run: NewRun, *, owner: str | None = None, lease_ttl: float = 30.0) -> KeyedStart:
        if run.idempotency_key is None:
            raise ValueError("create_keyed_run: the run has no idempotency_key (use create_run)")
        params = run_params(run, owner, lease_ttl)
        sql = INSERT_KEYED_RUN_UNLEASED if owner is None else INSERT_KEYED_RUN_LEASED
        try:
            with self._connection() as conn:
                row = conn.execute(sql, params).fetchone()
                if row is not None:
                    return KeyedStart(row[0], False, None if row[1] is None else int(row[1]))
                found = conn.execute(FIND_KEY, params).fetchone()
        except pgerrors.UniqueViolation as exc:
            raise duplicate_run(run.id, exc) from None
        if found is None:  # cannot happen: a key row is never deleted while its run exists
            raise RuntimeError(f"idempotency key {run.idempotency_key!r} conflicted but names no run")
        return KeyedStart(found[0], True)

    def send_signal_once(self, run_id: UUID, name: str, key: str, payload: Any, now: datetime) -> tuple[int, bool]:
        params = {"run": run_id, "run_text": str(run_id), "name": name, "key": key,
                  "payload": dumps(payload), "now": now}
        with self._connection() as conn:
            row = conn.execute(SEND_SIGNAL_ONCE, params).fetchone()
            assert row is not None
            if row[1] is not None:
                return int(row[1]), True
            found = conn.execute(FIND_SIGNAL_KEY, params).fetchone()
            if found is not None:
                return int(found[0]), False
            if row[0]:  # the key row was there, then gone (pruned with drop_keys meanwhile)
                raise RuntimeError(f"signal key {key!r} of run {run_id} conflicted but names no signal")
            state = conn.execute(RUN_STATE, params).fetchone()
        raise run_not_found(run_id) if state is None else run_not_active(run_id, state[0], "signal")

    def set_attributes(self, run_id: UUID, attributes: dict[str, Any]) -> dict[str, Any]:
        params = {"run": run_id, "attributes": dumps(attributes)}
        with self._connection() as conn:
            row = conn.execute(SET_ATTRIBUTES, params).fetchone()
        if row is None:
            raise run_not_found(run_id)
        return dict(row[0] or {})
