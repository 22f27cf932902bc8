"""Every SQL text the analytics layer runs: DuckDB view definitions, the ready-made DuckDB queries,
and the PostgreSQL statements of the COPY fallback.

The four analytics views (``runs``, ``events``, ``activity_tasks``, ``signals``) mirror the tables
``continuum_runs`` etc. with the same column names; jsonb columns become DuckDB ``JSON``, uuid
``UUID``, timestamptz ``TIMESTAMP WITH TIME ZONE``, bytea ``BLOB``. Both ways of building them
(the postgres scanner, or COPY into Arrow) select exactly the columns listed in ``VIEWS``, so a
query gives the same answer on either path.

The only interpolated identifiers are the PostgreSQL schema name (validated by
``quote_ident``) and the names in ``VIEWS`` (constants of this module).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .analytics_links_sql import CHAINS_VIEW, CHILDREN_VIEW, LINK_VIEWS

__all__ = [
    "ACTIVITY_LATENCY", "ATTACH", "ACTIVITY_LATENCY_TAIL", "ACTIVITY_SOURCE", "COMPENSATIONS",
    "COMPENSATIONS_TAIL", "COMPENSATION_SOURCE", "COLUMN_TYPES", "CHAINS_VIEW", "CHILDREN_VIEW",
    "CREATE_SECRET", "ESTIMATE_ROWS", "EVENTS_BY_TYPE_AND_MONTH", "FIND_SCHEMA",
    "FIRST_OUTCOMES", "LINK_VIEWS", "PATCHES", "RUN_DURATIONS", "SCANNER_SCHEMA",
    "SCANNER_STATE", "SECRET_NAME", "SIGNAL_SOURCE", "SIGNAL_WAIT_TIMES",
    "SIGNAL_WAIT_TIMES_TAIL", "SOURCE", "THROUGHPUT_EVENTS_SOURCE", "THROUGHPUT_PER_MINUTE",
    "THROUGHPUT_PER_MINUTE_TAIL", "THROUGHPUT_SOURCE", "VIEWS", "ViewSpec", "copy_columns",
    "copy_select", "fallback_view", "quote_ident", "quote_literal", "raw_table_name",
    "scanner_view", "with_source",
]

#: Column kinds the views use (PostgreSQL type -> DuckDB type).
COLUMN_TYPES: dict[str, str] = {
    "uuid": "UUID",
    "text": "VARCHAR",
    "bigint": "BIGINT",
    "integer": "INTEGER",
    "boolean": "BOOLEAN",
    "json": "JSON",
    "timestamptz": "TIMESTAMP WITH TIME ZONE",
    "bytea": "BLOB",
}


@dataclass(frozen=True)
class ViewSpec:
    name: str                          # the DuckDB view name
    table: str                         # the PostgreSQL table it mirrors
    columns: tuple[tuple[str, str], ...]   # (column, kind from COLUMN_TYPES), in view order


VIEWS: tuple[ViewSpec, ...] = (
    ViewSpec("runs", "continuum_runs", (
        ("id", "uuid"), ("workflow", "text"), ("version_hash", "text"), ("state", "text"),
        ("input", "json"), ("result", "json"), ("error", "json"), ("trace_context", "bytea"),
        ("started_at", "timestamptz"), ("completed_at", "timestamptz"),
        ("lease_owner", "text"), ("lease_token", "bigint"), ("lease_expires_at", "timestamptz"),
        ("next_wakeup_at", "timestamptz"), ("retention_until", "timestamptz"),
        ("parent_run_id", "uuid"), ("correlation_id", "uuid"), ("continued_from_run_id", "uuid"),
    )),
    ViewSpec("events", "continuum_events", (
        ("run_id", "uuid"), ("seq", "bigint"), ("event_type", "text"), ("payload", "json"),
        ("inserted_at", "timestamptz"),
    )),
    ViewSpec("activity_tasks", "continuum_activity_tasks", (
        ("id", "uuid"), ("run_id", "uuid"), ("seq", "bigint"), ("activity", "text"),
        ("mfa", "json"), ("idempotency_key", "text"), ("attempt", "integer"), ("state", "text"),
        ("scheduled_at", "timestamptz"), ("available_at", "timestamptz"),
        ("completed_at", "timestamptz"), ("lease_owner", "text"), ("lease_token", "bigint"),
        ("lease_expires_at", "timestamptz"), ("result", "json"), ("error", "json"),
    )),
    ViewSpec("signals", "continuum_signals", (
        ("id", "bigint"), ("run_id", "uuid"), ("name", "text"), ("payload", "json"),
        ("delivered", "boolean"), ("delivered_seq", "bigint"), ("inserted_at", "timestamptz"),
    )),
)

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")


def quote_ident(name: str) -> str:
    """A double-quoted identifier; refuses anything but a plain PostgreSQL name."""
    if not _IDENT.match(name):
        raise ValueError(f"{name!r} is not a plain SQL identifier (letters, digits, _ and $)")
    return f'"{name}"'


def quote_literal(text: str) -> str:
    """A single-quoted SQL string literal (for ATTACH, which takes no parameters)."""
    if "\x00" in text:
        raise ValueError("a connection string cannot contain a NUL character")
    return "'" + text.replace("'", "''") + "'"


# ---------------------------------------------------------------------------------------------
# PostgreSQL (sent through psycopg)

#: The schema holding the continuum tables, as the connection's search_path resolves it.
FIND_SCHEMA = (
    "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.oid = to_regclass('continuum_runs')"
)

#: Planner estimate of a table's rows (a partitioned table: the sum over its partitions), for the
#: progress bar only; -1 when the table was never analysed.
ESTIMATE_ROWS = """
SELECT COALESCE(sum(GREATEST(c.reltuples, 0)), 0)::bigint, bool_or(c.reltuples >= 0)
  FROM pg_class c
 WHERE c.relkind <> 'p'  -- a partitioned parent's own estimate already counts its partitions
   AND (c.oid = to_regclass(%(table)s)
    OR c.oid IN (SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = to_regclass(%(table)s)))
