"""Monthly rollups of the journal for the ready-made analytics queries (migration 20261207090000).

A month that is over no longer receives events from the engine (an event's ``inserted_at`` is its
transaction's ``now()``), so its counts (events per event type, events per UTC minute) are
computed once, from its partition, and kept in ``continuum_analytics_counts``. A whole-journal
query reads the kept counts of those months and counts only the others (the current month, and
any month without a valid rollup), so it no longer scans 10 million events.

Exactness: the migration's triggers bump ``continuum_analytics_months.changes`` in the
transaction that deletes, updates or late-inserts events of a month (or truncates the table), and
a rollup is used only while the changes it was counted at equal the month's, and while the
partition it counted is still attached (a dropped or detached partition invalidates it). A
month is counted only from a snapshot that sees every transaction that could still have
inserted into it with an ``inserted_at`` before its end (``closing_xmax``, below), and a query
checks again, in the statement that reads them, that the rollups it planned with are still valid
(``VALID_MONTHS``), so it never mixes a rollup with a change it does not reflect.

Filling writes only the ``continuum_analytics_*`` tables; where that is refused (a read-only role
or a standby) the queries count live instead.
"""

# ruff: noqa: S608 - identifiers validated by quote_ident; months and oids are rendered by this module

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

import psycopg

from .analytics_sql import quote_ident, quote_literal

__all__ = [
    "ALPHA",
    "GAMMA",
    "MINUTE",
    "NEGATIVE",
    "ZERO_BUCKET",
    "bucket_sql",
    "int_of",
    "latency_months",
    "latency_months_sql",
    "orphans_sql",
    "pairs_sql",
    "scheduled_by_key",
    "Month",
    "available",
    "fill",
    "month_bounds",
    "outside",
    "valid_months",
    "valid_months_sql",
]

_NAME = re.compile(r"\Acontinuum_events_y([0-9]{4})_m([0-9]{2})\Z")
_BOUND = re.compile(r"\AFOR VALUES FROM \('([^']+)'\) TO \('([^']+)'\)\Z")

#: The UTC minute of a timestamp, whatever the session's time zone (the queries use the same).
MINUTE = "date_bin('1 minute', {col}, TIMESTAMPTZ '2000-01-01 00:00:00+00')"

#: The relative error of a latency percentile read from the rollups' histograms: a latency x > 0
#: falls in bucket k = ceil(log_g(x)), g = (1 + ALPHA) / (1 - ALPHA), i.e. (g^(k-1), g^k], whose
#: representative 2 g^k / (g + 1) is within ALPHA * x of every value in it (x < 0 mirrored,
#: x = 0 a bucket of its own). A percentile interpolates between two such representatives of the
#: order statistics it lies between, so it too is within ALPHA of the exact percentile.
ALPHA = 0.01
GAMMA = (1 + ALPHA) / (1 - ALPHA)
ZERO_BUCKET = -1_000_000
NEGATIVE = -2_000_000


def bucket_sql(x: str) -> str:
    """The histogram bucket of latency ``x`` (seconds), in SQL that PostgreSQL and DuckDB share."""
    lg = f"ln({GAMMA!r})"
    return (f"CASE WHEN {x} > 0 THEN CAST(ceil(ln({x}) / {lg}) AS INTEGER) "
            f"WHEN {x} < 0 THEN {NEGATIVE} - CAST(ceil(ln(-({x})) / {lg}) AS INTEGER) "
            f"WHEN {x} = 0 THEN {ZERO_BUCKET} END")


def int_of(expr: str, digits: int) -> str:
    """PostgreSQL: ``expr`` (text) as an integer when it is one, else NULL (DuckDB's TRY_CAST)."""
    kind = "bigint" if digits > 9 else "integer"
    return f"CASE WHEN {expr} ~ '^-?[0-9]{{1,{digits}}}$' THEN ({expr})::{kind} END"


