"""The SQL of monthly ``continuum_events`` partitions: names, bounds, create, list, drop.

A partition is named ``continuum_events_yYYYY_mMM`` and holds ``inserted_at`` in
``[YYYY-MM-01 00:00 UTC, next month 00:00 UTC)``. Months come from operators (the CLI), so they
are validated against a strict pattern before any SQL is built, and names are interpolated only
as ``psycopg.sql.Identifier``; bounds are passed as literals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

import psycopg
from psycopg import sql

from ..errors import MigrationError, PartitionError

__all__ = [
    "INITIAL_PARTITIONS_SQL",
    "PARENT",
    "DropCheck",
    "PartitionInfo",
    "add_months",
    "check_droppable",
    "covering_partition",
    "create_partition",
    "delete_expired_results",
    "drop_partition",
    "expired_results_count",
    "format_month",
    "list_partitions",
    "month_of",
    "parse_month",
    "partition_error_message",
    "partition_name",
    "require_schema",
    "retention_in_use",
]

PARENT = "continuum_events"
_MONTH = re.compile(r"\A([0-9]{4})-([0-9]{2})\Z")  # not \d or $: no Unicode digits, no trailing newline
_NAME = re.compile(r"\Acontinuum_events_y([0-9]{4})_m([0-9]{2})\Z")
_BOUND = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")

#: Creates the current UTC month's partition and the next three, computed when it runs (so a
#: generated migration applied months later still gets the right ones). Same names and bounds as
#: ``create_partition`` and the partitioning migration.
INITIAL_PARTITIONS_SQL = """DO $$
DECLARE
    m date;
    first_month date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
BEGIN
    FOR m IN SELECT (first_month + make_interval(months => k))::date FROM generate_series(0, 3) AS k
    LOOP
        EXECUTE format(
            'CREATE TABLE IF NOT EXISTS %I PARTITION OF continuum_events FOR VALUES FROM (%L) TO (%L)',
            'continuum_events_y' || to_char(m, 'YYYY') || '_m' || to_char(m, 'MM'),
            to_char(m, 'YYYY-MM-DD') || ' 00:00:00+00',
            to_char((m + interval '1 month')::date, 'YYYY-MM-DD') || ' 00:00:00+00');
    END LOOP;
