"""The whole-journal ready-made queries over the monthly rollups (``store/analytics_rollups``).

On a scanner connection, ``events_by_type_and_month`` and ``throughput_per_minute`` without a
window first count, once, every month that is over and has no valid rollup yet, then send one
PostgreSQL statement that reads the kept counts of the rolled-up months and counts the others
live (the current month: a few days of events instead of the whole journal). That statement
also re-checks, in its own snapshot, that every rollup it reads is still valid; when one was
invalidated in between (a prune committed), the query plans again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING

import psycopg

from ..store import analytics_pushdown_sql as pq
from ..store import analytics_rollups as store

if TYPE_CHECKING:
    import duckdb
    import pandas

__all__ = ["rollup_frame"]

#: Plans before giving up on the rollups for this call (each retry follows a change that
#: committed between planning and reading: rare).
_ATTEMPTS = 3


def rollup_frame(
    con: duckdb.DuckDBPyConnection,
    schema: str,
    conninfo: str | None,
    rolled: Callable[[str, list[date]], tuple[str, str]],
) -> pandas.DataFrame | None:
    """The query's answer from the rollups and a live count of the rest; None when the database
    has no rollup tables or the conninfo is unknown (the caller then counts everything live)."""
    if conninfo is None:
        return None
    for _ in range(_ATTEMPTS):
        try:
            months = store.fill(conninfo, schema)
        except psycopg.Error:
            return None
        if not months:
            return None
        pg, finish = rolled(schema, months)
        con.execute(pq.rolled_rows(pg))
        try:
            row = con.execute(pq.ROLLED_VALID).fetchone()
            if row is None or row[0] != len(months):
                continue
            result = con.execute(finish)
            return result.to_arrow_table().to_pandas()
        finally:
            con.execute(f"DROP TABLE IF EXISTS {pq.ROLLED}")
    return None
