"""The COPY fallback of ``analytics.connect``: the journal loaded into DuckDB, then kept up to date
incrementally.

Used when the postgres scanner cannot be loaded or attached (or with ``mode="copy"`` /
``CONTINUUM_ANALYTICS_MODE=copy``). The first load streams each table with
``COPY (SELECT ...) TO STDOUT (FORMAT csv)`` through psycopg, parses it with Arrow's CSV reader in
batches of ``BATCH_BYTES`` and appends each batch to a DuckDB table, so memory holds one batch
besides what DuckDB stores. The views (same names, columns and types as the scanner's) read those
tables.

``refresh`` loads only what changed since (``store/analytics_copy_sql.py`` says how it is
found): rows of runs, activity tasks and signals written since the previous load's snapshot, and
the events of the changed runs past the last seq loaded for each. Every load reads in one
read-only ``REPEATABLE READ`` transaction, so the tables agree with each other and nothing can
change the journal.
"""

from __future__ import annotations

import io
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg

from ..errors import ConfigurationError, DatabaseUnavailable
from ..store import analytics_copy_sql as cq
from ..store import analytics_sql as q
from ..store.database import describe

if TYPE_CHECKING:
    import duckdb
    import pyarrow

__all__ = ["BATCH_BYTES", "PROGRESS_MIN_ROWS", "arrow_table", "load_copy", "refresh"]

#: Below this many (estimated) rows a load is quick and shows no progress bar.
PROGRESS_MIN_ROWS = 50_000
#: CSV bytes parsed and appended to DuckDB at a time (bounds the memory a load needs).
BATCH_BYTES = 32 << 20
#: Changed runs whose new events are asked for in one statement.
RUNS_PER_REQUEST = 20_000

_VIEW = {v.name: v for v in q.VIEWS}
_KEYS = {"runs": "id", "activity_tasks": "id", "signals": "id"}
_BATCH = cq.BATCH

# The conninfo each fallback connection loads from (kept out of DuckDB: it may hold a password).
_sources: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, str] = weakref.WeakKeyDictionary()


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


@contextmanager
def _reading(conninfo: str) -> Iterator[psycopg.Connection[Any]]:
    """A read-only REPEATABLE READ transaction: one snapshot for every table of a load."""
    try:
        with psycopg.connect(conninfo, connect_timeout=10) as conn:
            conn.read_only = True
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            with conn.transaction():
                yield conn
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(
            f"lost the connection to {describe(conninfo)} while loading the journal: {exc}"
        ) from None


def _new_table(con: duckdb.DuckDBPyConnection, view: q.ViewSpec, name: str) -> None:
    con.register(_BATCH, arrow_table(b"", view))
    try:
        con.execute(cq.create_from_batch(name))
    finally:
        con.unregister(_BATCH)


def _stream(
    con: duckdb.DuckDBPyConnection, conn: psycopg.Connection[Any], statement: str,
    params: dict[str, Any] | None, view: q.ViewSpec, target: str, bar: Any = None,
) -> int:
    """Run one COPY and append its rows to the DuckDB table ``target``, a batch at a time."""
    parts: list[bytes] = []
    size = rows = 0

    def flush() -> None:
        nonlocal size, rows
        if not parts:
            return
        batch = arrow_table(b"".join(parts), view)
        con.register(_BATCH, batch)
        try:
            con.execute(cq.insert_from(target))
        finally:
            con.unregister(_BATCH)
        rows += batch.num_rows
        if bar is not None:
            bar.update(len(parts))
        parts.clear()
        size = 0

    # libpq hands over one row per chunk in CSV mode, so a batch always ends on a row
    with conn.cursor().copy(statement, params) as copy:
        for chunk in copy:
            parts.append(bytes(chunk))
            size += len(chunk)
            if size >= BATCH_BYTES:
                flush()
    flush()
    return rows


def _load_view(con: duckdb.DuckDBPyConnection, conn: psycopg.Connection[Any], view: q.ViewSpec,
               schema: str, progress: bool | None) -> int:
    from tqdm.auto import tqdm

    estimate = _estimate_rows(conn, schema, view.table)
    show = progress if progress is not None else (estimate or 0) >= PROGRESS_MIN_ROWS
    _new_table(con, view, q.raw_table_name(view))
    with tqdm(total=estimate, unit=" rows", unit_scale=True, disable=not show,
              desc=f"loading {view.name}", leave=False) as bar:
        return _stream(con, conn, q.copy_select(view, schema), None, view, q.raw_table_name(view), bar)


def _partitions(conn: psycopg.Connection[Any], schema: str) -> list[tuple[Any, ...]]:
    return conn.execute(cq.EVENT_PARTITIONS, {"table": f"{q.quote_ident(schema)}.continuum_events"}).fetchall()


def _save_state(con: duckdb.DuckDBPyConnection, snapshot: str, schema: str,
                partitions: list[tuple[Any, ...]]) -> None:
    con.execute(cq.SAVE_STATE, [snapshot, schema])
    con.execute(cq.CREATE_PARTS)
    if partitions:
        con.executemany(cq.INSERT_PART, [list(p) for p in partitions])


