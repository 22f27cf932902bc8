"""The ready-made analytics queries as the postgres scanner path runs them: the heavy part runs in
PostgreSQL itself, through DuckDB's ``postgres_query('pg', ...)``, and DuckDB finishes.

Through the scanner's table scan, DuckDB pushes columns and simple filters down but reads every
row it aggregates, with whole ``payload`` documents: 10M events are gigabytes on the wire. Here
PostgreSQL aggregates what it can (counts per partition, events per minute) and, where DuckDB
must pair events or take percentiles (activity latency, signal waits, compensations, run
durations), sends only the few columns needed, extracted from the payload on the server. The
time window is written into the PostgreSQL text, so PostgreSQL prunes the partitions outside
it. Over the whole journal, the monthly rollups (``analytics_rollups``) stand in for the months
that are over.

Each function returns DuckDB SQL whose answer equals the DuckDB query of ``analytics_sql`` over
the views (the test suite compares both paths on every query). Only constants, validated
identifiers and literals quoted by ``quote_literal`` are interpolated.
"""

# ruff: noqa: S608 - every text here is built from constants, identifiers validated by quote_ident
# and literals quoted by quote_literal

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from . import analytics_rollups as rollups
from . import analytics_sql as q

__all__ = [
    "activity_latency",
    "activity_latency_rolled",
    "compensations",
    "ROLLED",
    "ROLLED_ADD_LIVE",
    "ROLLED_DROP",
    "ROLLED_ORPHANS",
    "ROLLED_VALID",
    "events_by_type_and_month",
    "events_by_type_and_month_rolled",
    "rolled_rows",
    "run_durations",
    "signal_wait_times",
    "throughput_per_minute",
    "throughput_per_minute_rolled",
]

#: The postgres_query() call DuckDB sends one PostgreSQL statement through (``pg``: the attachment).
_QUERY = "SELECT * FROM postgres_query('pg', {text})"


def _window(column: str, since: datetime | None, until: datetime | None) -> str:
    parts = []
    if since is not None:
        parts.append(f"{column} >= {q.quote_literal(since.isoformat())}::timestamptz")
    if until is not None:
        parts.append(f"{column} < {q.quote_literal(until.isoformat())}::timestamptz")
    return " AND ".join(parts) or "true"


def _remote(text: str) -> str:
    return _QUERY.format(text=q.quote_literal(" ".join(text.split())))


def _events(schema: str) -> str:
    return f"{q.quote_ident(schema)}.continuum_events"


# PostgreSQL counts per partition and event type (no per-row date arithmetic); a partition that
# spans more than one month (none of continuum's) is counted again per month, behind a one-time
# filter, so that scan only runs when such a partition holds events.
def _by_type_and_month(ev: str, w: str) -> str:
    return f"""
        WITH g AS MATERIALIZED (
            SELECT tableoid AS part, event_type, count(*) AS n,
                   date_trunc('month', min(inserted_at) AT TIME ZONE 'UTC') AS lo,
                   date_trunc('month', max(inserted_at) AT TIME ZONE 'UTC') AS hi
              FROM {ev} WHERE {w} GROUP BY 1, 2)
        SELECT to_char(lo, 'YYYY-MM') AS month, event_type, n AS events FROM g WHERE lo = hi
        UNION ALL
        SELECT to_char(date_trunc('month', inserted_at AT TIME ZONE 'UTC'), 'YYYY-MM'), event_type, count(*)
          FROM {ev}
         WHERE {w} AND (SELECT bool_or(lo <> hi) FROM g) AND tableoid IN (SELECT part FROM g WHERE lo <> hi)
         GROUP BY 1, 2"""


_BY_TYPE_FINISH = "SELECT month, event_type, CAST(sum(events) AS BIGINT) AS events FROM ({rows}) GROUP BY ALL ORDER BY month, event_type"


def events_by_type_and_month(schema: str, since: datetime | None, until: datetime | None) -> str:
    pg = _by_type_and_month(_events(schema), _window("inserted_at", since, until))
    return _BY_TYPE_FINISH.format(rows=_remote(pg))