def _outcomes_and_scheduled(s: str, where: str) -> str:
    ev = f"{s}.continuum_events"
    return f"""
        WITH o AS MATERIALIZED (
            SELECT run_id, {int_of("payload ->> 'scheduled_seq'", 18)} AS scheduled_seq, event_type,
                   COALESCE({int_of("payload ->> 'attempts'", 9)}, 1) AS attempts, inserted_at
              FROM {ev} WHERE event_type IN ('activity_completed', 'activity_failed') AND {where}),
        s AS MATERIALIZED (
            SELECT run_id, seq, payload ->> 'activity' AS activity, inserted_at
              FROM {ev} WHERE event_type = 'activity_scheduled' AND {where})"""


def pairs_sql(s: str, where: str, before: str | None) -> str:
    """PostgreSQL: the activity outcomes of ``where`` paired with their activity_scheduled, which
    is looked for among the scheduled of ``where`` and (``before``: a timestamp expression) by
    primary key among the events inserted before it. Columns: activity, outcome, attempts,
    latency (seconds), sched_at."""
    earlier = "" if before is None else f"""
        UNION ALL
        SELECT e.activity, o.event_type, o.attempts, extract(epoch FROM o.inserted_at - e.inserted_at)::float8, e.inserted_at
          FROM o CROSS JOIN LATERAL (
                SELECT x.payload ->> 'activity' AS activity, x.inserted_at FROM {s}.continuum_events x
                 WHERE x.run_id = o.run_id AND x.seq = o.scheduled_seq AND x.event_type = 'activity_scheduled'
                   AND x.inserted_at < {before}) e
         WHERE NOT EXISTS (SELECT 1 FROM s WHERE s.run_id = o.run_id AND s.seq = o.scheduled_seq)"""
    return f"""{_outcomes_and_scheduled(s, where)}
        SELECT s.activity, o.event_type AS outcome, o.attempts,
               extract(epoch FROM o.inserted_at - s.inserted_at)::float8 AS latency, s.inserted_at AS sched_at
          FROM o JOIN s ON s.run_id = o.run_id AND s.seq = o.scheduled_seq{earlier}"""


def orphans_sql(s: str, where: str) -> str:
    """PostgreSQL: the activity outcomes of ``where`` whose activity_scheduled is not in it (one
    journaled before ``where``: looked up by primary key, ``SCHEDULED_BY_KEY``). Columns: run_id,
    scheduled_seq, outcome, attempts, inserted_at. (Not a lateral lookup in the same statement:
    its cost estimate over every partition has PostgreSQL compile it with JIT, 1.6 s.)"""
    return f"""{_outcomes_and_scheduled(s, where)}
        SELECT o.run_id, o.scheduled_seq, o.event_type AS outcome, o.attempts, o.inserted_at FROM o
         WHERE NOT EXISTS (SELECT 1 FROM s WHERE s.run_id = o.run_id AND s.seq = o.scheduled_seq)"""


def scheduled_by_key(conn: psycopg.Connection[Any], schema: str, keys: list[tuple[Any, int]]) -> list[tuple[Any, ...]]:
    """The activity_scheduled events of ``keys`` ((run_id, seq)): run_id, seq, activity, inserted_at."""
    if not keys:
        return []
    s = quote_ident(schema)
    return conn.execute(
        f"""SELECT e.run_id, e.seq, e.payload ->> 'activity', e.inserted_at
              FROM unnest(%s::uuid[], %s::bigint[]) AS k(run_id, seq)
              JOIN {s}.continuum_events e ON e.run_id = k.run_id AND e.seq = k.seq
             WHERE e.event_type = 'activity_scheduled'""",
        ([k[0] for k in keys], [k[1] for k in keys]),
    ).fetchall()


@dataclass(frozen=True)
class Month:
    """A monthly partition of continuum_events: its first day and its oid."""

    month: date
    oid: int


