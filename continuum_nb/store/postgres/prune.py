"""``prune`` on PostgreSQL: delete ended runs past their ``retention_until`` with every row they
own, in bounded batches, one transaction (one statement) each.

A run is pruned only when it ended (``completed``, ``failed``, ``cancelled``: those states never
change again) and its ``retention_until`` is at or before the given instant; a running,
suspended or drifted run, or one without retention, is never touched. Each batch locks its runs
(``FOR UPDATE SKIP LOCKED``: two prunes at once share the work) and deletes, by ``run_id``, their
events (an index probe per partition), signals, timers, activity tasks, snapshots and activity
results, then the runs. Keys (``continuum_ingress_keys``, ``continuum_signal_keys``) are kept
unless ``drop_keys``: then the batch deletes the pruned runs' keys, and a sweep in primary-key
order deletes the keys left behind by earlier prunes (keys whose run no longer exists).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import fields
from datetime import datetime
from typing import Any

from ..base import PruneReport
from .pool import Conn

__all__ = ["PgPrune"]

#: One batch: due runs locked (two prunes at once share the work), everything they own, their
#: keys when %(drop)s, the runs; the counts, in the order of PruneReport's fields.
PRUNE_BATCH = """
WITH doomed AS (
    SELECT id FROM continuum_runs
     WHERE retention_until <= %(now)s AND state IN ('completed', 'failed', 'cancelled')
     ORDER BY retention_until LIMIT %(limit)s
       FOR UPDATE SKIP LOCKED
), ids AS (SELECT coalesce(array_agg(id), '{}'::uuid[]) AS a FROM doomed),
ev AS (DELETE FROM continuum_events WHERE run_id = ANY ((SELECT a FROM ids)::uuid[]) RETURNING 1),
sg AS (DELETE FROM continuum_signals WHERE run_id = ANY ((SELECT a FROM ids)::uuid[]) RETURNING 1),
tm AS (DELETE FROM continuum_timers WHERE run_id = ANY ((SELECT a FROM ids)::uuid[]) RETURNING 1),
tk AS (DELETE FROM continuum_activity_tasks WHERE run_id = ANY ((SELECT a FROM ids)::uuid[]) RETURNING 1),
sn AS (DELETE FROM continuum_snapshots WHERE run_id = ANY ((SELECT a FROM ids)::uuid[]) RETURNING 1),
ar AS (DELETE FROM continuum_activity_results WHERE run_id = ANY ((SELECT a FROM ids)::uuid[]) RETURNING 1),
ik AS (DELETE FROM continuum_ingress_keys WHERE %(drop)s AND run_id = ANY ((SELECT a FROM ids)::uuid[]) RETURNING 1),
sk AS (DELETE FROM continuum_signal_keys WHERE %(drop)s AND run_id = ANY ((SELECT a FROM ids)::uuid[]) RETURNING 1),
r AS (DELETE FROM continuum_runs WHERE id = ANY ((SELECT a FROM ids)::uuid[]) RETURNING 1)
SELECT (SELECT count(*) FROM r), (SELECT count(*) FROM ev), (SELECT count(*) FROM sg),
       (SELECT count(*) FROM tm), (SELECT count(*) FROM tk), (SELECT count(*) FROM sn),
       (SELECT count(*) FROM ar), (SELECT count(*) FROM ik), (SELECT count(*) FROM sk)
"""

#: What the batches would delete (a report: nothing changes); with %(drop)s, the keys of runs
#: pruned before (whose run no longer exists) are counted too.
PRUNE_COUNTS = """
WITH doomed AS (
    SELECT id FROM continuum_runs
     WHERE retention_until <= %(now)s AND state IN ('completed', 'failed', 'cancelled')
), ids AS (SELECT coalesce(array_agg(id), '{}'::uuid[]) AS a FROM doomed)
SELECT (SELECT count(*) FROM doomed),
       (SELECT count(*) FROM continuum_events WHERE run_id = ANY ((SELECT a FROM ids)::uuid[])),
       (SELECT count(*) FROM continuum_signals WHERE run_id = ANY ((SELECT a FROM ids)::uuid[])),
       (SELECT count(*) FROM continuum_timers WHERE run_id = ANY ((SELECT a FROM ids)::uuid[])),
       (SELECT count(*) FROM continuum_activity_tasks WHERE run_id = ANY ((SELECT a FROM ids)::uuid[])),
       (SELECT count(*) FROM continuum_snapshots WHERE run_id = ANY ((SELECT a FROM ids)::uuid[])),
       (SELECT count(*) FROM continuum_activity_results WHERE run_id = ANY ((SELECT a FROM ids)::uuid[])),
       CASE WHEN %(drop)s THEN (
           SELECT count(*) FROM continuum_ingress_keys k
            WHERE k.run_id = ANY ((SELECT a FROM ids)::uuid[])
               OR NOT EXISTS (SELECT 1 FROM continuum_runs r WHERE r.id = k.run_id)) ELSE 0 END,
       CASE WHEN %(drop)s THEN (
           SELECT count(*) FROM continuum_signal_keys k
            WHERE k.run_id = ANY ((SELECT a FROM ids)::uuid[])
               OR NOT EXISTS (SELECT 1 FROM continuum_runs r WHERE r.id = k.run_id)) ELSE 0 END
