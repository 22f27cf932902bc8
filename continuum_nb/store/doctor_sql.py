"""The read-only queries of ``continuum doctor``: server facts, connections against
``max_connections``, stored ``%%workflow`` sources, and what the journal says about engine clocks.

Nothing here writes, and nothing loads or executes a stored source: the doctor only reads rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

__all__ = [
    "ClockSample",
    "ConnectionCount",
    "ServerFacts",
    "StoredCell",
    "connection_counts",
    "has_tables",
    "runs_on_version",
    "server_facts",
    "stored_cells",
    "timer_clock_offsets",
]


@dataclass(frozen=True)
class ServerFacts:
    version: str
    version_num: int
    max_connections: int
    #: Slots only superusers (and, from PostgreSQL 16, ``pg_use_reserved_connections``) may use.
    reserved: int
    #: ``clock_timestamp()``: the server's clock when the row was made.
    clock: datetime


@dataclass(frozen=True)
class ConnectionCount:
    database: str | None
    application_name: str
    user: str | None
    count: int


@dataclass(frozen=True)
class StoredCell:
    name: str
    version_hash: str
    source: str


@dataclass(frozen=True)
class ClockSample:
    """Timers started in the window: each ``timer_started`` event carries ``fire_at`` and
    ``duration_s`` computed with the clock of the engine that ran the wake, and the event's
    ``inserted_at`` is the server's clock at the commit of that wake, a few milliseconds later.
    ``(fire_at - duration_s) - inserted_at`` is that engine's clock offset minus the wake's
    duration: a positive value is a lower bound of how far ahead of the server its clock was."""

    timers: int
    max_ahead_s: float | None
    max_behind_s: float | None


def server_facts(conn: psycopg.Connection[Any]) -> ServerFacts:
    row = conn.execute(
        """
        SELECT current_setting('server_version'), current_setting('server_version_num')::int,
               current_setting('max_connections')::int,
               current_setting('superuser_reserved_connections')::int
                 + coalesce(current_setting('reserved_connections', true)::int, 0),
               clock_timestamp()
        """
    ).fetchone()
    assert row is not None
    return ServerFacts(str(row[0]), int(row[1]), int(row[2]), int(row[3]), row[4])


def connection_counts(conn: psycopg.Connection[Any]) -> list[ConnectionCount]:
    """Client sessions of the whole server (this one included) by database, application, role."""
    rows = conn.execute(
        """
        SELECT datname, coalesce(application_name, ''), usename, count(*)::int
          FROM pg_stat_activity
         WHERE backend_type = 'client backend'
         GROUP BY 1, 2, 3
         ORDER BY 4 DESC, 1, 2
        """
    ).fetchall()
    return [ConnectionCount(r[0], str(r[1]), r[2], int(r[3])) for r in rows]


def has_tables(conn: psycopg.Connection[Any]) -> bool:
    """Whether the continuum tables exist (a database never migrated has none)."""
    row = conn.execute(
        "SELECT to_regclass('continuum_runs') IS NOT NULL AND to_regclass('continuum_workflow_versions') IS NOT NULL"
    ).fetchone()
    return bool(row and row[0])


def stored_cells(conn: psycopg.Connection[Any]) -> list[StoredCell]:
    """Every stored ``%%workflow`` cell version (the rows an engine may load and execute)."""
    rows = conn.execute(
        "SELECT name, version_hash, source FROM continuum_workflow_versions WHERE origin = 'cell' ORDER BY name, version_hash"
    ).fetchall()
    return [StoredCell(str(r[0]), str(r[1]), str(r[2])) for r in rows]


def runs_on_version(conn: psycopg.Connection[Any], name: str, version_hash: str) -> int:
    """Runs of that workflow version that are not finished (they need its code to go on)."""
    row = conn.execute(
        "SELECT count(*) FROM continuum_runs WHERE workflow = %s AND version_hash = %s "
        "AND state IN ('running', 'suspended')",
        (name, version_hash),
    ).fetchone()
    return int(row[0]) if row else 0


def timer_clock_offsets(conn: psycopg.Connection[Any], window_s: float) -> ClockSample:
    """See ``ClockSample``: timers started in the last ``window_s`` seconds (only the newest
    partitions are scanned, by ``inserted_at``)."""
    row = conn.execute(
        """
        SELECT count(*)::int, max(d), min(d)
          FROM (SELECT extract(epoch FROM ((payload->>'fire_at')::timestamptz
                                           - make_interval(secs => (payload->>'duration_s')::float8))
                                          - inserted_at)::float8 AS d
                  FROM continuum_events
                 WHERE event_type = 'timer_started'
                   AND inserted_at > now() - make_interval(secs => %(window)s::float8)
                   AND payload ? 'fire_at' AND payload ? 'duration_s') AS t
        """,
        {"window": window_s},
    ).fetchone()
    if row is None or not row[0]:
        return ClockSample(0, None, None)
    return ClockSample(int(row[0]), float(row[1]), float(-row[2]))