#: Where the rolled-up queries' rows are put in DuckDB (a temporary table of the connection).
ROLLED = "_continuum_rolled"


def rolled_rows(pg: str) -> str:
    """DuckDB: keep the rows of the PostgreSQL statement ``pg`` in the temporary table ROLLED;
    its ``valid`` column is NULL but on one row, the count of rollups that were still valid."""
    return f"CREATE OR REPLACE TEMP TABLE {ROLLED} AS SELECT * FROM ({_remote(pg)})"


ROLLED_VALID = f"SELECT max(valid) FROM {ROLLED}"
ROLLED_DROP = f"DROP TABLE IF EXISTS {ROLLED}"
#: activity_latency: the outcomes to pair by primary key, and the pairs found for them.
ROLLED_ORPHANS = f"SELECT run_id, seq, outcome, attempts, outcome_at FROM {ROLLED} WHERE kind = 'orphan'"
ROLLED_ADD_LIVE = (f"INSERT INTO {ROLLED} (kind, activity, outcome, n, attempts, min_s, max_s) "
                   "VALUES ('live', ?, ?, 1, ?, ?, ?)")


def events_by_type_and_month_rolled(schema: str, months: list[date]) -> tuple[str, str]:
    """The whole journal from the rollups of ``months`` and a live count of the rest: the
    PostgreSQL statement (for rolled_rows) and DuckDB's finish over ROLLED."""
    s = q.quote_ident(schema)
    live = _by_type_and_month(_events(schema), rollups.outside("inserted_at", months))
    pg = f"""
        SELECT month, event_type, events, NULL::bigint AS valid FROM ({live}) AS live
        UNION ALL
        SELECT to_char(month, 'YYYY-MM'), event_type, n, NULL FROM {s}.continuum_analytics_counts
         WHERE month = ANY ({_dates(months)}) AND minute IS NULL
        UNION ALL
        SELECT NULL, NULL, NULL, ({rollups.valid_months_sql(schema, months)})"""
    return pg, _BY_TYPE_FINISH.format(rows=f"SELECT * FROM {ROLLED} WHERE valid IS NULL")


def _dates(months: list[date]) -> str:
    return "ARRAY[" + ", ".join(f"DATE '{m.isoformat()}'" for m in months) + "]::date[]"


# PostgreSQL sends each finished run's workflow and duration; DuckDB aggregates them, as the
# views' query does. Over 830,000 runs that took about half the time of PostgreSQL's own
# percentile_cont, which sorts every group once per percentile.
def run_durations(schema: str, states: Sequence[str], since: datetime | None, until: datetime | None) -> str:
    listed = ", ".join(q.quote_literal(s) for s in states)
    pg = f"""
        SELECT workflow, extract(epoch FROM completed_at - started_at)::float8 AS s
          FROM {q.quote_ident(schema)}.continuum_runs
         WHERE completed_at IS NOT NULL AND state IN ({listed}) AND {_window("completed_at", since, until)}"""
    return f"""
        SELECT workflow, count(*) AS runs, avg(s) AS mean_s,
               quantile_cont(s, 0.5) AS p50_s, quantile_cont(s, 0.95) AS p95_s,
               quantile_cont(s, 0.99) AS p99_s, max(s) AS max_s
          FROM ({_remote(pg)}) GROUP BY workflow ORDER BY workflow"""


def _int(expr: str, digits: int) -> str:
    """``expr`` (text) as an integer when it is one, else NULL (DuckDB's TRY_CAST)."""
    kind = "bigint" if digits > 9 else "integer"
    return f"CASE WHEN {expr} ~ '^-?[0-9]{{1,{digits}}}$' THEN ({expr})::{kind} END"


