"""Who is connected: the sessions of ``pg_stat_activity`` (read-only).

Used by ``continuum db status`` (every session of the embedded server), ``cn.health()`` (the
sessions of one database, grouped by ``application_name``; an engine's pool and LISTEN
connections are named ``continuum_nb:<instance>`` unless the URL sets another name) and
``continuum doctor`` (connections against ``max_connections``). A role that is neither a
superuser nor a member of ``pg_read_all_stats`` sees other roles' sessions with some columns
hidden (NULL): what is shown is what this role may see.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

__all__ = ["Session", "sessions"]


@dataclass(frozen=True)
class Session:
    pid: int
    database: str | None
    user: str | None
    application_name: str
    #: ``host:port`` of a TCP client, ``local socket`` for a Unix-socket one, None when hidden.
    client: str | None
    #: When the session connected (``backend_start``).
    since: datetime | None
    state: str | None


_SESSIONS = """
SELECT pid, datname, usename, coalesce(application_name, ''),
       CASE WHEN client_addr IS NOT NULL THEN host(client_addr) || ':' || client_port
            WHEN client_port = -1 THEN 'local socket' END,
       backend_start, state
  FROM pg_stat_activity
 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
   AND (%(all)s OR datname = current_database())
 ORDER BY datname NULLS LAST, application_name, backend_start, pid
"""


def sessions(conn: psycopg.Connection[Any], *, all_databases: bool = False) -> list[Session]:
    """The client sessions of this database (``all_databases``: of the whole server), without
    the session asking."""
    rows = conn.execute(_SESSIONS, {"all": all_databases}).fetchall()
    return [Session(int(r[0]), r[1], r[2], str(r[3]), r[4], r[5], r[6]) for r in rows]