END
$$"""


def parse_month(text: str) -> date:
    """``"2026-12"`` → ``date(2026, 12, 1)``; anything else raises ``PartitionError``."""
    m = _MONTH.match(text) if isinstance(text, str) else None
    if not m or not 1 <= int(m.group(2)) <= 12 or int(m.group(1)) < 1000:
        raise PartitionError(f"invalid month {text!r}; use YYYY-MM with a month 01-12, e.g. 2026-12")
    return date(int(m.group(1)), int(m.group(2)), 1)


def month_of(value: date | datetime | str) -> date:
    """The first day of the UTC month of a date, an aware/naive-UTC datetime or a ``YYYY-MM`` string."""
    if isinstance(value, str):
        return parse_month(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc)
        return date(value.year, value.month, 1)
    if isinstance(value, date):
        return date(value.year, value.month, 1)
    raise PartitionError(f"invalid month {value!r}; use YYYY-MM, a date or a datetime")


def format_month(month: date) -> str:
    return f"{month.year:04d}-{month.month:02d}"


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + (month.month - 1) + n
    return date(index // 12, index % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"continuum_events_y{month.year:04d}_m{month.month:02d}"


def partition_error_message(month: date | datetime | str) -> str:
    """The one-line error for an insert whose ``inserted_at`` month has no partition (here, not in
    ``continuum_nb.partitions``, because ``PostgresStore`` raises it and the store imports nothing
    above itself)."""
    m = format_month(month_of(month))
    return (
        f"continuum_events has no partition for {m} ({partition_name(month_of(month))}); "
        f"create it with `continuum partitions create {m}` and retry"
    )


def _bound(month: date) -> str:
    return f"{month.isoformat()} 00:00:00+00"


@dataclass(frozen=True)
class PartitionInfo:
    name: str
    #: Range [start, end) of inserted_at; None for a DEFAULT partition.
    start: datetime | None
    end: datetime | None
    rows: int
    size_bytes: int
    #: ``rows`` is the planner's estimate (pg_class.reltuples, kept by ANALYZE/autovacuum), not
    #: a count: a partition of ESTIMATE_FROM rows or more is not scanned to be listed.
    estimated: bool = False

    @property
    def month(self) -> date | None:
        m = _NAME.match(self.name)
        return date(int(m.group(1)), int(m.group(2)), 1) if m else None


def create_partition(conn: psycopg.Connection[Any], month: date) -> bool:
    """Create ``month``'s partition; False when it already exists (idempotent)."""
    name = partition_name(month)
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    if exists and exists[0]:
        return False
    try:
        with conn.transaction():
            conn.execute(
                sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                    sql.Identifier(name),
                    sql.Identifier(PARENT),
                    sql.Literal(_bound(month)),
                    sql.Literal(_bound(add_months(month, 1))),
                )
            )
    except (psycopg.errors.DuplicateTable, psycopg.errors.UniqueViolation):
        return False  # a concurrent create won (the catalog's unique index may report it)
    except (psycopg.errors.InvalidObjectDefinition, psycopg.errors.CheckViolation) as exc:
        # "would overlap partition ...": someone made a partition by hand with other bounds;
        # or a hand-made DEFAULT partition already holds rows of this month.
        raise PartitionError(
            f"cannot create {name}: {exc.diag.message_primary}; inspect `continuum partitions list`"
        ) from None
    except psycopg.errors.UndefinedTable:
        raise PartitionError(
            "continuum_events does not exist or is not partitioned; run `continuum migrate` first"
        ) from None
    return True


#: A partition the statistics put at this many rows or more is listed with the estimate: an exact
#: count(*) scans it (2.3 s for 12 months of 10 million events on 2 cores; docs/benchmarks.md).
ESTIMATE_FROM = 100_000


def list_partitions(conn: psycopg.Connection[Any], *, counts: bool = True) -> list[PartitionInfo]:
    """Every partition of ``continuum_events``, oldest first, with sizes and (unless
    ``counts=False``) row counts: exact below ESTIMATE_FROM rows (or when the partition was never
    analyzed), else the planner's estimate (``estimated``); ``rows`` is -1 when skipped."""
    out: list[PartitionInfo] = []
    with conn.transaction():
        # pg_get_expr renders bounds in the session time zone; UTC keeps them parseable.
        conn.execute("SET LOCAL TimeZone = 'UTC'")
        rows = conn.execute(
            """
            SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), pg_total_relation_size(c.oid), c.reltuples
              FROM pg_inherits i
              JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = to_regclass('continuum_events')
            """
        ).fetchall()
        for name, bound, size, reltuples in rows:
            count, estimated = -1, False
            if counts and reltuples >= ESTIMATE_FROM:
                count, estimated = int(reltuples), True
            elif counts:  # small, or never analyzed (reltuples -1): count it
                got = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(name))).fetchone()
                count = int(got[0]) if got else 0
            start = end = None
            m = _BOUND.search(bound or "")
            if m:
                start, end = (datetime.fromisoformat(b) for b in m.groups())
            out.append(PartitionInfo(name, start, end, count, int(size), estimated))
    far = datetime.max.replace(tzinfo=timezone.utc)
    out.sort(key=lambda p: (p.start or far, p.name))
    return out


def covering_partition(conn: psycopg.Connection[Any], instant: datetime) -> str | None:
    """The partition an event inserted at ``instant`` would go to (None: the insert would fail)."""
    for p in list_partitions(conn, counts=False):
        if p.start is None or p.end is None:
            return p.name  # a DEFAULT partition takes everything else
        if p.start <= instant < p.end:
            return p.name
    return None