"""


def _copy_expr(column: str, kind: str, alias: str | None = None) -> str:
    col = quote_ident(column) if alias is None else f"{quote_ident(alias)}.{quote_ident(column)}"
    if kind == "timestamptz":
        # epoch microseconds: exact, and Arrow turns int64 into a UTC timestamp without parsing
        return f"CASE WHEN isfinite({col}) THEN (extract(epoch FROM {col}) * 1000000)::bigint END"
    if kind == "bytea":
        return f"encode({col}, 'hex')"
    if kind in ("uuid", "json"):
        return f"{col}::text"
    return col


def copy_columns(view: ViewSpec, alias: str | None = None) -> str:
    """The select list a COPY of one view sends (of the table aliased ``alias``), in view order."""
    return ", ".join(f"{_copy_expr(c, k, alias)} AS {quote_ident(c)}" for c, k in view.columns)


def copy_select(view: ViewSpec, schema: str) -> str:
    """``COPY (SELECT ...) TO STDOUT (FORMAT csv)`` for one view, in ``VIEWS`` column order."""
    return (
        f"COPY (SELECT {copy_columns(view)} FROM {quote_ident(schema)}.{quote_ident(view.table)}) "  # noqa: S608 - identifiers validated by quote_ident
        "TO STDOUT (FORMAT csv)"
    )


# ---------------------------------------------------------------------------------------------
# DuckDB: the views


#: The DuckDB secret holding the password of the attached database.
SECRET_NAME = "continuum_pg"


def CREATE_SECRET(password: str) -> str:  # noqa: N802 - reads like the statement it builds
    """A temporary (in-memory) DuckDB secret carrying only the password; ATTACH adds the rest."""
    return f"CREATE OR REPLACE SECRET {SECRET_NAME} (TYPE postgres, PASSWORD {quote_literal(password)})"


def ATTACH(conninfo: str, *, secret: bool = False) -> str:  # noqa: N802 - reads like the statement it builds
    """Attach PostgreSQL read-only: no statement through ``pg`` can change the journal."""
    uses = f", SECRET {SECRET_NAME}" if secret else ""
    return f"ATTACH {quote_literal(conninfo)} AS pg (TYPE postgres, READ_ONLY{uses})"


def _view_expr(column: str, kind: str) -> str:
    col = quote_ident(column)
    if kind == "json":
        return f"CAST({col} AS JSON) AS {col}"
    return col


def scanner_view(view: ViewSpec, schema: str) -> str:
    """The view over the attached database (the scanner reads jsonb as VARCHAR: cast to JSON)."""
    cols = ", ".join(_view_expr(c, k) for c, k in view.columns)
    return (
        f"CREATE OR REPLACE VIEW {quote_ident(view.name)} AS SELECT {cols} "  # noqa: S608 - identifiers validated by quote_ident
        f"FROM pg.{quote_ident(schema)}.{quote_ident(view.table)}"
    )


#: The scanner connection's note of the PostgreSQL schema it reads (the ready-made queries send
#: their PostgreSQL part to that schema; a connection without it runs them over the views).
#: ``token`` names the connection's conninfo in the process (scanner.conninfo_of), which the
#: monthly rollups are filled through (the attachment itself is read-only).
SCANNER_STATE = "CREATE OR REPLACE TABLE _continuum_scanner AS SELECT ?::VARCHAR AS schema, ?::VARCHAR AS token"
SCANNER_SCHEMA = "SELECT schema, token FROM _continuum_scanner"


def raw_table_name(view: ViewSpec) -> str:
    """The name the fallback registers its Arrow table under."""
    return f"_continuum_raw_{view.name}"


def _fallback_expr(column: str, kind: str) -> str:
    col = quote_ident(column)
    if kind == "uuid":
        return f"CAST({col} AS UUID) AS {col}"
    if kind == "bytea":
        return f"unhex({col}) AS {col}"
    return _view_expr(column, kind)


def fallback_view(view: ViewSpec) -> str:
    """The view over the registered Arrow table, with the scanner view's column types."""
    cols = ", ".join(_fallback_expr(c, k) for c, k in view.columns)
    return (
        f"CREATE OR REPLACE VIEW {quote_ident(view.name)} AS SELECT {cols} "  # noqa: S608 - identifiers validated by quote_ident
        f"FROM {quote_ident(raw_table_name(view))}"
    )