def _next(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """The UTC range ``[start, end)`` of ``month``'s partition."""
    start = datetime(month.year, month.month, 1, tzinfo=timezone.utc)
    end_day = _next(month)
    return start, datetime(end_day.year, end_day.month, 1, tzinfo=timezone.utc)


def _ts(value: datetime) -> str:
    return f"{quote_literal(value.isoformat())}::timestamptz"


def outside(column: str, months: list[date]) -> str:
    """A condition on ``column`` true outside every month of ``months`` (half-open ranges, so
    PostgreSQL prunes the partitions of those months): what the live part of a query counts."""
    ranges: list[tuple[datetime, datetime]] = []
    for m in sorted(months):
        lo, hi = month_bounds(m)
        if ranges and ranges[-1][1] == lo:
            ranges[-1] = (ranges[-1][0], hi)
        else:
            ranges.append((lo, hi))
    if not ranges:
        return "true"
    parts = [f"{column} < {_ts(ranges[0][0])}"]
    parts += [f"({column} >= {_ts(a[1])} AND {column} < {_ts(b[0])})" for a, b in zip(ranges, ranges[1:], strict=False)]
    parts.append(f"{column} >= {_ts(ranges[-1][1])}")
    return "(" + " OR ".join(parts) + ")"


def _dates(months: list[date]) -> str:
    return "ARRAY[" + ", ".join(f"DATE '{m.isoformat()}'" for m in months) + "]::date[]"


#: The months whose rollup is valid: unchanged since counted, their partition still attached.
_VALID = """SELECT r.month FROM {s}.continuum_analytics_rollups r
              LEFT JOIN {s}.continuum_analytics_months m ON m.month = r.month
             WHERE r.changes = COALESCE(m.changes, 0)
               AND EXISTS (SELECT 1 FROM pg_inherits i
                            WHERE i.inhrelid = r.partition_oid::oid AND i.inhparent = '{s}.continuum_events'::regclass)"""


def valid_months_sql(schema: str, months: list[date]) -> str:
    """How many of ``months`` still have a valid rollup, in the snapshot of the statement that
    reads them (the query compares it with ``len(months)`` and retries on a difference)."""
    s = quote_ident(schema)
    return f"""
        SELECT count(*) FROM {s}.continuum_analytics_rollups r
          LEFT JOIN {s}.continuum_analytics_months m ON m.month = r.month
         WHERE r.month = ANY ({_dates(months)}) AND r.changes = COALESCE(m.changes, 0)
           AND EXISTS (SELECT 1 FROM pg_inherits i
                        WHERE i.inhrelid = r.partition_oid::oid AND i.inhparent = '{s}.continuum_events'::regclass)"""


def available(conn: psycopg.Connection[Any], schema: str) -> bool:
    """Whether the database has the rollup tables (migration 20261207090000)."""
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                       (f"{quote_ident(schema)}.continuum_analytics_rollups",)).fetchone()
    return bool(row and row[0])


def _closed_partitions(conn: psycopg.Connection[Any], schema: str) -> list[Month]:
    """The monthly partitions whose month is over (the range continuum itself gives a month)."""
    rows = conn.execute(
        "SELECT c.oid::bigint, c.relname, pg_get_expr(c.relpartbound, c.oid), statement_timestamp() "
        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s::regclass",
        (f"{quote_ident(schema)}.continuum_events",),
    ).fetchall()
    out = []
    for oid, name, bound, now in rows:
        m, b = _NAME.match(name), _BOUND.match(bound or "")
        if not m or not b or not 1 <= int(m.group(2)) <= 12:
            continue
        month = date(int(m.group(1)), int(m.group(2)), 1)
        lo, hi = month_bounds(month)
        if (datetime.fromisoformat(b.group(1)), datetime.fromisoformat(b.group(2))) == (lo, hi) and hi <= now:
            out.append(Month(month, int(oid)))
    return out


def valid_months(conn: psycopg.Connection[Any], schema: str) -> list[date]:
    """The months whose rollup is valid now."""
    s = quote_ident(schema)
    rows = conn.execute(
        f"""SELECT r.month FROM {s}.continuum_analytics_rollups r
              LEFT JOIN {s}.continuum_analytics_months m ON m.month = r.month
             WHERE r.changes = COALESCE(m.changes, 0)
               AND EXISTS (SELECT 1 FROM pg_inherits i
                            WHERE i.inhrelid = r.partition_oid::oid AND i.inhparent = %s::regclass)""",
        (f"{s}.continuum_events",),
    ).fetchall()
    return sorted(r[0] for r in rows)


