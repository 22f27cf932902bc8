"""Bulk start on PostgreSQL (``create_runs``): thousands of runnable runs in a few statements.

Every run of a call is inserted in ONE transaction, ``BULK_CHUNK`` rows a statement (arrays
unnested server-side, so a statement is one round trip whatever its size), with
``ON CONFLICT (id) DO NOTHING``: a run id that exists already is skipped, which makes a retried
call with the same ``run_id``s idempotent. An id that names a run of ANOTHER workflow is refused
and the whole call rolls back (nothing half-written). One NOTIFY at the end, without a run id,
tells every engine to claim; the runs are rows like ``create_run(owner=None)`` makes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any
from uuid import UUID

from ..base import NewRun
from ..payloads import dumps
from .pool import Conn

__all__ = ["BULK_CHUNK", "PgBulk"]

#: Rows per INSERT statement (the parameters of one statement stay a few MB at most).
BULK_CHUNK = 5_000

# The rows travel as ONE JSON text (encoded by Python's C encoder, decoded by the server):
# psycopg's text dumping of eight arrays cost more than the INSERT itself.
INSERT_RUNS = """
INSERT INTO continuum_runs (id, workflow, version_hash, state, input, trace_context, started_at,
                            retention_until, next_wakeup_at, attributes, retention)
SELECT r.id, r.workflow, r.version, 'suspended', r.input, decode(r.trace, 'hex'), r.started,
       r.retention_until, r.started, r.attributes, make_interval(secs => r.retention)
FROM jsonb_to_recordset(%(rows)s::jsonb)
     AS r(id uuid, workflow text, version text, input jsonb, trace text, started timestamptz,
          retention_until timestamptz, attributes jsonb, retention float8)
ON CONFLICT (id) DO NOTHING
RETURNING id
"""

WORKFLOWS_OF = "SELECT id, workflow FROM continuum_runs WHERE id = ANY(%(ids)s::uuid[])"

KICK_ENGINES = "SELECT pg_notify('continuum_wake', '')"


def _row(run: NewRun) -> dict[str, Any]:
    """One run as ``INSERT_RUNS`` reads it (its input was checked by the gate already)."""
    return {
        "id": str(run.id), "workflow": run.workflow, "version": run.version_hash, "input": run.input,
        "trace": None if run.trace_context is None else run.trace_context.hex(),
        "started": run.started_at.isoformat(),
        "retention_until": None if run.retention_until is None else run.retention_until.isoformat(),
        "attributes": run.attributes or None,
        "retention": None if run.retention is None else run.retention.total_seconds(),
    }


class PgBulk:
    """``create_runs`` of ``PostgresStore`` (see ``store.base.Store``)."""

    _connection: Callable[[], AbstractContextManager[Conn]]

    def create_runs(self, runs: Sequence[NewRun]) -> list[UUID]:
        for run in runs:
            if run.idempotency_key is not None:
                raise ValueError("create_runs: runs with an idempotency_key are started one by one "
                                 "(create_keyed_run)")
        created: list[UUID] = []
        if not runs:
            return created
        with self._connection() as conn, conn.transaction():
            for at in range(0, len(runs), BULK_CHUNK):
                chunk = runs[at:at + BULK_CHUNK]
                rows = [_row(r) for r in chunk]
                inserted = {row[0] for row in conn.execute(INSERT_RUNS, {"rows": dumps(rows)}).fetchall()}
                created.extend(r.id for r in chunk if r.id in inserted)
                skipped = {r.id: r.workflow for r in chunk if r.id not in inserted}
                if skipped:
                    found = conn.execute(WORKFLOWS_OF, {"ids": list(skipped)}).fetchall()
                    for rid, workflow in found:
                        if workflow != skipped[rid]:
                            raise ValueError(
                                f"run {rid} already exists as a run of workflow {workflow!r}, not "
                                f"{skipped[rid]!r}; pass new run_ids (nothing was started)")
            if created:
                conn.execute(KICK_ENGINES)
        return created
