"""Applies ``migrations/*.sql`` in order, each in its own transaction, recorded in
``continuum_schema_migrations``.

The migrations folder is found inside the installed wheel (``continuum_nb/_data/migrations``)
or, in an editable install / source checkout, at the repository root.

Concurrent migrators (several engines booting at once, a deploy script and a notebook) are
serialised by one session-level advisory lock held for the whole run, so the version table is
created once and every migration is applied exactly once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from ..errors import DatabaseUnavailable, MigrationError

__all__ = [
    "ALIASES",
    "CREATE_VERSION_TABLE",
    "LOCK_KEY",
    "Migration",
    "applied",
    "available",
    "connect",
    "migrate",
    "migrations_dir",
    "pending",
    "print_sql",
    "resolve_target",
]

_NAME = re.compile(r"\A([0-9]{14})_([a-z0-9_]+)\.sql\Z")
#: Revision aliases accepted by ``--to``. ``head`` is always the newest migration.
ALIASES = {"v0.1": "20260502153302", "v0.2": "20260601000003"}
#: The advisory lock key every migrator takes (an arbitrary constant, unique to continuum_nb).
LOCK_KEY = 7215093410

CREATE_VERSION_TABLE = """CREATE TABLE IF NOT EXISTS continuum_schema_migrations (
    version text PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path

    @property
    def revision(self) -> str:
        """``<version>_<name>``, the file name without ``.sql``."""
        return f"{self.version}_{self.name}"

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


def _one_line(exc: BaseException) -> str:
    """psycopg messages span several lines (libpq adds hints); the CLI prints one."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


@contextmanager
def connect(conninfo: str, **kwargs: Any) -> Iterator[psycopg.Connection[Any]]:
    """``psycopg.connect`` that reports an unreachable server as ``DatabaseUnavailable``."""
    try:
        conn = psycopg.connect(conninfo, connect_timeout=10, **kwargs)
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL ({_one_line(exc)}); check --database-url / "
            "CONTINUUM_DATABASE_URL and that the server is running"
        ) from None
    with conn:
        yield conn


def migrations_dir() -> Path:
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_data" / "migrations", here.parent / "migrations"):
        if candidate.is_dir():
            return candidate
    raise MigrationError("the migrations folder is missing from this installation; reinstall continuum-nb")


def available() -> list[Migration]:
    out = []
    for p in sorted(migrations_dir().iterdir()):
        m = _NAME.match(p.name)
        if m:
            out.append(Migration(m.group(1), m.group(2), p))
    if not out:
        raise MigrationError(f"no migrations found in {migrations_dir()}; reinstall continuum-nb")
    return out


def applied(conn: psycopg.Connection[Any]) -> list[str]:
    """Versions recorded in ``continuum_schema_migrations`` (empty when the table does not exist)."""
    exists = conn.execute("SELECT to_regclass('continuum_schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return []
    return [r[0] for r in conn.execute("SELECT version FROM continuum_schema_migrations ORDER BY version")]


def resolve_target(to: str | None, migs: list[Migration] | None = None) -> str:
    """The version ``to`` names: an alias (``v0.1``, ``v0.2``, ``head``), a version, a full
    revision (``<version>_<name>``) or a name. Raises ``MigrationError`` for anything else."""
    migs = available() if migs is None else migs
    if to is None or to == "head":
        return migs[-1].version
    target = ALIASES.get(to, to)
    for m in migs:
        if target in (m.version, m.revision, m.name):
            return m.version
    known = ", ".join([*ALIASES, "head"] + [m.revision for m in migs])
    raise MigrationError(f"unknown revision {to!r}; known revisions: {known}")


def _todo(have: set[str], migs: list[Migration], target: str) -> list[Migration]:
    return [m for m in migs if m.version <= target and m.version not in have]


def pending(conninfo: str, to: str | None = None) -> list[Migration]:
    """The migrations ``migrate(conninfo, to)`` would apply now. Reads only; changes nothing."""
    migs = available()
    target = resolve_target(to, migs)
    with connect(conninfo, autocommit=True) as conn:
        return _todo(set(applied(conn)), migs, target)


def print_sql(todo: list[Migration]) -> str:
    """The SQL ``migrate`` runs for these migrations, as a psql-runnable script."""
    if not todo:
        return "-- nothing to apply: the database is already at the requested revision\n"
    parts = [CREATE_VERSION_TABLE + ";\n"]
    for m in todo:
        parts.append(
            f"-- {m.revision}\nBEGIN;\nSELECT pg_advisory_xact_lock({LOCK_KEY});\n"
            f"{m.sql.rstrip()}\n"
            f"INSERT INTO continuum_schema_migrations (version, name) VALUES ('{m.version}', '{m.name}');\n"
            "COMMIT;\n"
        )
    return "\n".join(parts)


def migrate(conninfo: str, to: str | None = None) -> list[Migration]:
    """Apply every pending migration up to ``to`` (a version, full name or alias). Returns those applied.

    Each migration runs in its own transaction together with its version row, so a failure
    leaves the database at the previous revision. Migrations past ``to`` that are already
    applied stay applied (there are no down-migrations).
    """
    migs = available()
    target = resolve_target(to, migs)
    done: list[Migration] = []
    with connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        try:
            conn.execute(CREATE_VERSION_TABLE)
            # Read under the lock: another migrator may have just finished.
            for m in _todo(set(applied(conn)), migs, target):
                try:
                    with conn.transaction():
                        conn.execute(m.sql.encode())
                        conn.execute(
                            "INSERT INTO continuum_schema_migrations (version, name) VALUES (%s, %s)",
                            (m.version, m.name),
                        )
                except psycopg.Error as exc:
                    raise MigrationError(
                        f"migration {m.revision} failed and was rolled back: {_one_line(exc)}"
                    ) from exc
                done.append(m)
        finally:
            if not conn.closed and not conn.broken:
                conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    return done