# ---------------------------------------------------------------------------------------------
# DuckDB: the ready-made queries (over the views; months and minutes are UTC, the connection's
# TimeZone is set to UTC). Each takes $since / $until, a half-open window [since, until) on the
# events' inserted_at (runs: completed_at); the scanner pushes it down to PostgreSQL, which reads
# only the partitions of that window.

# Formatting the month after grouping keeps strftime off the million-row path.
EVENTS_BY_TYPE_AND_MONTH = """
SELECT strftime(m, '%Y-%m') AS month, event_type, events
  FROM (SELECT date_trunc('month', inserted_at) AS m, event_type, count(*) AS events
          FROM events WHERE inserted_at >= $since AND inserted_at < $until GROUP BY ALL)
 ORDER BY month, event_type
"""

#: $states: the run states to include (finished runs only: completed_at must be set).
RUN_DURATIONS = """
WITH d AS (
    SELECT workflow, epoch(completed_at - started_at) AS s
      FROM runs
     WHERE completed_at IS NOT NULL AND list_contains($states, state)
       AND completed_at >= $since AND completed_at < $until
)
SELECT workflow, count(*) AS runs,
       avg(s) AS mean_s,
       quantile_cont(s, 0.5) AS p50_s, quantile_cont(s, 0.95) AS p95_s,
       quantile_cont(s, 0.99) AS p99_s, max(s) AS max_s
  FROM d
 GROUP BY workflow
 ORDER BY workflow
"""

# An activity_completed/failed event names the seq of its activity_scheduled in scheduled_seq.
# One pass over the three event types (MATERIALIZED: the scanner then reads events once, not once
# per side of the join — about twice as fast over a million events).
#: The rows activity_latency pairs, read from the events view (the scanner asks PostgreSQL for
#: the same columns: analytics_pushdown_sql).
ACTIVITY_SOURCE = """
    SELECT run_id, seq, event_type, inserted_at,
           CASE WHEN event_type = 'activity_scheduled' THEN payload ->> 'activity' END AS activity,
           CASE WHEN event_type <> 'activity_scheduled'
                THEN TRY_CAST(payload ->> 'scheduled_seq' AS BIGINT) END AS scheduled_seq,
           CASE WHEN event_type <> 'activity_scheduled'
                THEN COALESCE(TRY_CAST(payload ->> 'attempts' AS INTEGER), 1) END AS attempts
      FROM events
     WHERE event_type IN ('activity_scheduled', 'activity_completed', 'activity_failed')
       AND inserted_at >= $since AND inserted_at < $until
"""

#: Where a query's source rows go (see with_source).
SOURCE = "/* source */"

