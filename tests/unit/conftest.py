"""Fixtures shared by the store tests of this folder (tests/unit/test_store_*.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from continuum_nb.store.memory import MemoryStore
from continuum_nb.store.postgres import PostgresStore


@pytest.fixture(params=["memory", "postgres"])
def store(request: pytest.FixtureRequest, pg_server: str) -> Iterator[Any]:
    """A MemoryStore, then a PostgresStore on a fresh database of each test server (its
    conninfo in ``store.db_url``, for rows a test writes directly)."""
    if request.param == "memory":
        s: Any = MemoryStore()
    else:
        s = PostgresStore(request.getfixturevalue("db_url"), pool_size=2)
        s.db_url = request.getfixturevalue("db_url")
    try:
        yield s
    finally:
        s.close()
