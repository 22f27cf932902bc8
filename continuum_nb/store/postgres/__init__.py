"""The PostgreSQL store: ``PostgresStore`` and its parts.

- ``store``: ``PostgresStore``, the store contract (``store.base.Store``) on a connection pool;
- ``pool``: the connection pool and the mapping of database errors to continuum errors;
- ``listen``: ``PgListener``, LISTEN on a connection of its own that survives reconnects;
- ``sql``: every statement, as constants prepared once per connection;
- ``wake``: one wake, one call of ``continuum_commit_wake``: its values and its prepared execution.
"""

from __future__ import annotations

from .store import PostgresStore

__all__ = ["PostgresStore"]