ACTIVITY_LATENCY_TAIL = """
WITH act AS MATERIALIZED (/* source */
), sched AS (
    SELECT run_id, seq, activity, inserted_at FROM act WHERE event_type = 'activity_scheduled'
), outcome AS (
    SELECT run_id, scheduled_seq, event_type, attempts, inserted_at
      FROM act WHERE event_type <> 'activity_scheduled'
), paired AS (
    SELECT s.activity, o.event_type AS outcome, o.attempts,
           epoch(o.inserted_at - s.inserted_at) AS latency_s
      FROM sched s LEFT JOIN outcome o ON o.run_id = s.run_id AND o.scheduled_seq = s.seq
)
SELECT activity,
       count(*) AS count,
       count(*) FILTER (WHERE outcome = 'activity_completed') AS completed,
       count(*) FILTER (WHERE outcome = 'activity_failed') AS failed,
       count(*) FILTER (WHERE outcome IS NULL) AS pending,
       quantile_cont(latency_s, 0.5) AS p50_s,
       quantile_cont(latency_s, 0.95) AS p95_s,
       max(latency_s) AS max_s,
       avg(CASE WHEN attempts > 1 THEN 1.0 ELSE 0.0 END) FILTER (WHERE outcome IS NOT NULL) AS retry_rate,
       avg(attempts) FILTER (WHERE outcome IS NOT NULL) AS mean_attempts
  FROM paired
 GROUP BY activity
 ORDER BY activity
"""

# A signal_received names the signal_awaited it answers in awaited_seq (null when the signal was
# already in the mailbox at the await: no wait was journaled). Journals written before that key
# existed pair a received with the awaited right before it (same run and name, in seq order).
# An awaited that nothing answers timed out or is still waiting.
SIGNAL_SOURCE = """
    SELECT run_id, seq, event_type, payload ->> 'name' AS name, inserted_at,
           (payload -> 'awaited_seq') IS NOT NULL AS has_ref,
           TRY_CAST(payload -> 'awaited_seq' AS BIGINT) AS ref
      FROM events
     WHERE event_type IN ('signal_awaited', 'signal_received') AND inserted_at >= $since AND inserted_at < $until
"""

SIGNAL_WAIT_TIMES_TAIL = """
WITH sig AS MATERIALIZED (
    SELECT src.*, lag(event_type) OVER w AS prev_type, lag(seq) OVER w AS prev_seq
      FROM (/* source */) AS src
    WINDOW w AS (PARTITION BY run_id, name ORDER BY seq)
), awaited AS (
    SELECT run_id, seq, name, inserted_at FROM sig WHERE event_type = 'signal_awaited'
), received AS (
    SELECT run_id, name, inserted_at,
           CASE WHEN has_ref THEN ref WHEN prev_type = 'signal_awaited' THEN prev_seq END AS awaited_seq
      FROM sig WHERE event_type = 'signal_received'
), waits AS (
    SELECT a.name, count(*) AS answered,
           quantile_cont(epoch(r.inserted_at - a.inserted_at), 0.5) AS p50_s,
           quantile_cont(epoch(r.inserted_at - a.inserted_at), 0.95) AS p95_s,
           max(epoch(r.inserted_at - a.inserted_at)) AS max_s
      FROM received r JOIN awaited a ON a.run_id = r.run_id AND a.seq = r.awaited_seq
     GROUP BY a.name
), a AS (
    SELECT name, count(*) AS awaited FROM awaited GROUP BY name
), r AS (
    SELECT name, count(*) AS received, count(*) FILTER (WHERE awaited_seq IS NULL) AS immediate
      FROM received GROUP BY name
)
SELECT name,
       COALESCE(a.awaited, 0) AS awaited,
       COALESCE(r.received, 0) AS received,
       COALESCE(r.immediate, 0) AS immediate,
       COALESCE(a.awaited, 0) - COALESCE(waits.answered, 0) AS unanswered,
       waits.p50_s, waits.p95_s, waits.max_s
  FROM a FULL JOIN r USING (name) FULL JOIN waits USING (name)
 ORDER BY name
"""

# A saga's compensations: compensation_completed/failed name their compensation_scheduled in
# scheduled_seq, as activities do.
COMPENSATION_SOURCE = """
    SELECT run_id, seq, event_type, inserted_at, payload ->> 'activity' AS activity,
           TRY_CAST(payload ->> 'scheduled_seq' AS BIGINT) AS scheduled_seq
      FROM events
     WHERE event_type IN ('compensation_scheduled', 'compensation_completed', 'compensation_failed')
       AND inserted_at >= $since AND inserted_at < $until
"""

