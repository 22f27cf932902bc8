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
    "BATCH",
    "BEHIND",
    "CHANGED_RUNS",
    "CREATE_PARTS",
    "INSERT_PART",
    "IS_SCANNER",
    "PARTS",
    "PART_NAMES",
    "PART_RANGES",
    "READ_STATE",
    "SAVE_STATE",
    "SEQS",
    "SEQS_FORGET_BATCH",
    "SEQS_FROM_BATCH",
    "STATE",
    "CURRENT_SNAPSHOT",
    "EVENT_PARTITIONS",
    "copy_changed",
    "copy_events_after",
    "count_loaded",
    "count_rows",
    "create_from_batch",
    "delete_events_between",
    "delete_without_run",
    "delta_table",
    "drop_table",
    "insert_from",
    "replace_changed",
    "seqs_from_events",
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


# ---------------------------------------------------------------------------------------------
# DuckDB: the loaded tables and what the fallback remembers between loads. The table names are
# constants (``analytics_sql.raw_table_name`` and the names below).

#: The Arrow batch being appended (registered, then unregistered).
BATCH = "_continuum_batch"
#: The snapshot of the last load and the schema it read.
STATE = "_continuum_loaded"
#: Per run, the last seq loaded.
SEQS = "_continuum_loaded_seq"
#: The events' partitions at the last load (name, bounds in epoch microseconds).
PARTS = "_continuum_loaded_partitions"


def delta_table(view: ViewSpec) -> str:
    """Where one load's changed rows of a view wait before they replace the loaded ones."""
    return f"_continuum_delta_{view.name}"


def create_from_batch(table: str) -> str:
    return f"CREATE OR REPLACE TABLE {quote_ident(table)} AS SELECT * FROM {BATCH}"  # noqa: S608 - names validated by quote_ident


def insert_from(table: str, source: str = BATCH) -> str:
    return f"INSERT INTO {quote_ident(table)} SELECT * FROM {quote_ident(source)}"  # noqa: S608 - names validated by quote_ident


def replace_changed(raw: str, delta: str, key: str) -> str:
    """Drop the loaded rows a delta replaces (same key)."""
    k = quote_ident(key)
    return f"DELETE FROM {quote_ident(raw)} WHERE {k} IN (SELECT {k} FROM {quote_ident(delta)})"  # noqa: S608 - names validated by quote_ident


def drop_table(table: str) -> str:
    return f"DROP TABLE IF EXISTS {quote_ident(table)}"


def count_loaded(table: str) -> str:
    return f"SELECT count(*) FROM {quote_ident(table)}"  # noqa: S608 - name validated by quote_ident


def seqs_from_events(events: str) -> str:
    return f"CREATE OR REPLACE TABLE {SEQS} AS SELECT run_id, max(seq) AS seq FROM {quote_ident(events)} GROUP BY run_id"  # noqa: S608 - names validated by quote_ident


SAVE_STATE = f"CREATE OR REPLACE TABLE {STATE} AS SELECT ?::VARCHAR AS snapshot, ?::VARCHAR AS schema"
READ_STATE = f"SELECT snapshot, schema FROM {STATE}"  # noqa: S608 - constant names
CREATE_PARTS = f"CREATE OR REPLACE TABLE {PARTS} (name VARCHAR, lo BIGINT, hi BIGINT)"
INSERT_PART = f"INSERT INTO {PARTS} VALUES (?, ?, ?)"  # noqa: S608 - constant names
PART_NAMES = f"SELECT name FROM {PARTS}"  # noqa: S608 - constant names
PART_RANGES = f"SELECT lo, hi FROM {PARTS} WHERE list_contains(?, name)"  # noqa: S608 - constant names
#: Whether a DuckDB connection has the scanner's attached database.
IS_SCANNER = "SELECT count(*) FROM duckdb_databases() WHERE database_name = 'pg'"

#: Of the changed runs in the batch (run_id, last_seq): those with events not loaded yet, and the
#: seq loaded so far for each.
BEHIND = (
    f"SELECT b.run_id, COALESCE(s.seq, 0), b.last_seq FROM {BATCH} b "  # noqa: S608 - constant names
    f"LEFT JOIN {SEQS} s ON s.run_id = b.run_id WHERE b.last_seq > COALESCE(s.seq, 0)"
)
SEQS_FORGET_BATCH = f"DELETE FROM {SEQS} WHERE run_id IN (SELECT run_id FROM {BATCH})"  # noqa: S608 - constant names
SEQS_FROM_BATCH = f"INSERT INTO {SEQS} SELECT run_id, seq FROM {BATCH}"  # noqa: S608 - constant names


def delete_events_between(events: str) -> str:
    """Drop the loaded events of a partition that is gone (bounds: epoch microseconds)."""
    return f"DELETE FROM {quote_ident(events)} WHERE epoch_us(inserted_at) >= ? AND epoch_us(inserted_at) < ?"  # noqa: S608 - name validated by quote_ident


def delete_without_run(table: str, runs: str) -> str:
    """Drop the loaded rows (events, loaded seqs) of runs that are gone."""
    return f"DELETE FROM {quote_ident(table)} WHERE run_id NOT IN (SELECT id FROM {quote_ident(runs)})"  # noqa: S608 - names validated by quote_ident