def activity_latency(schema: str, since: datetime | None, until: datetime | None) -> str:
    pg = f"""
        SELECT run_id, seq, event_type, inserted_at,
               CASE WHEN event_type = 'activity_scheduled' THEN payload ->> 'activity' END AS activity,
               CASE WHEN event_type <> 'activity_scheduled'
                    THEN {_int("payload ->> 'scheduled_seq'", 18)} END AS scheduled_seq,
               CASE WHEN event_type <> 'activity_scheduled'
                    THEN COALESCE({_int("payload ->> 'attempts'", 9)}, 1) END AS attempts
          FROM {_events(schema)}
         WHERE event_type IN ('activity_scheduled', 'activity_completed', 'activity_failed')
           AND {_window("inserted_at", since, until)}"""
    return q.with_source(q.ACTIVITY_LATENCY_TAIL, _remote(pg))


def signal_wait_times(schema: str, since: datetime | None, until: datetime | None) -> str:
    pg = f"""
        SELECT run_id, seq, event_type, payload ->> 'name' AS name, inserted_at,
               jsonb_exists(payload, 'awaited_seq') AS has_ref,
               CASE WHEN jsonb_typeof(payload -> 'awaited_seq') = 'number'
                    THEN {_int("payload ->> 'awaited_seq'", 18)} END AS ref
          FROM {_events(schema)}
         WHERE event_type IN ('signal_awaited', 'signal_received') AND {_window("inserted_at", since, until)}"""
    return q.with_source(q.SIGNAL_WAIT_TIMES_TAIL, _remote(pg))


def compensations(schema: str, since: datetime | None, until: datetime | None) -> str:
    pg = f"""
        SELECT run_id, seq, event_type, inserted_at, payload ->> 'activity' AS activity,
               {_int("payload ->> 'scheduled_seq'", 18)} AS scheduled_seq
          FROM {_events(schema)}
         WHERE event_type IN ('compensation_scheduled', 'compensation_completed', 'compensation_failed')
           AND {_window("inserted_at", since, until)}"""
    return q.with_source(q.COMPENSATIONS_TAIL, _remote(pg))


# date_bin on a UTC origin: the UTC minute whatever the session's time zone.
_MINUTE = rollups.MINUTE


def _runs_per_minute(schema: str, since: datetime | None, until: datetime | None) -> str:
    # PostgreSQL sends the completion instants and DuckDB groups them (about twice as fast as
    # PostgreSQL's hash aggregate, which spills to disk at the default work_mem over 1M runs).
    pg = f"""
        SELECT completed_at FROM {q.quote_ident(schema)}.continuum_runs
         WHERE state = 'completed' AND completed_at IS NOT NULL AND {_window("completed_at", since, until)}"""
    return f"SELECT date_trunc('minute', completed_at) AS minute, count(*) AS completed_runs FROM ({_remote(pg)}) GROUP BY 1"


def _events_per_minute(schema: str, where: str) -> str:
    return f"""
        SELECT {_MINUTE.format(col="inserted_at")} AS minute, count(*) AS events
          FROM {_events(schema)} WHERE {where} GROUP BY 1"""


def throughput_per_minute(schema: str, since: datetime | None, until: datetime | None) -> str:
    events = _events_per_minute(schema, _window("inserted_at", since, until))
    return q.with_source(q.THROUGHPUT_PER_MINUTE_TAIL, _runs_per_minute(schema, since, until), _remote(events))


def throughput_per_minute_rolled(schema: str, months: list[date]) -> tuple[str, str]:
    """Events per minute from the rollups of ``months`` and a live count of the rest (completed
    runs per minute are always counted live): the PostgreSQL statement of the events (for
    rolled_rows) and DuckDB's finish over ROLLED."""
    s = q.quote_ident(schema)
    pg = f"""
        SELECT minute, events, NULL::bigint AS valid
          FROM ({_events_per_minute(schema, rollups.outside("inserted_at", months))}) AS live
        UNION ALL
        SELECT minute, n, NULL FROM {s}.continuum_analytics_counts
         WHERE month = ANY ({_dates(months)}) AND minute IS NOT NULL
        UNION ALL
        SELECT NULL, NULL, ({rollups.valid_months_sql(schema, months)})"""
    events = f"SELECT minute, events FROM {ROLLED} WHERE valid IS NULL"
    return pg, q.with_source(q.THROUGHPUT_PER_MINUTE_TAIL, _runs_per_minute(schema, None, None), events)