COMPENSATIONS_TAIL = """
WITH c AS MATERIALIZED (/* source */
), sched AS (
    SELECT run_id, seq, activity, inserted_at FROM c WHERE event_type = 'compensation_scheduled'
), outcome AS (
    SELECT run_id, scheduled_seq, event_type, inserted_at FROM c WHERE event_type <> 'compensation_scheduled'
), paired AS (
    SELECT s.activity, s.run_id, o.event_type AS outcome, epoch(o.inserted_at - s.inserted_at) AS latency_s
      FROM sched s LEFT JOIN outcome o ON o.run_id = s.run_id AND o.scheduled_seq = s.seq
)
SELECT activity,
       count(*) AS scheduled,
       count(DISTINCT run_id) AS runs,
       count(*) FILTER (WHERE outcome = 'compensation_completed') AS completed,
       count(*) FILTER (WHERE outcome = 'compensation_failed') AS failed,
       count(*) FILTER (WHERE outcome IS NULL) AS pending,
       quantile_cont(latency_s, 0.5) AS p50_s,
       max(latency_s) AS max_s
  FROM paired
 GROUP BY activity
 ORDER BY activity
"""

# Which runs took each cn.patched branch (a run journals a patch once).
PATCHES = """
SELECT payload ->> 'name' AS patch,
       count(DISTINCT run_id) AS runs,
       count(*) FILTER (WHERE payload ->> 'deprecated' = 'true') AS deprecated,
       min(inserted_at) AS first_at,
       max(inserted_at) AS last_at
  FROM events
 WHERE event_type = 'patched' AND inserted_at >= $since AND inserted_at < $until
 GROUP BY 1
 ORDER BY 1
"""

# How cn.first's losers were cancelled, per kind: a timer that lost to a signal or an activity is
# a timer_cancelled, a signal nobody sent in time a signal_cancelled.
FIRST_OUTCOMES = """
SELECT CASE event_type WHEN 'activity_cancelled' THEN 'activity'
                       WHEN 'timer_cancelled' THEN 'timer' ELSE 'signal' END AS cancelled,
       COALESCE(payload ->> 'activity', payload ->> 'name') AS target,
       count(*) AS count,
       count(DISTINCT run_id) AS runs
  FROM events
 WHERE event_type IN ('activity_cancelled', 'timer_cancelled', 'signal_cancelled')
   AND inserted_at >= $since AND inserted_at < $until
 GROUP BY 1, 2
 ORDER BY 1, 2
"""

#: $since / $until: a half-open window [since, until) on completed_at / inserted_at. Minutes with
#: nothing in them are filled with zeros between the first and last busy minute.
THROUGHPUT_SOURCE = """
SELECT date_trunc('minute', completed_at) AS minute, count(*) AS completed_runs
  FROM runs
 WHERE state = 'completed' AND completed_at >= $since AND completed_at < $until
 GROUP BY 1
"""
THROUGHPUT_EVENTS_SOURCE = """
SELECT date_trunc('minute', inserted_at) AS minute, count(*) AS events
  FROM events
 WHERE inserted_at >= $since AND inserted_at < $until
 GROUP BY 1
"""

# One join of the two sources, then the span of minutes joined once (joining each source to the
# span separately took 3 times as long over half a million minutes).
THROUGHPUT_PER_MINUTE_TAIL = """
WITH r AS (/* source */), e AS (/* events source */), busy AS (
    SELECT minute, r.completed_runs, e.events FROM r FULL JOIN e USING (minute)
), span AS (
    SELECT unnest(generate_series(min(minute), max(minute), INTERVAL 1 MINUTE)) AS minute
      FROM busy HAVING count(*) > 0
)
SELECT span.minute, COALESCE(busy.completed_runs, 0) AS completed_runs, COALESCE(busy.events, 0) AS events
  FROM span LEFT JOIN busy ON busy.minute = span.minute
 ORDER BY span.minute
"""


def with_source(tail: str, source: str, events_source: str | None = None) -> str:
    """A ready-made query: its tail over the rows ``source`` (and ``events_source``) selects."""
    text = tail.replace(SOURCE, source)
    return text if events_source is None else text.replace("/* events source */", events_source)


ACTIVITY_LATENCY = with_source(ACTIVITY_LATENCY_TAIL, ACTIVITY_SOURCE)
SIGNAL_WAIT_TIMES = with_source(SIGNAL_WAIT_TIMES_TAIL, SIGNAL_SOURCE)
COMPENSATIONS = with_source(COMPENSATIONS_TAIL, COMPENSATION_SOURCE)
THROUGHPUT_PER_MINUTE = with_source(THROUGHPUT_PER_MINUTE_TAIL, THROUGHPUT_SOURCE, THROUGHPUT_EVENTS_SOURCE)