_REFUSED = (psycopg.errors.InsufficientPrivilege, psycopg.errors.ReadOnlySqlTransaction,
            psycopg.errors.UniqueViolation, psycopg.errors.SerializationFailure,
            psycopg.errors.DeadlockDetected, psycopg.errors.LockNotAvailable)


def fill(conninfo: str, schema: str, *, latency: bool = False) -> list[date]:
    """Count every closed month without a valid rollup, and return the months whose rollup is
    valid afterwards. A month is counted only once a snapshot shows every transaction older than
    its end finished (otherwise it stays live this time); a refused write (read-only role,
    standby, a concurrent fill of the same month) leaves it live as well."""
    with psycopg.connect(conninfo, connect_timeout=10, autocommit=True) as conn:
        if not available(conn, schema):
            return []
        with conn.transaction():
            conn.execute("SET LOCAL TimeZone = 'UTC'")
            closed = _closed_partitions(conn, schema)
            done = set(valid_months(conn, schema))
        todo = [p for p in closed if p.month not in done]
        if not todo:
            return latency_months(conn, schema) if latency else sorted(done)
        s = quote_ident(schema)
        try:
            with conn.transaction():
                conn.execute("SET LOCAL lock_timeout = '2s'")
                # An xid assigned after each month ended (this transaction's own; the statement
                # began after the month's end): every transaction that could have inserted into
                # the month before it ended has an older xid. (Not a snapshot's xmax: that is
                # only past the last completed xid, and a running one can be above it.)
                marked = conn.execute(
                    f"""INSERT INTO {s}.continuum_analytics_months AS t (month, closing_xmax)
                        SELECT m, pg_current_xact_id()::text::bigint
                          FROM unnest(%s::date[]) AS m
                         WHERE statement_timestamp() >= (m + interval '1 month')::timestamp AT TIME ZONE 'UTC'
                        ON CONFLICT (month) DO UPDATE SET closing_xmax = COALESCE(t.closing_xmax, EXCLUDED.closing_xmax)
                         WHERE t.closing_xmax IS NULL""",
                    ([p.month for p in todo],),
                )
        except _REFUSED:
            todo = []
        if todo and marked.rowcount:  # only right after a month's mark is taken: a long
            _await_older(conn, s, todo)  # transaction elsewhere must not slow every query down
        # One month per transaction: a long snapshot would hold back vacuum, and its locks a
        # `continuum partitions drop`, for the whole fill.
        for p in todo:
            try:
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
                try:
                    _fill_months(conn, s, [p])
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except _REFUSED:
                continue
        return latency_months(conn, schema) if latency else valid_months(conn, schema)


#: How long a fill waits for the transactions older than a month's closing mark to finish (the
#: first call after a month ended; on a busy server they are short), before counting it live.
_AWAIT_S = 1.0


def _await_older(conn: psycopg.Connection[Any], s: str, todo: list[Month]) -> None:
    row = conn.execute(f"SELECT max(closing_xmax) FROM {s}.continuum_analytics_months WHERE month = ANY (%s::date[])",
                       ([p.month for p in todo],)).fetchone()
    mark = row[0] if row else None
    deadline = time.monotonic() + _AWAIT_S
    while mark is not None and time.monotonic() < deadline:
        got = conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint").fetchone()
        if got and got[0] >= mark:
            return
        time.sleep(0.05)


