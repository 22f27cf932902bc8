"""Applies ``migrations/*.sql`` in order, each in its own transaction, recorded in
``continuum_schema_migrations``.

The migrations folder is found inside the installed wheel (``continuum_nb/_data/migrations``)
or, in an editable install / source checkout, at the repository root.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from ..errors import MigrationError

__all__ = ["Migration", "applied", "available", "migrate", "migrations_dir"]

_NAME = re.compile(r"^(\d{14})_([a-z0-9_]+)\.sql$")
#: Revision aliases accepted by ``--to``.
ALIASES = {"v0.1": "20260502153302", "v0.2": "20260601000003"}

_CREATE_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS continuum_schema_migrations (
    version text PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


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
    return out


def applied(conn: psycopg.Connection) -> list[str]:
    exists = conn.execute("SELECT to_regclass('continuum_schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return []
    return [r[0] for r in conn.execute("SELECT version FROM continuum_schema_migrations ORDER BY version")]


def _resolve_target(to: str | None, migs: list[Migration]) -> str:
    if to is None:
        return migs[-1].version
    target = ALIASES.get(to, to)
    for m in migs:
        if target in (m.version, f"{m.version}_{m.name}", m.name):
            return m.version
    known = ", ".join(list(ALIASES) + [f"{m.version}_{m.name}" for m in migs])
    raise MigrationError(f"unknown revision {to!r}; known revisions: {known}")


def migrate(conninfo: str, to: str | None = None) -> list[Migration]:
    """Apply every pending migration up to ``to`` (a version, full name or alias). Returns those applied."""
    migs = available()
    target = _resolve_target(to, migs)
    done: list[Migration] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(_CREATE_VERSION_TABLE)
        have = set(applied(conn))
        for m in migs:
            if m.version > target:
                break
            if m.version in have:
                continue
            try:
                with conn.transaction():
                    # One advisory lock serialises concurrent migrators.
                    conn.execute("SELECT pg_advisory_xact_lock(7215093410)")
                    if conn.execute(
                        "SELECT 1 FROM continuum_schema_migrations WHERE version = %s", (m.version,)
                    ).fetchone():
                        continue
                    conn.execute(m.sql.encode())
                    conn.execute(
                        "INSERT INTO continuum_schema_migrations (version, name) VALUES (%s, %s)",
                        (m.version, m.name),
                    )
            except psycopg.Error as exc:
                raise MigrationError(f"migration {m.version}_{m.name} failed and was rolled back: {exc}") from exc
            done.append(m)
    return done
