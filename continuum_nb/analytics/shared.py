"""The shared analytics connections: one connection per database, reused by ``sql()`` and the
ready-made queries called without a connection (attaching costs ~0.2 s). A copy-mode connection
is brought up to date before each call with ``fallback.refresh``, which loads only what changed
since the previous call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from .connection import InstanceRef, connect, mode_of, resolve_conninfo
from .fallback import refresh

if TYPE_CHECKING:
    import duckdb

__all__ = ["close_shared", "shared"]

T = TypeVar("T")

_shared: dict[str, duckdb.DuckDBPyConnection] = {}
_shared_lock = threading.Lock()


def shared(
    instance: InstanceRef, database_url: str | None, work: Callable[[duckdb.DuckDBPyConnection], T]
) -> T:
    """Run ``work`` on a connection to that database and return its result.

    It gets a cursor of the cached connection (cheap, and safe from any thread); if PostgreSQL
    dropped the cached connection's sessions (a restart, a dropped database) the cache entry is
    replaced once. A copy-mode connection is refreshed first (new rows only), under the lock, so
    concurrent calls never see a half-applied refresh.
    """
    import duckdb

    info = resolve_conninfo(instance, database_url)
    for attempt in range(2):
        with _shared_lock:
            cached = _shared.get(info)
            if cached is None:
                _shared[info] = cached = connect(database_url=info)
            elif mode_of(cached) == "copy":
                refresh(cached)
            con = cached.cursor()
        try:
            return work(con)
        except duckdb.IOException:
            if attempt:
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
