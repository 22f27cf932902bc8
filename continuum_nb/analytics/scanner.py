"""The postgres scanner path of ``analytics.connect``: live, read-only views over PostgreSQL.

The extension is loaded from the file shipped in the ``duckdb-extension-postgres-scanner`` wheel
(``LOAD '<path>'``; nothing is downloaded and nothing is written to ``~/.duckdb``), the database
is attached ``READ_ONLY`` and each view is a live projection of its table, so queries always see
the current journal and push column selection and filters down to PostgreSQL.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

from ..errors import ContinuumError
from ..store import analytics_sql as q

if TYPE_CHECKING:
    import duckdb

__all__ = ["ScannerUnavailable", "attach", "conninfo_of"]

#: The conninfo of each scanner connection of this process, by the token its _continuum_scanner
#: row holds (the password stays in this process, as in the DuckDB secret).
_CONNINFOS: dict[str, str] = {}


def conninfo_of(token: str | None) -> str | None:
    """The conninfo a scanner connection was attached with (None if unknown to this process)."""
    return _CONNINFOS.get(token) if token else None


class ScannerUnavailable(ContinuumError, RuntimeError):
    """The postgres scanner extension could not be loaded or could not attach the database
    (raised only with ``mode="scanner"``; ``"auto"`` falls back to COPY instead)."""


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


def attach(con: duckdb.DuckDBPyConnection, conninfo: str, schema: str) -> None:
    """Load the scanner, attach the database read-only as ``pg`` and create the views over it;
    ``ScannerUnavailable`` if the extension cannot be loaded or cannot attach."""
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
    for _, text in q.LINK_VIEWS:
        con.execute(text)
    token = secrets.token_hex(16)
    _CONNINFOS[token] = conninfo
    con.execute(q.SCANNER_STATE, [schema, token])
