"""The shared analytics connections: one scanner connection per database, reused by ``sql()`` and
the ready-made queries called without a connection (attaching costs ~0.2 s). A copy-mode
connection is a snapshot, so it is never cached: each call loads the journal afresh.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from .connection import InstanceRef, connect, mode_of, resolve_conninfo

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
