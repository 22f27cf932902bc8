"""The PostgreSQL statements of the incremental COPY fallback of ``analytics`` (the first, full
load uses ``analytics_sql.copy_select``).

What changed since the previous load is found without any bookkeeping in the journal:

- ``runs``, ``activity_tasks``, ``signals`` are updated in place. A row version whose ``xmin``
  (the transaction that wrote it) was not visible to the snapshot of the previous load is new or
  changed since: its ``xmin`` is in that snapshot's in-progress list, or not older than its
  ``xmax``. ``age()`` compares transaction ids modulo 2^32 as PostgreSQL does; a frozen row is
  as old as can be. PostgreSQL scans the table, but only the changed rows are transferred.
- ``events`` are appended, and every journal write moves its run's ``continuum_runs.last_seq`` in
  the same transaction: the events to load are those of the changed runs past the last seq already
  loaded for each, found through the primary key ``(run_id, seq, inserted_at)``.
- deletions (retention, ``continuum partitions drop``) are noticed by counting rows and listing
  the partitions: a table whose count differs is loaded again, events of a partition that is gone
  or of a run that is gone are dropped.
"""

from __future__ import annotations

from .analytics_sql import ViewSpec, copy_columns, quote_ident

__all__ = [
    "CHANGED_RUNS",
    "CURRENT_SNAPSHOT",
    "EVENT_PARTITIONS",
    "copy_changed",
    "copy_events_after",
    "count_rows",
]

#: The snapshot this (REPEATABLE READ) transaction reads: the first statement of a load, so it is
#: the transaction's own snapshot, the one the next load compares against.
CURRENT_SNAPSHOT = "SELECT pg_current_snapshot()::text"

# A row version written by a transaction the snapshot %(snapshot)s did not see.
_CHANGED = """(age(t.xmin) <= age(xid(pg_snapshot_xmax(%(snapshot)s::pg_snapshot)))
       OR t.xmin = ANY (ARRAY(SELECT xid(x) FROM pg_snapshot_xip(%(snapshot)s::pg_snapshot) AS x)))"""


def copy_changed(view: ViewSpec, schema: str) -> str:
    """COPY of the rows of one in-place table written since ``%(snapshot)s``, in view column order."""
    return (
        f"COPY (SELECT {copy_columns(view, 't')} FROM {quote_ident(schema)}.{quote_ident(view.table)} AS t "  # noqa: S608 - identifiers validated by quote_ident
        f"WHERE {_CHANGED}) TO STDOUT (FORMAT csv)"
    )


def CHANGED_RUNS(schema: str) -> str:  # noqa: N802 - reads like the statement it builds
    """The runs written since ``%(snapshot)s`` and their last journaled seq."""
    return (
        f"SELECT t.id, t.last_seq FROM {quote_ident(schema)}.continuum_runs AS t "  # noqa: S608 - identifier validated by quote_ident
        f"WHERE t.last_seq > 0 AND {_CHANGED}"
    )


def copy_events_after(view: ViewSpec, schema: str) -> str:
    """COPY of the events of the runs ``%(runs)s`` past the seq ``%(after)s`` loaded for each."""
    return (
        f"COPY (SELECT {copy_columns(view, 'e')} FROM {quote_ident(schema)}.{quote_ident(view.table)} AS e "  # noqa: S608 - identifiers validated by quote_ident
        "JOIN unnest(%(runs)s::uuid[], %(after)s::bigint[]) AS h(run_id, after) "
        "ON e.run_id = h.run_id AND e.seq > h.after) TO STDOUT (FORMAT csv)"
    )


def count_rows(view: ViewSpec, schema: str) -> str:
    """The row count of one table (the check for deleted rows)."""
    return f"SELECT count(*) FROM {quote_ident(schema)}.{quote_ident(view.table)}"  # noqa: S608 - identifiers validated by quote_ident


#: The partitions of continuum_events and their bounds (epoch microseconds, as the loaded
#: timestamps), to notice a dropped or detached partition.
EVENT_PARTITIONS = """
SELECT c.relname,
       (extract(epoch FROM (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz) * 1000000)::bigint,
       (extract(epoch FROM (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1]::timestamptz) * 1000000)::bigint
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = to_regclass(%(table)s)
"""
