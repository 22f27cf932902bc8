"""``analytics.connect``: a DuckDB connection with the journal views over PostgreSQL.

Two ways to build the views, with identical names, columns and types:

- the postgres scanner (the default): the extension is loaded from the file shipped in the
  ``duckdb-extension-postgres-scanner`` wheel (``LOAD '<path>'``; nothing is downloaded and
  nothing is written to ``~/.duckdb``), the database is attached ``READ_ONLY`` and each view is a
  live projection of its table, so queries always see the current journal and push column
  selection and filters down to PostgreSQL;
- the COPY fallback, when the extension cannot be loaded or attached (or ``mode="copy"`` /
  ``CONTINUUM_ANALYTICS_MODE=copy``): each table is streamed once with
  ``COPY (SELECT ...) TO STDOUT (FORMAT csv)`` through psycopg, parsed by Arrow's CSV reader and
  registered in DuckDB. That is a snapshot taken at connect time.

Neither path can change the journal: the scanner attaches read-only, and the fallback reads with
COPY ... TO in a read-only transaction.
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, Union

import psycopg

from .errors import ConfigurationError, ContinuumError, DatabaseUnavailable, MigrationError
from .store import analytics_sql as q
from .store.database import conninfo as to_conninfo
from .store.database import describe

if TYPE_CHECKING:
    import duckdb
    import pyarrow

    from .engine.instance import Instance

#: What ``instance=`` accepts everywhere: an Instance, its name, or None for the default instance.
InstanceRef = Union["Instance", str, None]

__all__ = ["MODES", "InstanceRef", "ScannerUnavailable", "close_shared", "connect", "mode_of", "resolve_conninfo", "shared"]

T = TypeVar("T")

MODES = ("auto", "scanner", "copy")
#: Environment variable that picks the mode when ``connect(mode=None)``.
MODE_ENV = "CONTINUUM_ANALYTICS_MODE"
#: Below this many (estimated) rows a load is quick and shows no progress bar.
PROGRESS_MIN_ROWS = 50_000


class ScannerUnavailable(ContinuumError, RuntimeError):
    """The postgres scanner extension could not be loaded or could not attach the database
    (raised only with ``mode="scanner"``; ``"auto"`` falls back to COPY instead)."""


def _missing_extra(exc: ImportError) -> ImportError:
    return ImportError(
        f"continuum_nb analytics needs the analytics extra ({exc.name} is not installed); "
        "install it with: pip install 'continuum-nb[analytics]'"
    )


def resolve_conninfo(instance: InstanceRef = None, database_url: str | None = None) -> str:
    """The psycopg conninfo of the database an instance (a name, an ``Instance``, or None for the
    default instance) or an explicit URL points at, resolved like the rest of the API."""
    if database_url is not None and instance is not None:
        raise ConfigurationError("pass either instance= or database_url=, not both")
    if database_url is not None:
        return to_conninfo(database_url)
    from .engine.instance import resolve

    return resolve(instance).conninfo


def _extension_path(con: duckdb.DuckDBPyConnection) -> Path:
    """The postgres_scanner file shipped in its wheel, for the DuckDB version actually loaded."""
    try:
        import duckdb_extension_postgres_scanner as pkg
    except ImportError as exc:
        raise ScannerUnavailable(
            "duckdb-extension-postgres-scanner is not installed (pip install 'continuum-nb[analytics]')"
        ) from exc
    row = con.execute("PRAGMA version").fetchone()
    version = str(row[0]) if row else "unknown"
    path = Path(pkg.__file__).parent / "extensions" / version / "postgres_scanner.duckdb_extension"
    if not path.is_file():
        raise ScannerUnavailable(
            f"duckdb-extension-postgres-scanner ships no extension for DuckDB {version} ({path}); "
            "install the matching version: pip install 'duckdb-extension-postgres-scanner==<duckdb version>'"
        )
    return path


def _schema(conninfo: str) -> str:
    """The schema of the continuum tables (checks that the database is reachable and migrated)."""
    try:
        with psycopg.connect(conninfo, connect_timeout=10) as conn:
            row = conn.execute(q.FIND_SCHEMA).fetchone()
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailable(
            f"cannot connect to {describe(conninfo)}: {first}; check the URL and that PostgreSQL is running"
        ) from None
    if row is None:
        raise MigrationError(
            f"{describe(conninfo)} has no continuum tables; run `continuum migrate` first"
        )
    return str(row[0])


def _attach(con: duckdb.DuckDBPyConnection, conninfo: str, schema: str) -> None:
    import duckdb

    path = _extension_path(con)
    # A password goes into a DuckDB secret (redacted in duckdb_secrets()) rather than into the
    # ATTACH string, which duckdb_databases() shows to anyone querying the connection.
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    password = params.pop("password", None)
    try:
        con.execute(f"LOAD {q.quote_literal(str(path))}")
        if password is not None:
            con.execute(q.CREATE_SECRET(str(password)))
        con.execute(q.ATTACH(psycopg.conninfo.make_conninfo("", **params), secret=password is not None))
    except duckdb.Error as exc:
        raise ScannerUnavailable(f"the postgres scanner failed: {exc}") from exc
    for view in q.VIEWS:
        con.execute(q.scanner_view(view, schema))


def _estimate_rows(conn: psycopg.Connection[Any], schema: str, table: str) -> int | None:
    row = conn.execute(q.ESTIMATE_ROWS, {"table": f"{schema}.{table}"}).fetchone()
    if row is None or not row[1]:
        return None
    return int(row[0])


def _arrow_table(buffer: bytes, view: q.ViewSpec) -> pyarrow.Table:
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
    return _arrow_table(b"".join(parts), view)


def _load_copy(
    con: duckdb.DuckDBPyConnection, conninfo: str, schema: str, progress: bool | None
) -> None:
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


def _pick_mode(mode: str | None) -> str:
    chosen = mode if mode is not None else os.environ.get(MODE_ENV, "auto").strip().lower() or "auto"
    if chosen not in MODES:
        source = "mode=" if mode is not None else f"{MODE_ENV}="
        raise ConfigurationError(f"{source}{chosen!r} is not a valid analytics mode; use one of {', '.join(MODES)}")
    return chosen


def connect(
    instance: InstanceRef = None,
    *,
    database_url: str | None = None,
    mode: str | None = None,
    progress: bool | None = None,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the views ``runs``, ``events``, ``activity_tasks``, ``signals``.

    ``mode``: ``"auto"`` (the scanner, else the COPY fallback with a warning), ``"scanner"`` (fail
    if the scanner is unavailable) or ``"copy"`` (always the fallback); default from
    ``CONTINUUM_ANALYTICS_MODE``, else ``"auto"``. ``progress``: show a tqdm bar while the
    fallback loads (default: only for tables of 50,000 rows or more).
    """
    try:
        import duckdb
    except ImportError as exc:
        raise _missing_extra(exc) from None
    chosen = _pick_mode(mode)
    info = resolve_conninfo(instance, database_url)
    try:
        schema = _schema(info)
    except MigrationError:
        if database_url is not None:
            raise
        # Through an instance, a fresh database is migrated on first use, as every API call does
        # (when the instance's auto_migrate is on); then look again.
        from .engine.instance import resolve

        inst = resolve(instance)
        if not inst.config.auto_migrate:
            raise
        _ = inst.store
        schema = _schema(info)
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        if chosen != "copy":
            try:
                _attach(con, info, schema)
                return con
            except ScannerUnavailable as exc:
                if chosen == "scanner":
                    raise
                warnings.warn(
                    f"{exc}; loading the journal with COPY instead (a snapshot taken now)",
                    RuntimeWarning,
                    stacklevel=2,
                )
                con.close()
                con = duckdb.connect(":memory:")
                con.execute("SET TimeZone = 'UTC'")
        _load_copy(con, info, schema, progress)
        return con
    except BaseException:
        con.close()
        raise


