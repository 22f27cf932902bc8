"""Monthly partitions of ``continuum_events``: create, list, drop_old (the Python API behind
``continuum partitions ...``).

There is no runtime partition manager: operators (or a cron job) create next month's partition
ahead of time; the engine and the observer warn when it is missing (``missing_next_month``), and
writing an event in a month without a partition fails with ``partition_error_message``.

Retention is opt-in per run (``continuum_runs.retention_until``). ``drop_old`` drops only
partitions wholly before the current UTC month whose every event belongs to a run whose
retention has passed; it does nothing at all while no run has retention set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timezone

from .store import partitions as _sql
from .store.database import conninfo as normalise
from .store.database import resolve_url
from .store.migrate import connect
from .store.partitions import (
    DropCheck,
    PartitionInfo,
    format_month,
    month_of,
    parse_month,
    partition_error_message,
    partition_name,
)

__all__ = [
    "CreateResult",
    "DropCandidate",
    "DropReport",
    "DropCheck",
    "PartitionInfo",
    "create",
    "drop_old",
    "list_partitions",
    "missing_next_month",
    "next_month",
    "parse_month",
    "partition_error_message",
    "partition_name",
    "rollup",
    "rollup_summary",
]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def next_month(now: datetime | None = None) -> date:
    """The first day of the UTC month after ``now``."""
    return _sql.add_months(month_of(now or _utcnow()), 1)


@dataclass(frozen=True)
class CreateResult:
    name: str
    month: str
    #: False when the partition already existed (create is idempotent).
    created: bool


def create(month: str | date | datetime | None = None, *, database_url: str | None = None) -> CreateResult:
    """Create the partition for ``month`` (``"YYYY-MM"``, a date or datetime; default: next UTC month)."""
    first = next_month() if month is None else month_of(month)  # validated before any SQL
    with connect(resolve_url(database_url), autocommit=True) as conn:
        _sql.require_schema(conn)
        created = _sql.create_partition(conn, first)
    return CreateResult(partition_name(first), format_month(first), created)


def list_partitions(*, database_url: str | None = None) -> list[PartitionInfo]:
    """Every partition, oldest first: name, range [start, end), row count (exact below 100,000
    rows, else the statistics' estimate: ``estimated``), size in bytes."""
    with connect(resolve_url(database_url), autocommit=True) as conn:
        _sql.require_schema(conn)
        return _sql.list_partitions(conn)


def missing_next_month(conninfo: str) -> bool:
    """True when no partition will take events inserted at the start of next UTC month."""
    start = datetime.combine(next_month(), datetime.min.time(), tzinfo=timezone.utc)
    with connect(normalise(conninfo), autocommit=True) as conn:
        return _sql.covering_partition(conn, start) is None


def rollup(*, database_url: str | None = None) -> list[str]:
    """Count the analytics rollups (docs/analytics.md, "Monthly rollups") of every month that is
    over and has no valid one, so that the first whole-journal query after a month ends does
    not pay for it; the months rolled up afterwards, ``"YYYY-MM"``, oldest first. A month some
    transaction may still be writing is left live this time (run it again later)."""
    from .store import analytics_rollups as _rollups

    info = resolve_url(database_url)
    with connect(info, autocommit=True) as conn:
        _sql.require_schema(conn)
        schema = _sql.events_schema(conn)
    return [format_month(m) for m in sorted(set(_rollups.fill(info, schema, latency=True)))]


def rollup_summary(months: list[str]) -> str:
    """The one line ``continuum partitions rollup`` (and the magic) print for ``rollup()``."""
    if months:
        return f"analytics rollups valid for {len(months)} month(s): {', '.join(months)}"
    return ("no month to roll up: no month that is over holds events, or one is still being written "
            "(run it again later)")


@dataclass(frozen=True)
class DropCandidate:
    """A partition wholly before the current UTC month, and what (if anything) keeps it."""

    partition: PartitionInfo
    check: DropCheck
    dropped: bool = False

    @property
    def reason(self) -> str:
        c = self.check
        if c.droppable:
            return "every event belongs to an expired run" if self.partition.rows else "empty"
        parts = []
        if c.unretained_runs:
            parts.append(f"{c.unretained_runs} run(s) without retention_until")
        if c.retained_runs:
            parts.append(f"{c.retained_runs} run(s) with retention_until in the future")
        if c.missing_runs:
            parts.append(f"events of {c.missing_runs} run(s) missing from continuum_runs")
        return "kept: " + ", ".join(parts)


@dataclass(frozen=True)
class DropReport:
    executed: bool
    #: False when no run has retention_until set: then nothing is considered or changed.
    retention_in_use: bool
    #: The first month that is never dropped (the current UTC month).
    current_month: str
    candidates: list[DropCandidate] = field(default_factory=list)
    #: continuum_activity_results rows of expired runs: deleted (executed) or that would be.
    expired_results: int = 0

    @property
    def droppable(self) -> list[str]:
        return [c.partition.name for c in self.candidates if c.check.droppable]

    @property
    def dropped(self) -> list[str]:
        return [c.partition.name for c in self.candidates if c.dropped]


def drop_old(
    execute: bool = False, *, database_url: str | None = None, now: datetime | None = None
) -> DropReport:
    """Report (default) or, with ``execute=True``, drop the partitions that retention allows and
    delete the activity results of expired runs. ``now`` fixes "the current month" (for tests);
    whether a run's retention has passed is always judged by the database clock."""
    current = month_of(now or _utcnow())
    cutoff = datetime.combine(current, datetime.min.time(), tzinfo=timezone.utc)
    with connect(resolve_url(database_url), autocommit=True) as conn:
        _sql.require_schema(conn)
        if not _sql.retention_in_use(conn):
            return DropReport(execute, False, format_month(current))
        candidates = []
        for p in _sql.list_partitions(conn):
            if p.end is None or p.end > cutoff or p.month is None:
                continue  # the current month and later, a DEFAULT or hand-made partition
            check = _sql.check_droppable(conn, p.name)
            dropped = execute and check.droppable and _sql.drop_partition(conn, p.name)
            if execute and check.droppable and not dropped:
                check = _sql.check_droppable(conn, p.name)  # changed meanwhile: report why kept
            candidates.append(DropCandidate(p, check, dropped))
        results = _sql.delete_expired_results(conn) if execute else _sql.expired_results_count(conn)
    return DropReport(execute, True, format_month(current), candidates, results)
