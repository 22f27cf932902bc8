"""Fresh, migrated PostgreSQL databases for tests, and dropping them (only the ones made here:
their names start with ``continuum_t_``)."""

from __future__ import annotations

import os
import uuid

__all__ = ["drop_database", "fresh_database"]


def fresh_database(admin_conninfo: str | None = None) -> tuple[str, str]:
    """Create an empty database and migrate it; returns (name, conninfo)."""
    import psycopg

    from ..store.database import resolve_url
    from ..store.migrate import migrate

    admin = admin_conninfo or os.environ.get("CONTINUUM_TEST_ADMIN_URL") or resolve_url(None)
    name = "continuum_t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # name is generated above, never user input
    url = psycopg.conninfo.make_conninfo(admin, dbname=name)
    migrate(url)
    return name, url


def drop_database(name: str, admin_conninfo: str | None = None) -> None:
    import psycopg

    from ..store.database import resolve_url

    if not name.startswith("continuum_t_") or not name.replace("_", "").isalnum():
        raise ValueError(f"refusing to drop {name!r}: not a test database")
    admin = admin_conninfo or os.environ.get("CONTINUUM_TEST_ADMIN_URL") or resolve_url(None)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