def activity_latency_rolled(schema: str, months: list[date]) -> tuple[str, str]:
    """activity_latency over the whole journal from the latency rollups of ``months`` (see
    analytics_rollups.latency_months) and, for the other months, the activities scheduled in
    them and their outcomes paired live (with an activity_scheduled anywhere). The PostgreSQL
    statement (for rolled_rows; ``kind``: ``sched`` counts, ``hist`` buckets, ``live`` pairs,
    ``orphan`` outcomes whose activity_scheduled is in a rolled-up month, paired by the caller) and
    DuckDB's merge (the live pairs bucketed the same way): per activity, ``part`` ``s`` (scheduled
    count), ``o`` (per outcome: count, attempts, retried) and ``b`` (per latency bucket: count,
    smallest and largest latency); analytics.rollups turns those into the answer."""
    s = q.quote_ident(schema)
    ev = _events(schema)
    rest = rollups.outside("inserted_at", months)
    listed = _dates(months)
    nulls = "NULL::uuid AS run_id, NULL::bigint AS seq, NULL::timestamptz AS outcome_at"
    pg = f"""
        SELECT 'sched' AS kind, activity, NULL::text AS outcome, NULL::integer AS bucket, n,
               NULL::bigint AS attempts, NULL::bigint AS retried, NULL::float8 AS min_s, NULL::float8 AS max_s,
               NULL::bigint AS valid, {nulls}
          FROM {s}.continuum_analytics_latency WHERE month = ANY ({listed}) AND sched_month IS NULL
        UNION ALL
        SELECT 'sched', payload ->> 'activity', NULL, NULL, count(*), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
          FROM {ev} WHERE event_type = 'activity_scheduled' AND {rest} GROUP BY 2
        UNION ALL
        SELECT 'hist', activity, outcome, bucket, n, attempts, retried, min_s, max_s, NULL, NULL, NULL, NULL
          FROM {s}.continuum_analytics_latency WHERE month = ANY ({listed}) AND sched_month IS NOT NULL
        UNION ALL
        SELECT 'live', activity, outcome, NULL, 1, attempts, NULL, latency, latency, NULL, NULL, NULL, NULL
          FROM ({rollups.pairs_sql(s, rest, None)}) AS p
        UNION ALL
        SELECT 'orphan', NULL, outcome, NULL, 1, attempts, NULL, NULL, NULL, NULL, run_id, scheduled_seq, inserted_at
          FROM ({rollups.orphans_sql(s, rest)}) AS x
        UNION ALL
        SELECT 'valid', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
               (SELECT count(*) FROM ({rollups.latency_months_sql(schema)}) AS v WHERE v.month = ANY ({listed})),
               NULL, NULL, NULL"""
    merge = f"""
        WITH h AS (
            SELECT activity, outcome, bucket, n, attempts, retried, min_s, max_s FROM {ROLLED} WHERE kind = 'hist'
            UNION ALL
            SELECT activity, outcome, {rollups.bucket_sql("min_s")}, 1, attempts,
                   CASE WHEN attempts > 1 THEN 1 ELSE 0 END, min_s, max_s
              FROM {ROLLED} WHERE kind = 'live'
        )
        SELECT 'b' AS part, activity, NULL AS outcome, bucket, CAST(sum(n) AS BIGINT) AS n, NULL::BIGINT AS attempts,
               NULL::BIGINT AS retried, min(min_s) AS min_s, max(max_s) AS max_s
          FROM h GROUP BY activity, bucket
        UNION ALL
        SELECT 'o', activity, outcome, NULL, CAST(sum(n) AS BIGINT), CAST(sum(attempts) AS BIGINT),
               CAST(sum(retried) AS BIGINT), NULL, NULL
          FROM h GROUP BY activity, outcome
        UNION ALL
        SELECT 's', activity, NULL, NULL, CAST(sum(n) AS BIGINT), NULL, NULL, NULL, NULL
          FROM {ROLLED} WHERE kind = 'sched' GROUP BY activity"""
    return pg, merge