def load_copy(
    con: duckdb.DuckDBPyConnection, conninfo: str, schema: str, progress: bool | None
) -> None:
    """Load every table with COPY and create the views over the loaded tables in ``con``."""
    events = q.raw_table_name(_VIEW["events"])
    with _reading(conninfo) as conn:
        row = conn.execute(cq.CURRENT_SNAPSHOT).fetchone()  # first: the transaction's snapshot
        for view in q.VIEWS:
            _load_view(con, conn, view, schema, progress)
        partitions = _partitions(conn, schema)
    con.execute(cq.seqs_from_events(events))
    _save_state(con, str(row[0]) if row else "", schema, partitions)
    for view in q.VIEWS:
        con.execute(q.fallback_view(view))
    for _, text in q.LINK_VIEWS:
        con.execute(text)
    _sources[con] = conninfo


def _merge_changed(con: duckdb.DuckDBPyConnection, conn: psycopg.Connection[Any], view: q.ViewSpec,
                   schema: str, snapshot: str) -> tuple[int, bool]:
    """Upsert the rows of one in-place table written since ``snapshot``; reload it if rows were
    deleted. Returns (rows loaded, whether it was reloaded)."""
    raw, delta, key = q.raw_table_name(view), cq.delta_table(view), _KEYS[view.name]
    _new_table(con, view, delta)
    try:
        n = _stream(con, conn, cq.copy_changed(view, schema), {"snapshot": snapshot}, view, delta)
        if n:
            con.execute(cq.replace_changed(raw, delta, key))
            con.execute(cq.insert_from(raw, delta))
    finally:
        con.execute(cq.drop_table(delta))
    row = conn.execute(cq.count_rows(view, schema)).fetchone()
    here = con.execute(cq.count_loaded(raw)).fetchone()
    if row is not None and here is not None and row[0] == here[0]:
        return n, False
    return _load_view(con, conn, view, schema, False), True  # rows were deleted: load it again


def _new_events(con: duckdb.DuckDBPyConnection, conn: psycopg.Connection[Any], schema: str,
                snapshot: str) -> int:
    """Load the events of the runs written since ``snapshot`` past the seq loaded for each."""
    import pyarrow as pa

    changed = conn.execute(cq.CHANGED_RUNS(schema), {"snapshot": snapshot}).fetchall()
    if not changed:
        return 0
    con.register(_BATCH, pa.table({"run_id": [str(r) for r, _ in changed], "last_seq": [s for _, s in changed]}))
    try:
        behind = con.execute(cq.BEHIND).fetchall()
    finally:
        con.unregister(_BATCH)
    view, loaded = _VIEW["events"], 0
    for i in range(0, len(behind), RUNS_PER_REQUEST):
        part = behind[i:i + RUNS_PER_REQUEST]
        params = {"runs": [r for r, _, _ in part], "after": [a for _, a, _ in part]}
        loaded += _stream(con, conn, cq.copy_events_after(view, schema), params, view, q.raw_table_name(view))
        con.register(_BATCH, pa.table({"run_id": [r for r, _, _ in part], "seq": [s for _, _, s in part]}))
        try:
            con.execute(cq.SEQS_FORGET_BATCH)
            con.execute(cq.SEQS_FROM_BATCH)
        finally:
            con.unregister(_BATCH)
    return loaded


def refresh(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Bring a COPY-mode connection up to date: load only what changed since its last load.

    Returns the rows loaded per view (a reloaded table counts all its rows). A scanner connection
    reads PostgreSQL live and needs nothing: ``{}``.
    """
    conninfo = _sources.get(con)
    if conninfo is None:
        if con.execute(cq.IS_SCANNER).fetchone() == (1,):
            return {}
        raise ConfigurationError("this connection was not made by cn.analytics.connect(); nothing to refresh")
    state = con.execute(cq.READ_STATE).fetchone()
    if state is None:
        raise ConfigurationError("this connection's journal was never loaded; connect again")
    before, schema = str(state[0]), str(state[1])
    loaded: dict[str, int] = {}
    con.begin()  # queries on other cursors see the whole refresh or none of it
    try:
        _apply(con, conninfo, before, schema, loaded)
    except BaseException:
        con.rollback()
        raise
    con.commit()
    return loaded


def _apply(con: duckdb.DuckDBPyConnection, conninfo: str, before: str, schema: str,
           loaded: dict[str, int]) -> None:
    events = q.raw_table_name(_VIEW["events"])
    with _reading(conninfo) as conn:
        row = conn.execute(cq.CURRENT_SNAPSHOT).fetchone()
        runs_reloaded = False
        for name in ("runs", "activity_tasks", "signals"):
            loaded[name], reloaded = _merge_changed(con, conn, _VIEW[name], schema, before)
            runs_reloaded = runs_reloaded or (reloaded and name == "runs")
        loaded["events"] = _new_events(con, conn, schema, before)
        partitions = _partitions(conn, schema)
    gone = {r[0] for r in con.execute(cq.PART_NAMES).fetchall()} - {p[0] for p in partitions}
    for lo, hi in con.execute(cq.PART_RANGES, [sorted(gone)]).fetchall():
        con.execute(cq.delete_events_between(events), [lo, hi])
    if runs_reloaded:  # runs were deleted (retention): so were their events
        runs = q.raw_table_name(_VIEW["runs"])
        con.execute(cq.delete_without_run(events, runs))
        con.execute(cq.delete_without_run(cq.SEQS, runs))
    _save_state(con, str(row[0]) if row else before, schema, partitions)