"""

# The sweep of keys whose run is gone: ``limit`` keys after the last one seen, in primary-key
# order (so each key is looked at once over the whole sweep), deleting the orphans among them.
# Each returns (keys looked at, keys deleted, the last key's columns).
def _sweep_sql(table: str, key: tuple[str, ...], after: bool) -> str:
    """The sweep statement of ``table`` (primary key ``key``; fixed identifiers, never input),
    from its first key or (``after``) past the last one seen, given as ``c0``, ``c1``, ..."""
    cols = ", ".join(key)
    scanned = cols if "run_id" in key else f"{cols}, run_id"
    past = f" WHERE ({cols}) > ({', '.join(f'%(c{i})s' for i in range(len(key)))})" if after else ""
    return f"""
WITH scan AS (
    SELECT {scanned} FROM {table}{past} ORDER BY {cols} LIMIT %(limit)s
), del AS (
    DELETE FROM {table} t USING scan s
     WHERE {' AND '.join(f't.{c} = s.{c}' for c in key)}
       AND NOT EXISTS (SELECT 1 FROM continuum_runs r WHERE r.id = s.run_id)
    RETURNING 1
), last AS (SELECT {cols} FROM scan ORDER BY {', '.join(f'{c} DESC' for c in key)} LIMIT 1)
SELECT (SELECT count(*) FROM scan), (SELECT count(*) FROM del), last.*
  FROM (SELECT 1) AS one LEFT JOIN last ON true
"""  # noqa: S608 - fixed identifiers only


_KEY_TABLES = {"ingress_keys": ("continuum_ingress_keys", ("workflow", "key")),
               "signal_keys": ("continuum_signal_keys", ("run_id", "name", "key"))}
#: (kind, first batch?) -> statement.
SWEEP_SQL = {(kind, first): _sweep_sql(table, key, after=not first)
             for kind, (table, key) in _KEY_TABLES.items() for first in (True, False)}

_COUNTED = [f.name for f in fields(PruneReport) if f.name not in ("executed", "batches")]


class PgPrune:
    """``prune`` of ``PostgresStore`` (see ``store.base.Store``)."""

    _connection: Callable[[], AbstractContextManager[Conn]]
    _read: Callable[[Callable[[Conn], Any]], Any]

    def prune(self, now: datetime, *, execute: bool, drop_keys: bool, batch_size: int) -> PruneReport:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, not {batch_size!r}")
        params: dict[str, Any] = {"now": now, "drop": drop_keys, "limit": batch_size}
        if not execute:
            row = self._read(lambda conn: conn.execute(PRUNE_COUNTS, params).fetchone())
            return PruneReport(False, **dict(zip(_COUNTED, map(int, row), strict=True)))
        totals = dict.fromkeys(_COUNTED, 0)
        batches = 0
        while True:
            with self._connection() as conn:  # autocommit: the statement is its own transaction
                row = conn.execute(PRUNE_BATCH, params).fetchone()
            assert row is not None
            counts = dict(zip(_COUNTED, map(int, row), strict=True))
            if counts["runs"]:
                batches += 1
            for name, n in counts.items():
                totals[name] += n
            if counts["runs"] < batch_size:
                break
        if drop_keys:
            for name in ("ingress_keys", "signal_keys"):
                totals[name] += self._sweep(name, batch_size)
        return PruneReport(True, batches=batches, **totals)

    def _sweep(self, name: str, batch_size: int) -> int:
        """Delete the keys of ``name`` whose run is gone (left by earlier prunes); how many."""
        deleted = 0
        params: dict[str, Any] = {"limit": batch_size}
        first = True
        while True:
            with self._connection() as conn:
                row = conn.execute(SWEEP_SQL[(name, first)], params).fetchone()
            assert row is not None
            scanned, last = int(row[0]), row[2:]
            deleted += int(row[1])
            if scanned < batch_size:
                return deleted
            params.update({f"c{i}": v for i, v in enumerate(last)})
            first = False