def mode_of(con: duckdb.DuckDBPyConnection) -> str:
    """``"scanner"`` if the views read PostgreSQL live, ``"copy"`` if they hold a loaded snapshot."""
    row = con.execute("SELECT count(*) FROM duckdb_databases() WHERE database_name = 'pg'").fetchone()
    return "scanner" if row and row[0] else "copy"


# One scanner connection per database, reused by sql() and the ready-made queries called without
# a connection (attaching costs ~0.2 s). A copy-mode connection is a snapshot, so it is never
# cached: each call loads the journal afresh.
_shared: dict[str, duckdb.DuckDBPyConnection] = {}
_shared_lock = threading.Lock()


def shared(
    instance: InstanceRef, database_url: str | None, work: Callable[[duckdb.DuckDBPyConnection], T]
) -> T:
    """Run ``work`` on a connection to that database and return its result.

    For the scanner it gets a cursor of the cached connection (cheap, and safe from any thread);
    if PostgreSQL dropped the cached connection's sessions (a restart, a dropped database) the
    cache entry is replaced once. For the fallback it gets a fresh snapshot.
    """
    import duckdb

    info = resolve_conninfo(instance, database_url)
    for attempt in range(2):
        with _shared_lock:
            cached = _shared.get(info)
            if cached is None:
                fresh = connect(database_url=info)
                if mode_of(fresh) != "scanner":
                    cached = None
                    con = fresh
                else:
                    _shared[info] = cached = fresh
            if cached is not None:
                con = cached.cursor()
        try:
            return work(con)
        except duckdb.IOException:
            if cached is None or attempt:
                raise
            _forget(info, cached)
        finally:
            con.close()
    raise AssertionError("unreachable")


def _forget(info: str, con: duckdb.DuckDBPyConnection) -> None:
    with _shared_lock:
        if _shared.get(info) is con:
            del _shared[info]
    con.close()


def close_shared() -> None:
    """Close the cached connections (and their PostgreSQL sessions)."""
    with _shared_lock:
        for con in _shared.values():
            con.close()
        _shared.clear()