def _fill_months(conn: psycopg.Connection[Any], s: str, todo: list[Month]) -> None:
    """In the open REPEATABLE READ transaction: count each month whose closing_xmax this
    snapshot is past, at the month's changes as this snapshot sees them."""
    conn.execute("SET LOCAL lock_timeout = '2s'")
    row = conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint").fetchone()
    xmin = int(row[0]) if row else 0
    state = {m: (changes, closing) for m, changes, closing in conn.execute(
        f"SELECT month, changes, closing_xmax FROM {s}.continuum_analytics_months WHERE month = ANY (%s::date[])",
        ([p.month for p in todo],)).fetchall()}
    for p in todo:
        changes, closing = state.get(p.month, (0, None))
        if closing is None or xmin < closing:
            continue
        lo, hi = month_bounds(p.month)
        conn.execute(f"DELETE FROM {s}.continuum_analytics_counts WHERE month = %s", (p.month,))
        conn.execute(f"DELETE FROM {s}.continuum_analytics_latency WHERE month = %s", (p.month,))
        conn.execute(f"DELETE FROM {s}.continuum_analytics_rollups WHERE month = %s", (p.month,))
        conn.execute(
            f"INSERT INTO {s}.continuum_analytics_rollups (month, partition_oid, changes) VALUES (%s, %s, %s)",
            (p.month, p.oid, changes),
        )
        window = "inserted_at >= %(lo)s AND inserted_at < %(hi)s"
        conn.execute(
            f"""INSERT INTO {s}.continuum_analytics_counts (month, event_type, minute, n)
                SELECT %(month)s, event_type, NULL, count(*) FROM {s}.continuum_events WHERE {window} GROUP BY 2""",
            {"month": p.month, "lo": lo, "hi": hi},
        )
        conn.execute(
            f"""INSERT INTO {s}.continuum_analytics_counts (month, event_type, minute, n)
                SELECT %(month)s, NULL, {MINUTE.format(col="inserted_at")}, count(*)
                  FROM {s}.continuum_events WHERE {window} GROUP BY 3""",
            {"month": p.month, "lo": lo, "hi": hi},
        )
        _fill_latency(conn, s, p.month)


def _fill_latency(conn: psycopg.Connection[Any], s: str, month: date) -> None:
    """The activity-latency rollup of ``month``: activities scheduled per name, and its outcomes
    paired (in this month or, by primary key, an earlier one) and bucketed by latency."""
    lo, hi = month_bounds(month)
    window = f"inserted_at >= {_ts(lo)} AND inserted_at < {_ts(hi)}"
    conn.execute(
        f"""INSERT INTO {s}.continuum_analytics_latency (month, activity, n)
            SELECT %(month)s, payload ->> 'activity', count(*) FROM {s}.continuum_events
             WHERE event_type = 'activity_scheduled' AND {window} GROUP BY 2""",
        {"month": month},
    )
    conn.execute(
        f"""INSERT INTO {s}.continuum_analytics_latency
                (month, sched_month, sched_changes, activity, outcome, bucket, n, attempts, retried, min_s, max_s)
            SELECT %(month)s, x.sm, COALESCE(max(m.changes), 0), x.activity, x.outcome, x.bucket, count(*),
                   sum(x.attempts), count(*) FILTER (WHERE x.attempts > 1), min(x.latency), max(x.latency)
              FROM (SELECT (date_trunc('month', sched_at AT TIME ZONE 'UTC'))::date AS sm, activity, outcome,
                           attempts, latency, {bucket_sql("latency")} AS bucket
                      FROM ({pairs_sql(s, window, _ts(lo))}) AS p) AS x
              LEFT JOIN {s}.continuum_analytics_months m ON m.month = x.sm
             GROUP BY x.sm, x.activity, x.outcome, x.bucket""",
        {"month": month},
    )


def latency_months_sql(schema: str) -> str:
    """The months whose activity-latency rollup is valid: the month's rollup is, and so is every
    month its outcomes were paired in, unchanged since."""
    s = quote_ident(schema)
    return f"""
        WITH v AS ({_VALID.format(s=s)})
        SELECT v.month FROM v WHERE NOT EXISTS (
            SELECT 1 FROM {s}.continuum_analytics_latency l
              LEFT JOIN {s}.continuum_analytics_months m ON m.month = l.sched_month
             WHERE l.month = v.month AND l.sched_month IS NOT NULL
               AND (l.sched_changes <> COALESCE(m.changes, 0) OR l.sched_month NOT IN (SELECT month FROM v)))"""


def latency_months(conn: psycopg.Connection[Any], schema: str) -> list[date]:
    return sorted(r[0] for r in conn.execute(latency_months_sql(schema)).fetchall())
