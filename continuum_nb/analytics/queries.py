"""The ready-made analytics queries and ``analytics.sql``: DuckDB over the journal views → pandas.

Each query takes an open connection (from ``analytics.connect``) as its first argument, or
``instance=`` / ``database_url=`` to use a connection of its own, and ``since=`` / ``until=``: a
half-open window ``[since, until)`` on the events' ``inserted_at`` (``run_durations``: the runs'
``completed_at``) that the scanner pushes down to PostgreSQL, so only the partitions of that
window are read. Durations are in seconds
(float); months are ``YYYY-MM`` strings and minutes UTC timestamps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from ..store import analytics_pushdown_sql as pq
from ..store import analytics_sql as q
from ..store.base import RUN_STATES
from .connection import InstanceRef
from .rollups import latency_frame, rollup_frame
from .scanner import conninfo_of
from .shared import shared

if TYPE_CHECKING:
    import duckdb
    import pandas

__all__ = [
    "activity_latency",
    "compensations",
    "events_by_type_and_month",
    "first_outcomes",
    "patches",
    "run_durations",
    "signal_wait_times",
    "sql",
    "throughput_per_minute",
]

# Open bounds for the throughput window (DuckDB TIMESTAMPTZ covers these years).
_EARLIEST = datetime(1, 1, 1, tzinfo=timezone.utc)
_LATEST = datetime(9999, 12, 31, tzinfo=timezone.utc)


#: Builds the scanner path's query from the PostgreSQL schema (analytics_pushdown_sql).
Remote = Callable[[str], str]
#: Builds the scanner path's whole-journal query from the schema and the months with a valid
#: rollup: the PostgreSQL statement of the rows and DuckDB's finish (analytics_pushdown_sql).
Rolled = Callable[[str, list[date]], tuple[str, str]]


def _frame(
    text: str,
    params: dict[str, Any] | None,
    con: duckdb.DuckDBPyConnection | None,
    instance: InstanceRef,
    database_url: str | None,
    remote: Remote | None = None,
    rolled: Rolled | None = None,
    shape: Callable[[pandas.DataFrame], pandas.DataFrame] | None = None,
) -> pandas.DataFrame:
    """Run a ready-made query: ``text`` with ``params`` over the views, or on a scanner connection
    ``remote(schema)``, which runs the heavy part in PostgreSQL (its window is in the text), or
    (``rolled``, given for a whole-journal query) the monthly rollups plus a live count of the
    rest."""

    def run(c: duckdb.DuckDBPyConnection) -> pandas.DataFrame:
        found = _scanner_schema(c) if remote is not None else None
        if remote is None or found is None:
            return _df(c, text, params)
        schema, token = found
        if rolled is not None:
            out = rollup_frame(c, schema, conninfo_of(token), rolled, shape)
            if out is not None:
                return out
        return _df(c, remote(schema), None)

    if con is not None:
        if instance is not None or database_url is not None:
            raise ConfigurationError("pass either a connection or instance=/database_url=, not both")
        return run(con)
    return shared(instance, database_url, run)


def _scanner_schema(con: duckdb.DuckDBPyConnection) -> tuple[str, str | None] | None:
    """The PostgreSQL schema a scanner connection reads and its conninfo's token; None for any
    other connection."""
    import duckdb

    try:
        row = con.execute(q.SCANNER_SCHEMA).fetchone()
    except duckdb.CatalogException:
        return None
    return (str(row[0]), row[1]) if row else None


def _df(con: duckdb.DuckDBPyConnection, text: str, params: dict[str, Any] | None) -> pandas.DataFrame:
    result = con.execute(text, params) if params else con.execute(text)
    if result.description is None:  # a statement without a result set (SET, CREATE VIEW...)
        import pandas as pd

        return pd.DataFrame()
    # Through Arrow rather than .df(): same dtypes for these results (UUIDs come out as strings),
    # and no pandas deprecation warning from DuckDB's time-zone conversion.
    return result.to_arrow_table().to_pandas()


def sql(query: str, instance: InstanceRef = None, *, database_url: str | None = None) -> pandas.DataFrame:
    """Run DuckDB SQL over the views ``runs``, ``events``, ``activity_tasks``, ``signals``.

    This is what ``%%continuum_sql`` calls. The views are read-only: a statement that tries to
    change the journal fails.
    """
    if not isinstance(query, str) or not query.strip():
        raise ConfigurationError("the SQL query is empty; write a DuckDB query over runs, events, activity_tasks or signals")
    return shared(instance, database_url, lambda own: _df(own, query, None))


def events_by_type_and_month(
    con: duckdb.DuckDBPyConnection | None = None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    instance: InstanceRef = None,
    database_url: str | None = None,
) -> pandas.DataFrame:
    """Columns: month (``YYYY-MM``, UTC), event_type, events. One row per non-empty pair."""
    return _frame(q.EVENTS_BY_TYPE_AND_MONTH, _window(since, until), con, instance, database_url,
                  lambda schema: pq.events_by_type_and_month(schema, *_bounds(since, until)),
                  pq.events_by_type_and_month_rolled if since is None and until is None else None)


def run_durations(
    con: duckdb.DuckDBPyConnection | None = None,
    *,
    states: Iterable[str] = ("completed",),
    since: datetime | None = None,
    until: datetime | None = None,
    instance: InstanceRef = None,
    database_url: str | None = None,
) -> pandas.DataFrame:
    """Per workflow, over finished runs in ``states``: runs, mean_s, p50_s, p95_s, p99_s, max_s.

    A run's duration is ``completed_at - started_at``.
    """
    wanted = [states] if isinstance(states, str) else list(states)
    bad = [s for s in wanted if s not in RUN_STATES]
    if bad or not wanted:
        raise ConfigurationError(
            f"states={wanted!r} is not a non-empty list of run states; use some of {', '.join(RUN_STATES)}"
        )
    return _frame(q.RUN_DURATIONS, {"states": wanted, **_window(since, until)}, con, instance, database_url,
                  lambda schema: pq.run_durations(schema, wanted, *_bounds(since, until)))


def activity_latency(
    con: duckdb.DuckDBPyConnection | None = None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    instance: InstanceRef = None,
    database_url: str | None = None,
) -> pandas.DataFrame:
    """Per activity: count (scheduled), completed, failed, pending, p50_s, p95_s, max_s, retry_rate,
    mean_attempts.

    Latency runs from ``activity_scheduled`` to its ``activity_completed``/``activity_failed``
    (paired by ``scheduled_seq``), so it includes queueing, every attempt and the backoff between
    attempts. ``retry_rate`` is the share of finished activities that took more than one attempt.
    """
    whole = since is None and until is None
    return _frame(q.ACTIVITY_LATENCY, _window(since, until), con, instance, database_url,
                  lambda schema: pq.activity_latency(schema, *_bounds(since, until)),
                  pq.activity_latency_rolled if whole else None, latency_frame if whole else None)


def signal_wait_times(
    con: duckdb.DuckDBPyConnection | None = None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    instance: InstanceRef = None,
    database_url: str | None = None,
) -> pandas.DataFrame:
    """Per signal name: awaited, received, immediate, unanswered, p50_s, p95_s, max_s.

    A wait runs from ``signal_awaited`` to the next ``signal_received`` of the same name in the
    run. ``immediate``: received without a wait (the signal was already in the mailbox).
    ``unanswered``: awaits that timed out or are still waiting.
    """
    return _frame(q.SIGNAL_WAIT_TIMES, _window(since, until), con, instance, database_url,
                  lambda schema: pq.signal_wait_times(schema, *_bounds(since, until)))


def compensations(
    con: duckdb.DuckDBPyConnection | None = None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    instance: InstanceRef = None,
    database_url: str | None = None,
) -> pandas.DataFrame:
    """Per compensating activity (sagas): scheduled, runs, completed, failed, pending, p50_s, max_s
    (from ``compensation_scheduled`` to its outcome)."""
    return _frame(q.COMPENSATIONS, _window(since, until), con, instance, database_url,
                  lambda schema: pq.compensations(schema, *_bounds(since, until)))


def patches(
    con: duckdb.DuckDBPyConnection | None = None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    instance: InstanceRef = None,
    database_url: str | None = None,
) -> pandas.DataFrame:
    """Per ``cn.patched`` name: runs (that journaled it: took the new branch), deprecated (of
    them, by ``cn.deprecate_patch``), first_at, last_at."""
    return _frame(q.PATCHES, _window(since, until), con, instance, database_url)


def first_outcomes(
    con: duckdb.DuckDBPyConnection | None = None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    instance: InstanceRef = None,
    database_url: str | None = None,
) -> pandas.DataFrame:
    """The losers ``cn.first`` cancelled: per kind (activity, timer, signal) and target (activity
    or signal name; None for timers), count and runs."""
    return _frame(q.FIRST_OUTCOMES, _window(since, until), con, instance, database_url)


def throughput_per_minute(
    con: duckdb.DuckDBPyConnection | None = None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    instance: InstanceRef = None,
    database_url: str | None = None,
) -> pandas.DataFrame:
    """Columns: minute (UTC), completed_runs, events — every minute from the first busy one to the
    last, in ``[since, until)`` (aware datetimes; naive ones are taken as UTC)."""
    return _frame(q.THROUGHPUT_PER_MINUTE, _window(since, until), con, instance, database_url,
                  lambda schema: pq.throughput_per_minute(schema, *_bounds(since, until)),
                  pq.throughput_per_minute_rolled if since is None and until is None else None)


def _window(since: datetime | None, until: datetime | None) -> dict[str, datetime]:
    """The $since / $until parameters: the half-open window [since, until), open ends by default."""
    window = {"since": _aware(since, "since") or _EARLIEST, "until": _aware(until, "until") or _LATEST}
    if window["since"] >= window["until"]:
        raise ConfigurationError(f"since={since} is not before until={until}; the window [since, until) is empty")
    return window


def _bounds(since: datetime | None, until: datetime | None) -> tuple[datetime | None, datetime | None]:
    """The window's given ends (aware), None where it is open."""
    return _aware(since, "since"), _aware(until, "until")


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise ConfigurationError(f"{name}= must be a datetime, not {type(value).__name__}")
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
