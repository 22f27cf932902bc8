"""``cn.health(instance=None)``: what the database says about the engines attached to it.

- **engines**: every owner of a run or task lease. Its heartbeat sets ``lease_expires_at = now()
  + lease TTL`` on everything it holds, so its latest expiry minus the TTL is its last renewal
  and ``lag`` is how long ago that was. The TTL is not stored: the one assumed is this process's
  (``lease_ttl``), so the lag of an engine configured with another TTL is off by the difference.
  An engine that holds nothing is invisible there; its connections (``continuum_nb:<instance>``
  in ``pg_stat_activity``, unless its URL names another ``application_name``) are listed too.
- **overdue runs**: runnable (``next_wakeup_at``, or never run) for longer than ``slack``
  seconds, and no live lease: no live engine that knows the workflow is claiming them.
- **unrunnable workflows**: the workflows of those runs.
- **stuck tasks**: activity tasks whose lease expired more than ``slack`` seconds ago (no live
  engine recovered it), or available and due for longer than that.
- **stale engines**: lease owners whose leases all expired more than ``slack`` seconds ago and
  were not recovered (no live engine runs recovery, or that engine's runs are stuck).

``Health.ok`` is true when there is none of the last four. Reads only; PostgreSQL only.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from .errors import ConfigurationError, MigrationError
from .store import doctor_sql, health_sql
from .store.database import describe
from .store.health_sql import OverdueRun, OverdueWorkflow, StuckTask
from .store.migrate import connect
from .store.sessions_sql import Session, sessions

__all__ = ["ConnectionGroup", "EngineSeen", "Health", "check", "health"]

#: Runs and tasks may be due this long (seconds) before they count as overdue or stuck.
DEFAULT_SLACK = 60.0
#: At most this many overdue runs and stuck tasks are listed (the workflows list is complete).
DEFAULT_LIMIT = 50


@dataclass(frozen=True)
class EngineSeen:
    owner: str
    runs: int
    tasks: int
    #: Latest lease expiry minus the assumed lease TTL (the database's clock).
    last_renewal: datetime
    #: Seconds since ``last_renewal``.
    lag_s: float
    #: Some lease of it has not expired yet.
    live: bool
    #: Not live, and its leases expired more than ``slack`` seconds ago without being recovered.
    stale: bool


@dataclass(frozen=True)
class ConnectionGroup:
    application_name: str
    count: int
    users: tuple[str, ...]
    clients: tuple[str, ...]
    oldest: datetime | None


@dataclass
class Health:
    checked_at: datetime
    database: str
    lease_ttl: float
    slack: float
    engines: list[EngineSeen] = field(default_factory=list)
    connections: list[ConnectionGroup] = field(default_factory=list)
    overdue_runs: list[OverdueRun] = field(default_factory=list)
    overdue_total: int = 0
    unrunnable_workflows: list[OverdueWorkflow] = field(default_factory=list)
    stuck_tasks: list[StuckTask] = field(default_factory=list)

    @property
    def stale_engines(self) -> list[EngineSeen]:
        return [e for e in self.engines if e.stale]

    @property
    def live_engines(self) -> list[EngineSeen]:
        return [e for e in self.engines if e.live]

    @property
    def ok(self) -> bool:
        return not (self.overdue_runs or self.unrunnable_workflows or self.stuck_tasks or self.stale_engines)

    def problems(self) -> list[str]:
        """One line per problem, each with what to do."""
        out = []
        for wf in self.unrunnable_workflows:
            out.append(f"workflow {wf.workflow!r}: {wf.runs} run(s) due since {_ago(self.checked_at, wf.oldest_due_at)} "
                       "that no live engine claimed: start a worker that imports it (continuum worker --import "
                       "MODULE; a %%workflow cell needs stored code allowed), or add workers if they are saturated")
        for t in self.stuck_tasks:
            if t.state == "leased":
                out.append(f"task {t.id} ({t.activity}, run {t.run_id}): lease of {t.lease_owner} expired "
                           f"{_ago(self.checked_at, t.since)} and no engine recovered it: start an engine")
            else:
                out.append(f"task {t.id} ({t.activity}, run {t.run_id}): available and due since "
                           f"{_ago(self.checked_at, t.since)}: no live engine defines activity {t.activity!r}, "
                           "or the engines are saturated (raise --concurrency, add workers)")
        for e in self.stale_engines:
            out.append(f"engine {e.owner}: last renewal {e.lag_s:.0f}s ago, its {e.runs} run and {e.tasks} task "
                       "lease(s) expired and were not recovered: no engine has swept since (a live engine "
                       "recovers expired leases every lease TTL): start one")
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: timestamps as ISO 8601 strings, ids as strings, plus ``ok`` and ``problems``."""
        data = _jsonable(asdict(self))
        data["ok"] = self.ok
        data["problems"] = self.problems()
        return data

    def __str__(self) -> str:
        at = self.checked_at.astimezone(timezone.utc)
        lines = [f"continuum health of {self.database} at {at:%Y-%m-%d %H:%M:%S}Z: {'OK' if self.ok else 'NOT OK'}",
                 f"(lag assumes a lease TTL of {self.lease_ttl:g}s; due or expired for more than {self.slack:g}s "
                 "counts as overdue)"]
        lines.append(f"engines seen through their leases: {len(self.live_engines)} live, {len(self.engines)} in all")
        for e in self.engines:
            state = "live " if e.live else ("STALE" if e.stale else "gone ")
            lines.append(f"  {state} {e.owner}  last renewal {e.lag_s:.1f}s ago  runs {e.runs}  tasks {e.tasks}")
        lines.append(f"connections to this database (pg_stat_activity): {sum(c.count for c in self.connections)}")
        for c in self.connections:
            who = ", ".join(c.users) or "?"
            where = ", ".join(c.clients) or "?"
            lines.append(f"  {c.application_name or '(no application_name)'}: {c.count} as {who} from {where}")
        lines.append(f"overdue runs: {self.overdue_total}")
        for r in self.overdue_runs:
            lines.append(f"  {r.id}  {r.workflow}  {r.state}  due {_ago(self.checked_at, r.due_at)}")
        if self.overdue_total > len(self.overdue_runs):
            lines.append(f"  ... and {self.overdue_total - len(self.overdue_runs)} more")
        lines.append(f"stuck tasks: {len(self.stuck_tasks)}")
        problems = self.problems()
        if problems:
            lines.append("problems:")
            lines += [f"  - {p}" for p in problems]
        return "\n".join(lines)


