"""``analytics.connect``: a DuckDB connection with the journal views over PostgreSQL.

Two ways to build the views, with identical names, columns and types:

- the postgres scanner (the default, ``scanner.py``): the database is attached ``READ_ONLY``
  and each view is a live projection of its table;
- the COPY fallback (``fallback.py``), when the extension cannot be loaded or attached (or
  ``mode="copy"`` / ``CONTINUUM_ANALYTICS_MODE=copy``): each table is streamed with COPY, parsed
  by Arrow in batches and stored in DuckDB: a snapshot taken at connect time, which
  ``fallback.refresh`` brings up to date by loading only what changed.

Neither path can change the journal: the scanner attaches read-only, and the fallback reads with
COPY ... TO in a read-only transaction.
"""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING, Union

import psycopg

from ..errors import ConfigurationError, DatabaseUnavailable, MigrationError
from ..store import analytics_sql as q
from ..store.database import conninfo as to_conninfo
from ..store.database import describe
from .fallback import load_copy
from .scanner import ScannerUnavailable, attach

if TYPE_CHECKING:
    import duckdb

    from ..engine.instance import Instance

#: What ``instance=`` accepts everywhere: an Instance, its name, or None for the default instance.
InstanceRef = Union["Instance", str, None]

__all__ = ["MODES", "MODE_ENV", "InstanceRef", "connect", "mode_of", "pick_mode", "resolve_conninfo"]

MODES = ("auto", "scanner", "copy")
#: Environment variable that picks the mode when ``connect(mode=None)``.
MODE_ENV = "CONTINUUM_ANALYTICS_MODE"


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
    from ..engine.instance import resolve

    return resolve(instance).conninfo


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


def pick_mode(mode: str | None) -> str:
    """The mode to connect in: ``mode`` if given, else ``CONTINUUM_ANALYTICS_MODE``, else auto."""
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
    chosen = pick_mode(mode)
    info = resolve_conninfo(instance, database_url)
    try:
        schema = _schema(info)
    except MigrationError:
        if database_url is not None:
            raise
        # Through an instance, a fresh database is migrated on first use, as every API call does
        # (when the instance's auto_migrate is on); then look again.
        from ..engine.instance import resolve

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
                attach(con, info, schema)
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
        load_copy(con, info, schema, progress)
        return con
    except BaseException:
        con.close()
        raise


def mode_of(con: duckdb.DuckDBPyConnection) -> str:
    """``"scanner"`` if the views read PostgreSQL live, ``"copy"`` if they read loaded tables."""
    row = con.execute("SELECT count(*) FROM duckdb_databases() WHERE database_name = 'pg'").fetchone()
    return "scanner" if row and row[0] else "copy"
