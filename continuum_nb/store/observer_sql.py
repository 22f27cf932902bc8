"""Every query the observer sends: read-only, parameterised, index-friendly.

The runs list is keyset-paged on ``(started_at DESC, id)`` — the order of the
``continuum_runs_started_idx`` / ``..._state_started_idx`` / ``..._workflow_started_idx``
indexes — so the 10,000th page costs the same as the first over millions of runs (no OFFSET,
no count(*)). A run-id search is a range scan on the primary key: a hex prefix ``3fa8`` is the
range ``[3fa80000-…, 3fa8ffff-…]``, so a partial id is as cheap as a full one.

The observer changes nothing through these queries; operator actions go through the public API.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from ..errors import ConfigurationError, DatabaseUnavailable, MigrationError
from .payloads import check_json, dumps

__all__ = [
    "ObserverQueries",
    "RunDetail",
    "RunRow",
    "id_range",
]

_HEX = re.compile(r"^[0-9a-f]{1,32}$")

#: Columns of a runs-list row: small, no payloads (the list never reads input/result).
_ROW_COLS = "id, workflow, version_hash, state, started_at, completed_at, lease_owner, next_wakeup_at"


@dataclass(frozen=True)
class RunRow:
    id: UUID
    workflow: str
    version_hash: str
    state: str
    started_at: datetime
    completed_at: datetime | None
    lease_owner: str | None
    next_wakeup_at: datetime | None


@dataclass
class RunDetail:
    run: dict[str, Any]
    events: list[dict[str, Any]]
    events_truncated: bool
    signals: list[dict[str, Any]]
    tasks: list[dict[str, Any]]
    timers: list[dict[str, Any]]
    db_now: datetime


def id_range(text: str) -> tuple[UUID, UUID] | None:
    """The inclusive uuid range a (partial) run id denotes, or None when it is not hex.

    Dashes and case are ignored, so ``3FA8-5f`` and ``3fa85f`` are the same prefix.
    """
    hexed = text.strip().lower().replace("-", "")
    if not _HEX.match(hexed):
        return None
    return UUID(hexed.ljust(32, "0")), UUID(hexed.ljust(32, "f"))


class ObserverQueries:
    """One autocommit connection, opened lazily and reopened after a failure.

    Methods are called from the kernel thread only; the lock guards against a Refresh click and a
    live-refresh tick overlapping when a front end calls back on another thread.
    """

    def __init__(self, conninfo: str, *, connect_timeout: int = 10) -> None:
        self._conninfo = conninfo
        self._timeout = connect_timeout
        self._conn: psycopg.Connection[dict[str, Any]] | None = None
        self._lock = threading.RLock()

    # --- connection -------------------------------------------------------------------------
    def _connection(self) -> psycopg.Connection[dict[str, Any]]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            try:
                self._conn = psycopg.connect(
                    self._conninfo,
                    autocommit=True,
                    row_factory=dict_row,
                    connect_timeout=self._timeout,
                    application_name="continuum_nb observer",
                )
            except psycopg.OperationalError as exc:
                raise DatabaseUnavailable(
                    f"the observer cannot reach PostgreSQL ({str(exc).strip().splitlines()[0]}); "
                    "check the instance's database URL and that the server is running"
                ) from None
        return self._conn

    def _fetch(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        with self._lock:
            conn = self._connection()
            try:
                return conn.execute(sql, params).fetchall()
            except psycopg.errors.UndefinedTable as exc:
                raise MigrationError(
                    f"the continuum tables are missing ({str(exc).strip().splitlines()[0]}); "
                    "run `continuum migrate` against this database"
                ) from None
            except psycopg.OperationalError as exc:
                conn.close()
                raise DatabaseUnavailable(
                    f"the observer lost its database connection ({str(exc).strip().splitlines()[0]}); "
                    "press Refresh to reconnect"
                ) from None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # --- runs list ------------------------------------------------------------------------------
    @staticmethod
    def _list_runs_sql(
        state: str | None,
        workflow: str | None,
        search: str | None,
        after: tuple[datetime, UUID] | None,
        limit: int,
        attributes: dict[str, Any] | None = None,
    ) -> tuple[str, list[Any]]:
        if limit < 1 or limit > 1001:
            raise ConfigurationError(f"page size must be between 1 and 1000, not {limit}")
        where: list[str] = []
        params: list[Any] = []
        if state:
            where.append("state = %s")
            params.append(state)
        if workflow:
            where.append("workflow = %s")
            params.append(workflow)
        if search and search.strip():
            bounds = id_range(search)
            if bounds is None:
                raise ConfigurationError(
                    f"{search.strip()!r} is not a run id; type the run id (or its first hex digits)"
                )
            where.append("id BETWEEN %s AND %s")
            params.extend(bounds)
        if attributes:
            # containment: the partial GIN index on attributes (jsonb_path_ops) answers it
            where.append("attributes @> %s::jsonb")
            params.append(dumps(check_json(attributes, "the attributes filter")))
        if after is not None:
            # Mixed directions (DESC, ASC) cannot use a row comparison; this form still lets the
            # planner start the index scan at started_at <= cursor.
            where.append("started_at <= %s AND (started_at < %s OR id > %s)")
            params.extend([after[0], after[0], after[1]])
        clause = ("WHERE " + " AND ".join(where)) if where else ""
        sql = f"SELECT {_ROW_COLS} FROM continuum_runs {clause} ORDER BY started_at DESC, id LIMIT %s"  # noqa: S608 - fixed fragments only
        params.append(limit)
        return sql, params

    def list_runs(
        self,
        *,
        state: str | None = None,
        workflow: str | None = None,
        search: str | None = None,
        after: tuple[datetime, UUID] | None = None,
        limit: int = 25,
        attributes: dict[str, Any] | None = None,
    ) -> list[RunRow]:
        """One page, newest first (started_at DESC, id ASC), strictly after the ``after`` cursor
        (the last row of the previous page), optionally only runs whose search attributes contain
        ``attributes``. Ask for ``limit + 1`` to learn whether a next page exists."""
        sql, params = self._list_runs_sql(state, workflow, search, after, limit, attributes)
        return [RunRow(**r) for r in self._fetch(sql, params)]

    def explain_list_runs(self, **kwargs: Any) -> str:
        """The query plan of ``list_runs(**kwargs)`` (for diagnosing a slow observer)."""
        sql, params = self._list_runs_sql(
            kwargs.get("state"), kwargs.get("workflow"), kwargs.get("search"), kwargs.get("after"), kwargs.get("limit", 25),
            kwargs.get("attributes"),
        )
        return "\n".join(str(next(iter(r.values()))) for r in self._fetch("EXPLAIN " + sql, params))

    def workflow_names(self, limit: int = 200) -> list[str]:
        """Distinct workflow names by a loose index scan of ``(workflow, started_at DESC, id)``:
        one index probe per name instead of reading every run."""
        sql = """
            WITH RECURSIVE names(workflow) AS (
                (SELECT workflow FROM continuum_runs ORDER BY workflow LIMIT 1)
                UNION ALL
                SELECT (SELECT r.workflow FROM continuum_runs r
                         WHERE r.workflow > n.workflow ORDER BY r.workflow LIMIT 1)
                  FROM names n WHERE n.workflow IS NOT NULL
            )
            SELECT workflow FROM names WHERE workflow IS NOT NULL
            UNION
            SELECT DISTINCT name FROM continuum_workflow_versions
            ORDER BY 1 LIMIT %s
        """
        return [r["workflow"] for r in self._fetch(sql, (limit,))]

    def states_of(self, run_ids: list[UUID]) -> dict[UUID, str]:
        """Current states of a few runs (the visible page), for a cheap live refresh."""
        if not run_ids:
            return {}
        rows = self._fetch("SELECT id, state FROM continuum_runs WHERE id = ANY(%s)", (run_ids,))
        return {r["id"]: r["state"] for r in rows}

    # --- run detail -----------------------------------------------------------------------------
    def timeline_events(self, run_id: UUID, started_at: datetime, *, limit: int = 250_000) -> list[dict[str, Any]]:
        """Every event of a run, slim: no payload and no timestamp objects — ``t_ms`` (ms since
        ``started_at``), ``name`` (the activity, signal, side-effect kind or child workflow), ``ref`` (the seq a
        resolution answers) and ``attempts`` — so 100,000 events cost a fraction of their rows."""
        return self._fetch(
            """SELECT seq, event_type,
                      (extract(epoch FROM inserted_at - %s::timestamptz) * 1000)::float8 AS t_ms,
                      COALESCE(payload->>'activity', payload->>'name', payload->>'kind',
                               payload->>'workflow') AS name,
                      CASE WHEN event_type IN ('activity_completed', 'activity_failed', 'signal_received',
                                               'timer_fired', 'child_completed', 'child_failed',
                                               'child_cancelled')
                           THEN COALESCE(payload->'scheduled_seq', payload->'awaited_seq', payload->'started_seq')
                      END AS ref,
                      CASE WHEN event_type IN ('activity_completed', 'activity_failed')
                           THEN payload->'attempts' END AS attempts
                 FROM continuum_events
                WHERE run_id = %s AND inserted_at >= %s::timestamptz - interval '1 day'
                ORDER BY seq LIMIT %s""",
            (started_at, run_id, started_at, limit),
        )

    def event_counts(self, run_id: UUID, started_at: datetime) -> dict[str, int]:
        """Event type -> how many events of that type the run has."""
        rows = self._fetch(
            """SELECT event_type, count(*) AS n FROM continuum_events
                WHERE run_id = %s AND inserted_at >= %s::timestamptz - interval '1 day'
                GROUP BY event_type ORDER BY event_type""",
            (run_id, started_at),
        )
        return {r["event_type"]: int(r["n"]) for r in rows}

    def events_page(
        self,
        run_id: UUID,
        started_at: datetime,
        *,
        event_type: str | None = None,
        seqs: list[int] | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """One page of a run's journal in seq order, optionally only one event type and/or only
        the given seqs (what a click on the timeline selected)."""
        if not 1 <= limit <= 1000 or offset < 0:
            raise ConfigurationError(f"an events page is 1 to 1000 events from offset >= 0, not {limit} from {offset}")
        where = ["run_id = %s", "inserted_at >= %s::timestamptz - interval '1 day'"]
        params: list[Any] = [run_id, started_at]
        if event_type:
            where.append("event_type = %s")
            params.append(event_type)
        if seqs is not None:
            where.append("seq = ANY(%s)")
            params.append([int(s) for s in seqs])
        params.extend([limit, offset])
        sql = (
            "SELECT seq, event_type, payload, inserted_at FROM continuum_events WHERE "  # noqa: S608 - fixed fragments only
            + " AND ".join(where)
            + " ORDER BY seq LIMIT %s OFFSET %s"
        )
        return self._fetch(sql, params)

    def run_detail(self, run_id: UUID, *, max_events: int = 2000, max_tasks: int = 200) -> RunDetail | None:
        """The run row, its first ``max_events`` events (0: none; the observer pages them with
        ``events_page``), its pending signals, its timers, and up to ``max_tasks`` activity tasks
        (unfinished ones first)."""
        runs = self._fetch(
            """SELECT id, workflow, version_hash, state, input, result, error, trace_context,
                      started_at, completed_at, lease_owner, lease_token, lease_expires_at,
                      next_wakeup_at, retention_until, forked_from_run_id, forked_at_seq,
                      continued_from_run_id,
                      (SELECT c.id FROM continuum_runs AS c WHERE c.continued_from_run_id = r.id
                        ORDER BY c.started_at, c.id LIMIT 1) AS continued_to_run_id, now() AS db_now
                 FROM continuum_runs AS r WHERE id = %s""",
            (run_id,),
        )
        if not runs:
            return None
        run = runs[0]
        db_now = run.pop("db_now")
        if isinstance(run.get("trace_context"), memoryview):
            run["trace_context"] = bytes(run["trace_context"])
        # The lower bound on inserted_at lets PostgreSQL skip every monthly partition older than
        # the run (a day of slack for clock skew between an engine and the database).
        events = self._fetch(
            """SELECT seq, event_type, payload, inserted_at FROM continuum_events
                WHERE run_id = %s AND inserted_at >= %s::timestamptz - interval '1 day'
                ORDER BY seq LIMIT %s""",
            (run_id, run["started_at"], max_events + 1),
        ) if max_events > 0 else []
        truncated = len(events) > max_events
        signals = self._fetch(
            """SELECT id, name, payload, inserted_at FROM continuum_signals
                WHERE run_id = %s AND delivered = false ORDER BY id""",
            (run_id,),
        )
        tasks = self._fetch(
            """SELECT id, seq, activity, attempt, state, scheduled_at, available_at, lease_owner,
                      lease_token, lease_expires_at, idempotency_key, error, completed_at
                 FROM continuum_activity_tasks WHERE run_id = %s
                ORDER BY (state = 'completed'), seq LIMIT %s""",
            (run_id, max_tasks),
        )
        timers = self._fetch(
            "SELECT id, seq, fires_at, fired FROM continuum_timers WHERE run_id = %s ORDER BY fires_at, id",
            (run_id,),
        )
        return RunDetail(run, events[:max_events], truncated, signals, tasks, timers, db_now)