def _ago(now: datetime, then: datetime | None) -> str:
    if then is None:
        return "an unknown time ago"
    return f"{max(0.0, (now - then).total_seconds()):.0f}s ago"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)  # UUIDs


def _group(found: Iterable[Session]) -> list[ConnectionGroup]:
    groups: dict[str, list[Session]] = {}
    for s in found:
        groups.setdefault(s.application_name, []).append(s)
    out = []
    for name, members in sorted(groups.items()):
        starts = [s.since for s in members if s.since is not None]
        out.append(ConnectionGroup(
            name, len(members), tuple(sorted({s.user for s in members if s.user})),
            tuple(sorted({s.client.rsplit(":", 1)[0] if s.client != "local socket" else s.client
                          for s in members if s.client})),
            min(starts) if starts else None,
        ))
    return out


def _check_number(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise ValueError(f"{name} must be a finite number of seconds >= 0, not {value!r}")
    return float(value)


def check(conninfo: str, *, lease_ttl: float, slack: float = DEFAULT_SLACK, limit: int = DEFAULT_LIMIT) -> Health:
    """The health of the database at ``conninfo`` (a psycopg conninfo), assuming ``lease_ttl``."""
    ttl = _check_number("lease_ttl", lease_ttl)
    slack = _check_number("slack", slack)
    with connect(conninfo, autocommit=True, application_name="continuum_nb health") as conn:
        if not doctor_sql.has_tables(conn):
            raise MigrationError(f"{describe(conninfo)} has no continuum tables; run `continuum migrate`")
        now = health_sql.db_now(conn)
        engines = []
        for o in health_sql.lease_owners(conn):
            renewed = o.expires_at - timedelta(seconds=ttl)
            engines.append(EngineSeen(
                o.owner, o.runs, o.tasks, renewed, (now - renewed).total_seconds(), live=o.expires_at > now,
                stale=o.expires_at < now - timedelta(seconds=slack),
            ))
        workflows = health_sql.overdue_workflows(conn, slack)
        return Health(
            checked_at=now, database=describe(conninfo), lease_ttl=ttl, slack=slack, engines=engines,
            connections=_group(sessions(conn)),
            overdue_runs=health_sql.overdue_runs(conn, slack, limit), overdue_total=sum(w.runs for w in workflows),
            unrunnable_workflows=workflows, stuck_tasks=health_sql.stuck_tasks(conn, slack, limit),
        )


def health(instance: Any = None, *, slack: float = DEFAULT_SLACK, limit: int = DEFAULT_LIMIT) -> Health:
    """The health of ``instance``'s database (None: the default instance; a name or an Instance).

    ``str(cn.health())`` is a readable report; ``.ok`` is False when runs are overdue, tasks are
    stuck, or an engine's leases expired without being recovered. PostgreSQL only.
    """
    from .engine.instance import resolve

    inst = resolve(instance)
    given = None if inst._own_store else inst._store
    if given is not None:
        from .store.postgres import PostgresStore

        if not isinstance(given, PostgresStore):
            raise ConfigurationError(
                f"cn.health() reads PostgreSQL, and instance {inst.name!r} uses a {type(given).__name__}; "
                "run it on an instance with a database"
            )
    return check(inst.conninfo, lease_ttl=inst.config.lease_ttl, slack=slack, limit=limit)


class _CallableModule(types.ModuleType):
    """Importing ``continuum_nb.health`` makes the module, not the function, the attribute
    ``continuum_nb.health``; calling the module keeps ``cn.health(...)`` working either way."""

    def __call__(self, instance: Any = None, *, slack: float = DEFAULT_SLACK, limit: int = DEFAULT_LIMIT) -> Health:
        return health(instance, slack=slack, limit=limit)


sys.modules[__name__].__class__ = _CallableModule
