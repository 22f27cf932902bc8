"""Testing helpers and a pytest plugin for users' workflow tests.

Enable with ``pytest_plugins = ["continuum_nb.testing"]`` (or ``-p continuum_nb.testing``).
Fixtures:

- ``virtual_clock``: a :class:`VirtualClock`; ``virtual_clock.advance(cn.days(3))`` fires every
  timer that became due, at once.
- ``continuum_database_url``: a fresh, migrated database for the test (on
  ``CONTINUUM_TEST_ADMIN_URL``'s server when set, else the embedded PostgreSQL), dropped after.
- ``continuum_instance``: a fresh ``cn.Instance`` on that database, driven by ``virtual_clock``,
  stopped after the test. Pass ``instance=continuum_instance`` to API calls.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

from .engine.clock import SystemClock, VirtualClock

__all__ = ["SystemClock", "VirtualClock", "fresh_database", "drop_database"]


def fresh_database(admin_conninfo: str | None = None) -> tuple[str, str]:
    """Create an empty database and migrate it; returns (name, conninfo)."""
    import psycopg

    from .store.database import resolve_url
    from .store.migrate import migrate

    admin = admin_conninfo or os.environ.get("CONTINUUM_TEST_ADMIN_URL") or resolve_url(None)
    name = "continuum_t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # name is generated above, never user input
    url = psycopg.conninfo.make_conninfo(admin, dbname=name)
    migrate(url)
    return name, url


def drop_database(name: str, admin_conninfo: str | None = None) -> None:
    import psycopg

    from .store.database import resolve_url

    if not name.startswith("continuum_t_") or not name.replace("_", "").isalnum():
        raise ValueError(f"refusing to drop {name!r}: not a test database")
    admin = admin_conninfo or os.environ.get("CONTINUUM_TEST_ADMIN_URL") or resolve_url(None)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


try:  # the fixtures need pytest; the helpers above do not
    import pytest
except ImportError:  # pragma: no cover
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def virtual_clock() -> VirtualClock:
        return VirtualClock()

    @pytest.fixture
    def continuum_database_url() -> Iterator[str]:
        name, url = fresh_database()
        try:
            yield url
        finally:
            drop_database(name)

    @pytest.fixture
    def continuum_instance(continuum_database_url: str, virtual_clock: VirtualClock) -> Iterator[Any]:
        from .engine.instance import Instance

        inst = Instance(f"test-{uuid.uuid4().hex[:8]}", database_url=continuum_database_url,
                        clock=virtual_clock, poll_interval=0.2, lease_ttl=10.0)
        try:
            yield inst
        finally:
            inst.close()