def events_schema(conn: psycopg.Connection[Any]) -> str:
    """The schema of the continuum_events this connection's search_path finds."""
    row = conn.execute(
        "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.oid = to_regclass('continuum_events')"
    ).fetchone()
    if row is None:
        raise MigrationError("this database has no continuum_events; run `continuum migrate` first")
    return str(row[0])


def require_schema(conn: psycopg.Connection[Any]) -> None:
    """Raise ``MigrationError`` unless continuum_events is partitioned (v0.2 or later)."""
    row = conn.execute(
        """
        SELECT to_regclass('continuum_runs') IS NOT NULL,
               EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass('continuum_events'))
        """
    ).fetchone()
    if not row or not (row[0] and row[1]):
        raise MigrationError(
            "this database has no partitioned continuum_events (v0.2 schema); run `continuum migrate` first"
        )


def retention_in_use(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM continuum_runs WHERE retention_until IS NOT NULL)").fetchone()
    return bool(row and row[0])


@dataclass(frozen=True)
class DropCheck:
    """What blocks dropping one partition (all zero: it may be dropped)."""

    #: Runs with events here whose retention_until is NULL (kept forever).
    unretained_runs: int
    #: Runs with events here whose retention_until is still in the future.
    retained_runs: int
    #: Runs with events here that no longer exist in continuum_runs (kept: their retention is unknown).
    missing_runs: int

    @property
    def droppable(self) -> bool:
        return not (self.unretained_runs or self.retained_runs or self.missing_runs)


def check_droppable(conn: psycopg.Connection[Any], name: str) -> DropCheck:
    """Count the runs whose events in partition ``name`` must be kept."""
    _validate_name(name)
    row = conn.execute(
        sql.SQL(
            """
            SELECT count(DISTINCT e.run_id) FILTER (WHERE r.id IS NOT NULL AND r.retention_until IS NULL),
                   count(DISTINCT e.run_id) FILTER (WHERE r.retention_until > now()),
                   count(DISTINCT e.run_id) FILTER (WHERE r.id IS NULL)
              FROM {} e LEFT JOIN continuum_runs r ON r.id = e.run_id
            """
        ).format(sql.Identifier(name))
    ).fetchone()
    assert row is not None
    return DropCheck(int(row[0]), int(row[1]), int(row[2]))


def drop_partition(conn: psycopg.Connection[Any], name: str) -> bool:
    """Drop partition ``name`` if it still holds only expired runs' events; False if it no longer may.

    The parent is locked first (the order every reader and writer takes), so the re-check and
    the drop see a partition nobody can write to meanwhile.
    """
    _validate_name(name)
    try:
        with conn.transaction():
            # Short: while this waits, new journal reads and writes queue behind it.
            conn.execute("SET LOCAL lock_timeout = '5s'")
            conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(PARENT)))
            if not check_droppable(conn, name).droppable:
                return False
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
    except psycopg.errors.LockNotAvailable:
        raise PartitionError(
            f"could not lock continuum_events within 5s to drop {name} (long-running queries hold it); "
            "retry `continuum partitions drop-old --execute` when it is quieter"
        ) from None
    return True


def expired_results_count(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        """
        SELECT count(*) FROM continuum_activity_results ar
          JOIN continuum_runs r ON r.id = ar.run_id
         WHERE r.retention_until <= now()
        """
    ).fetchone()
    return int(row[0]) if row else 0


def delete_expired_results(conn: psycopg.Connection[Any]) -> int:
    """Delete the idempotency results of runs whose retention_until has passed; returns the count."""
    with conn.transaction():
        cur = conn.execute(
            """
            DELETE FROM continuum_activity_results ar
             USING continuum_runs r
             WHERE r.id = ar.run_id AND r.retention_until <= now()
            """
        )
        return cur.rowcount


def _validate_name(name: str) -> None:
    m = _NAME.match(name)
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise PartitionError(f"invalid partition name {name!r}; expected continuum_events_yYYYY_mMM")
