"""The COPY fallback of ``analytics.connect``: the journal loaded once into DuckDB as a snapshot.

Used when the postgres scanner cannot be loaded or attached (or with ``mode="copy"`` /
``CONTINUUM_ANALYTICS_MODE=copy``): each table is streamed once with
``COPY (SELECT ...) TO STDOUT (FORMAT csv)`` through psycopg, parsed by Arrow's CSV reader and
registered in DuckDB under the same view names, columns and types as the scanner's. It reads in
a read-only transaction, so it cannot change the journal.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import psycopg

from ..errors import DatabaseUnavailable
from ..store import analytics_sql as q
from ..store.database import describe

if TYPE_CHECKING:
    import duckdb
    import pyarrow

__all__ = ["PROGRESS_MIN_ROWS", "arrow_table", "load_copy"]

#: Below this many (estimated) rows a load is quick and shows no progress bar.
PROGRESS_MIN_ROWS = 50_000


def _estimate_rows(conn: psycopg.Connection[Any], schema: str, table: str) -> int | None:
    row = conn.execute(q.ESTIMATE_ROWS, {"table": f"{schema}.{table}"}).fetchone()
    if row is None or not row[1]:
        return None
    return int(row[0])


def arrow_table(buffer: bytes, view: q.ViewSpec) -> pyarrow.Table:
    """One view's rows, as PostgreSQL's CSV wrote them, as an Arrow table of the view's types."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    arrow_types = {
        "uuid": pa.string(), "text": pa.string(), "json": pa.string(), "bytea": pa.string(),
        "bigint": pa.int64(), "integer": pa.int32(), "boolean": pa.bool_(),
        "timestamptz": pa.int64(),
    }
    names = [c for c, _ in view.columns]
    if not buffer:  # an empty table: Arrow's reader refuses empty input
        return pa.table({c: pa.array([], type=arrow_types[k]) for c, k in view.columns}).cast(
            pa.schema([(c, _final(arrow_types[k], k)) for c, k in view.columns])
        )
    table = pcsv.read_csv(
        io.BytesIO(buffer),
        read_options=pcsv.ReadOptions(column_names=names, block_size=16 << 20),
        parse_options=pcsv.ParseOptions(newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(
            column_types={c: arrow_types[k] for c, k in view.columns},
            # PostgreSQL's CSV writes NULL as an unquoted empty field and the empty string as "";
            # nothing else is NULL (Arrow's defaults would also read the JSON value null as NULL)
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            true_values=["t"],
            false_values=["f"],
        ),
    )
    for i, (name, kind) in enumerate(view.columns):
        if kind == "timestamptz":
            table = table.set_column(i, name, table.column(i).cast(_final(pa.int64(), kind)))
    return table


def _final(parsed: pyarrow.DataType, kind: str) -> pyarrow.DataType:
    """The Arrow type a column is registered with (timestamps arrive as epoch microseconds)."""
    import pyarrow as pa

    return pa.timestamp("us", tz="UTC") if kind == "timestamptz" else parsed


def _copy_view(
    conn: psycopg.Connection[Any], view: q.ViewSpec, schema: str, progress: bool | None
) -> pyarrow.Table:
    from tqdm.auto import tqdm

    estimate = _estimate_rows(conn, schema, view.table)
    show = progress if progress is not None else (estimate or 0) >= PROGRESS_MIN_ROWS
    parts: list[bytes] = []
    with tqdm(
        total=estimate, unit=" rows", unit_scale=True, disable=not show,
        desc=f"loading {view.name}", leave=False,
    ) as bar, conn.cursor().copy(q.copy_select(view, schema)) as copy:
        # In CSV mode libpq hands over one row per chunk; update the bar in batches.
        pending = 0
        for chunk in copy:
            parts.append(bytes(chunk))
            pending += 1
            if pending == 20_000:
                bar.update(pending)
                pending = 0
        bar.update(pending)
    return arrow_table(b"".join(parts), view)


def load_copy(
    con: duckdb.DuckDBPyConnection, conninfo: str, schema: str, progress: bool | None
) -> None:
    """Load every table with COPY and register the views over the loaded tables in ``con``."""
    try:
        with psycopg.connect(conninfo, connect_timeout=10) as conn:
            conn.read_only = True
            # one snapshot for all four tables, so runs and events agree with each other
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            with conn.transaction():
                tables = {v.name: _copy_view(conn, v, schema, progress) for v in q.VIEWS}
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(
            f"lost the connection to {describe(conninfo)} while loading the journal: {exc}"
        ) from None
    for view in q.VIEWS:
        con.register(q.raw_table_name(view), tables[view.name])
        con.execute(q.fallback_view(view))
