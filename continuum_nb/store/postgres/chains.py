"""``PostgresStore``'s continue-as-new chains (store/chains.py). A continuing wake is the one
wake that is not a single statement: its ``continuum_commit_wake`` call and ``CONTINUE_AS_NEW``
run in one explicit transaction (the hot path of every other wake is unchanged)."""

from __future__ import annotations

from uuid import UUID

from ...errors import LeaseLost
from ..chains import ChainLinks, Continuation
from ..payloads import dumps
from .pool import Conn, PgPool
from .wake import exec_commit_wake_once

__all__ = ["CHAIN_CURRENT", "CHAIN_LINKS", "CONTINUE_AS_NEW", "PgChains", "commit_continuing"]


# Run in the transaction of a continuing wake, right after its continuum_commit_wake call (which
# locked the run row, checked the fence and completed the run): the run joins its chain, the
# successor is inserted (runnable by any engine), the undelivered signals, the signal keys (so a
# key is known to the chain's current run, whichever run it was first sent to) and the children
# that have not ended move to it, NOTIFY. No row: the wake did not complete the run as expected, and
# the caller rolls the transaction back.
CONTINUE_AS_NEW = """
WITH old AS (
    UPDATE continuum_runs SET correlation_id = coalesce(correlation_id, id)
     WHERE id = %(run)s AND state = 'completed' AND result = jsonb_build_object('continued', %(next_text)s::text)
    RETURNING id, workflow, version_hash, trace_context, attributes, retention, parent_run_id, correlation_id
), ins AS (
    INSERT INTO continuum_runs (id, workflow, version_hash, state, input, trace_context, started_at,
                                next_wakeup_at, attributes, retention, parent_run_id, correlation_id,
                                continued_from_run_id)
    SELECT %(next)s, old.workflow,
           CASE WHEN %(newest)s THEN coalesce(
                    (SELECT v.version_hash FROM continuum_workflow_versions AS v WHERE v.name = old.workflow
                      ORDER BY v.created_at DESC, v.ctid DESC LIMIT 1), old.version_hash)
                ELSE old.version_hash END,
           'suspended', %(input)s::jsonb, old.trace_context, %(now)s, %(now)s, old.attributes, old.retention,
           old.parent_run_id, old.correlation_id, old.id
      FROM old
    RETURNING id
), sig AS (
    UPDATE continuum_signals SET run_id = (SELECT id FROM ins)
     WHERE run_id = (SELECT id FROM old) AND NOT delivered
    RETURNING 1
), keys AS (
    UPDATE continuum_signal_keys SET run_id = (SELECT id FROM ins)
     WHERE run_id = (SELECT id FROM old)
), kids AS (
    UPDATE continuum_runs SET parent_run_id = (SELECT id FROM ins)
     WHERE parent_run_id = (SELECT id FROM old) AND state IN ('running', 'suspended', 'drifted')
    RETURNING 1
)
SELECT ins.id, (SELECT count(*) FROM sig), (SELECT count(*) FROM kids), pg_notify('continuum_wake', ins.id::text)
  FROM ins
"""

CHAIN_LINKS = """
SELECT r.correlation_id, r.continued_from_run_id,
       (SELECT c.id FROM continuum_runs AS c WHERE c.continued_from_run_id = r.id ORDER BY c.started_at, c.id LIMIT 1),
       r.parent_run_id
  FROM continuum_runs AS r WHERE r.id = %(id)s
"""

# The last run of the chain from a run on (continuum_runs_continued_from_idx, one probe per link).
CHAIN_CURRENT = """
WITH RECURSIVE chain(id, depth) AS (
    SELECT %(id)s::uuid, 0
    UNION ALL
    SELECT c.id, chain.depth + 1 FROM continuum_runs AS c JOIN chain ON c.continued_from_run_id = chain.id
)
SELECT id FROM chain ORDER BY depth DESC LIMIT 1
"""


def commit_continuing(conn: Conn, args: list[bytes | None], run_id: UUID, cont: Continuation,
                      now: object) -> tuple[bool, int]:
    """The wake call and the successor in one transaction: (signal_pending, lease token)."""
    params = {"run": run_id, "next": cont.next_run_id, "next_text": str(cont.next_run_id),
              "newest": cont.version == "newest", "input": dumps(cont.input), "now": now}
    with conn.transaction():
        out = exec_commit_wake_once(conn, args)
        if conn.execute(CONTINUE_AS_NEW, params).fetchone() is None:
            # The wake did not leave the run completed as continued: write nothing.
            raise LeaseLost(f"run {run_id} did not end continued as new by this wake; nothing was written")
    return out


class PgChains:
    _db: PgPool

    def chain_links(self, run_id: UUID) -> ChainLinks:
        def fn(conn: Conn) -> ChainLinks:
            row = conn.execute(CHAIN_LINKS, {"id": run_id}).fetchone()
            return ChainLinks() if row is None else ChainLinks(*row)

        return self._db.read(fn)

    def chain_current(self, run_id: UUID) -> UUID:
        def fn(conn: Conn) -> UUID:
            row = conn.execute(CHAIN_CURRENT, {"id": run_id}).fetchone()
            return run_id if row is None else UUID(str(row[0]))

        return self._db.read(fn)
