"""The read-only queries of ``cn.health()`` and of ``continuum worker``'s drain check.

Engines are seen through their leases: an engine's heartbeat sets ``lease_expires_at = now() +
lease TTL`` on every run and task it holds, so the latest expiry of an owner, minus the TTL, is
its last renewal. An engine that holds nothing is not visible here (its connections are: see
``sessions_sql``). Every timestamp is the database's clock.

Each query goes through an index: the partial lease indexes (``continuum_runs_lease_idx``,
``continuum_activity_tasks_lease_idx``), the runnable-runs index on ``(workflow,
next_wakeup_at)`` and the available-tasks index on ``available_at``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

__all__ = [
    "LeaseOwner",
    "OverdueRun",
    "OverdueWorkflow",
    "StuckTask",
    "db_now",
    "lease_owners",
    "leases_held_by",
    "overdue_runs",
    "overdue_workflows",
    "stuck_tasks",
]


@dataclass(frozen=True)
class LeaseOwner:
    owner: str
    runs: int
    tasks: int
    #: The latest lease expiry among its runs and tasks.
    expires_at: datetime


@dataclass(frozen=True)
class OverdueRun:
    id: UUID
    workflow: str
    state: str
    #: ``next_wakeup_at``, or ``started_at`` for a run that never ran.
    due_at: datetime
    lease_owner: str | None


@dataclass(frozen=True)
class OverdueWorkflow:
    workflow: str
    runs: int
    oldest_due_at: datetime


@dataclass(frozen=True)
class StuckTask:
    id: UUID
    run_id: UUID
    activity: str
    state: str
    #: ``available_at`` of an available task, ``lease_expires_at`` of a leased one.
    since: datetime | None
    lease_owner: str | None


def db_now(conn: psycopg.Connection[Any]) -> datetime:
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    return row[0]


_OWNERS = """
SELECT owner, sum(runs)::int, sum(tasks)::int, max(expires_at)
  FROM (SELECT lease_owner AS owner, 1 AS runs, 0 AS tasks, lease_expires_at AS expires_at
          FROM continuum_runs WHERE lease_owner IS NOT NULL
        UNION ALL
        SELECT lease_owner, 0, 1, lease_expires_at
          FROM continuum_activity_tasks WHERE state = 'leased' AND lease_owner IS NOT NULL) AS l
 GROUP BY owner
 ORDER BY max(expires_at) DESC NULLS LAST, owner
"""


def lease_owners(conn: psycopg.Connection[Any]) -> list[LeaseOwner]:
    """Every owner of a run or task lease, live or expired, latest renewal first."""
    return [LeaseOwner(str(r[0]), int(r[1]), int(r[2]), r[3]) for r in conn.execute(_OWNERS)]


# Runnable (as the claim query sees it) for longer than the slack, and nobody holds a live lease.
_OVERDUE_WHERE = """
  FROM continuum_runs
 WHERE state IN ('running', 'suspended')
   AND (next_wakeup_at < now() - make_interval(secs => %(slack)s::float8)
        OR (next_wakeup_at IS NULL AND state = 'running'
            AND started_at < now() - make_interval(secs => %(slack)s::float8)))
   AND (lease_owner IS NULL OR lease_expires_at IS NULL OR lease_expires_at <= now())
"""


def overdue_runs(conn: psycopg.Connection[Any], slack: float, limit: int) -> list[OverdueRun]:
    """Runs due more than ``slack`` seconds ago that no live lease holds (oldest first)."""
    rows = conn.execute(
        "SELECT id, workflow, state, coalesce(next_wakeup_at, started_at), lease_owner"
        + _OVERDUE_WHERE + " ORDER BY 4, id LIMIT %(limit)s",
        {"slack": slack, "limit": limit},
    ).fetchall()
    return [OverdueRun(r[0], str(r[1]), str(r[2]), r[3], r[4]) for r in rows]


def overdue_workflows(conn: psycopg.Connection[Any], slack: float) -> list[OverdueWorkflow]:
    """The workflows of those runs, with how many wait and since when (most waiting first)."""
    rows = conn.execute(
        "SELECT workflow, count(*)::int, min(coalesce(next_wakeup_at, started_at))"
        + _OVERDUE_WHERE + " GROUP BY workflow ORDER BY 2 DESC, 1",
        {"slack": slack},
    ).fetchall()
    return [OverdueWorkflow(str(r[0]), int(r[1]), r[2]) for r in rows]


_STUCK = """
(SELECT id, run_id, activity, state, lease_expires_at AS since, lease_owner
   FROM continuum_activity_tasks
  WHERE state = 'leased'
    AND (lease_expires_at IS NULL OR lease_expires_at < now() - make_interval(secs => %(slack)s::float8)))
UNION ALL
(SELECT id, run_id, activity, state, available_at, lease_owner
   FROM continuum_activity_tasks
  WHERE state = 'available' AND available_at < now() - make_interval(secs => %(slack)s::float8))
ORDER BY since NULLS FIRST, id
LIMIT %(limit)s
"""


def stuck_tasks(conn: psycopg.Connection[Any], slack: float, limit: int) -> list[StuckTask]:
    """Activity tasks whose lease expired more than ``slack`` seconds ago (no engine recovered
    it), or available and due for longer than that (no engine that knows the activity took it)."""
    rows = conn.execute(_STUCK, {"slack": slack, "limit": limit}).fetchall()
    return [StuckTask(r[0], r[1], str(r[2]), str(r[3]), r[4], r[5]) for r in rows]


_HELD_BY = """
SELECT 'run', id, workflow, NULL::uuid, lease_expires_at FROM continuum_runs
 WHERE lease_owner = %(owner)s
UNION ALL
SELECT 'task', id, activity, run_id, lease_expires_at FROM continuum_activity_tasks
 WHERE state = 'leased' AND lease_owner = %(owner)s
ORDER BY 1, 5, 2
"""


def leases_held_by(conn: psycopg.Connection[Any], owner: str) -> list[tuple[str, UUID, str, UUID | None, datetime | None]]:
    """``(kind, id, workflow or activity, run id of a task, expires at)`` of every lease ``owner``
    still holds: what is left to lease expiry when an engine stops."""
    return [(str(r[0]), r[1], str(r[2]), r[3], r[4]) for r in conn.execute(_HELD_BY, {"owner": owner})]
