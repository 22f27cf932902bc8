"""SQLAlchemy Core definitions of the current schema (the v0.2 shape plus continuum_nb's tables).

This is the shape ``migrations/`` produce, declared once: ``continuum gen-migration`` renders it
as SQL (or an Alembic revision) for host apps, and ``tests/integration/test_schema_diff.py``
checks, catalog against catalog, that it matches applying every migration. When a migration
changes the schema, change this file the same way (same names, same column order).
"""

from __future__ import annotations

import re

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Sequence,
    Table,
    Text,
    false,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.schema import CreateIndex, CreateSequence, CreateTable

from .base import RUN_STATES
from .migrate import available
from .partitions import INITIAL_PARTITIONS_SQL

__all__ = [
    "RUN_STATES",
    "TASK_STATES",
    "activity_results",
    "analytics_counts",
    "analytics_latency",
    "analytics_months",
    "analytics_rollups",
    "activity_tasks",
    "create_statements",
    "drop_statements",
    "events",
    "ingress_keys",
    "lease_token_seq",
    "metadata",
    "runs",
    "schema_migrations",
    "signal_keys",
    "signals",
    "snapshots",
    "timers",
    "trigger_statements",
    "workflow_versions",
]

TASK_STATES = ("available", "leased", "completed", "failed", "cancelled")

metadata = MetaData()


def _tz(name: str, *, nullable: bool = True, now: bool = False) -> Column:
    return Column(
        name,
        DateTime(timezone=True),
        nullable=nullable,
        server_default=text("now()") if now else None,
    )


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


#: Fencing tokens for run and task leases (one sequence, so tokens only ever grow).
lease_token_seq = Sequence("continuum_lease_token_seq", metadata=metadata)

runs = Table(
    "continuum_runs",
    metadata,
    Column("id", UUID(as_uuid=True), nullable=False),
    Column("workflow", Text, nullable=False),
    Column("version_hash", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("input", JSONB, nullable=False),
    Column("result", JSONB),
    Column("error", JSONB),
    _tz("started_at", nullable=False, now=True),
    _tz("completed_at"),
    Column("lease_owner", Text),
    Column("lease_token", BigInteger),
    _tz("lease_expires_at"),
    _tz("next_wakeup_at"),
    Column("trace_context", LargeBinary),
    _tz("retention_until"),
    Column("attributes", JSONB),
    Column("retention", postgresql.INTERVAL),
    # The journal's last seq (0: none), kept by continuum_commit_wake: its seq check reads it.
    Column("last_seq", BigInteger, nullable=False, server_default=text("0")),
    # a fork's origin (migration 20261207020000): the run and the last seq copied from it
    Column("forked_from_run_id", UUID(as_uuid=True)),
    Column("forked_at_seq", BigInteger),
    # links between runs (migration 20261207050000): a child's parent, the run a continued
    # run continues, and the id every run of one chain or family shares
    Column("parent_run_id", UUID(as_uuid=True)),
    Column("correlation_id", UUID(as_uuid=True)),
    Column("continued_from_run_id", UUID(as_uuid=True)),
    # a child's answer to its parent's cancel (migration 20261207070000): 'cancel' or 'abandon'
    Column("on_parent_cancel", Text),
    PrimaryKeyConstraint("id", name="continuum_runs_pkey"),
    CheckConstraint(_in("state", RUN_STATES), name="continuum_runs_state_check"),
    # Runs are updated in place on every wake; free space on the page keeps those HOT updates.
    postgresql_with={"fillfactor": "70"},
)
Index("continuum_runs_lease_idx", runs.c.lease_expires_at, postgresql_where=text("lease_owner IS NOT NULL"))
Index(
    "continuum_runs_runnable_idx",
    runs.c.workflow,
    runs.c.next_wakeup_at,
    postgresql_where=text("state IN ('running', 'suspended')"),
)
Index(
    "continuum_runs_stranded_idx",
    runs.c.workflow,
    postgresql_where=text("state = 'running' AND next_wakeup_at IS NULL"),
)
Index("continuum_runs_state_started_idx", runs.c.state, runs.c.started_at.desc(), runs.c.id)
Index("continuum_runs_workflow_started_idx", runs.c.workflow, runs.c.started_at.desc(), runs.c.id)
Index("continuum_runs_started_idx", runs.c.started_at.desc(), runs.c.id)
Index(
    "continuum_runs_retention_idx",
    runs.c.retention_until,
    postgresql_where=text("retention_until IS NOT NULL"),
)
Index("continuum_runs_forked_from_idx", runs.c.forked_from_run_id,
      postgresql_where=text("forked_from_run_id IS NOT NULL"))
Index("continuum_runs_parent_idx", runs.c.parent_run_id,
      postgresql_where=text("parent_run_id IS NOT NULL"))
Index("continuum_runs_continued_from_idx", runs.c.continued_from_run_id,
      postgresql_where=text("continued_from_run_id IS NOT NULL"))
Index("continuum_runs_correlation_idx", runs.c.correlation_id,
      postgresql_where=text("correlation_id IS NOT NULL"))
# Partial: runs without attributes never write to it (a run row is updated on most wakes).
Index(
    "continuum_runs_attributes_idx",
    runs.c.attributes,
    postgresql_using="gin",
    postgresql_ops={"attributes": "jsonb_path_ops"},
    postgresql_where=text("attributes IS NOT NULL"),
)

events = Table(
    "continuum_events",
    metadata,
    Column("run_id", UUID(as_uuid=True), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("payload", JSONB, nullable=False),
    _tz("inserted_at", nullable=False, now=True),
    # A partitioned table's keys must contain the partition key, hence inserted_at.
    PrimaryKeyConstraint("run_id", "seq", "inserted_at", name="continuum_events_pkey"),
    postgresql_partition_by="RANGE (inserted_at)",
)
Index("continuum_events_type_time_idx", events.c.event_type, events.c.inserted_at)

signals = Table(
    "continuum_signals",
    metadata,
    Column("id", BigInteger, nullable=False, autoincrement=True),
    Column("run_id", UUID(as_uuid=True), nullable=False),
    Column("name", Text, nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("delivered", Boolean, nullable=False, server_default=false()),
    _tz("inserted_at", nullable=False, now=True),
    Column("delivered_seq", BigInteger),
    PrimaryKeyConstraint("run_id", "id", name="continuum_signals_pkey"),
)
Index(
    "continuum_signals_pending_idx",
    signals.c.run_id,
    signals.c.name,
    signals.c.id,
    postgresql_where=text("delivered = false"),
)

timers = Table(
    "continuum_timers",
    metadata,
    Column("id", UUID(as_uuid=True), nullable=False),
    Column("run_id", UUID(as_uuid=True), nullable=False),
    _tz("fires_at", nullable=False),
    Column("fired", Boolean, nullable=False, server_default=false()),
    Column("seq", BigInteger),
    PrimaryKeyConstraint("run_id", "id", name="continuum_timers_pkey"),
)
Index("continuum_timers_due_idx", timers.c.fires_at, postgresql_where=text("fired = false"))

activity_tasks = Table(
    "continuum_activity_tasks",
    metadata,
    Column("id", UUID(as_uuid=True), nullable=False),
    Column("run_id", UUID(as_uuid=True), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("mfa", JSONB, nullable=False),
    Column("attempt", Integer, nullable=False, server_default=text("1")),
    Column("state", Text, nullable=False),
    _tz("scheduled_at", nullable=False, now=True),
    _tz("available_at", nullable=False, now=True),
    Column("lease_owner", Text),
    _tz("lease_expires_at"),
    Column("result", JSONB),
    Column("error", JSONB),
    Column("activity", Text, nullable=False),
    Column("idempotency_key", Text),
    Column("lease_token", BigInteger),
    _tz("completed_at"),
    PrimaryKeyConstraint("run_id", "id", name="continuum_activity_tasks_pkey"),
    CheckConstraint(_in("state", TASK_STATES), name="continuum_activity_tasks_state_check"),
)
Index(
    "continuum_activity_tasks_pickup_idx",
    activity_tasks.c.available_at,
    postgresql_where=text("state = 'available'"),
)
Index("continuum_activity_tasks_run_seq_idx", activity_tasks.c.run_id, activity_tasks.c.seq, unique=True)
Index(
    "continuum_activity_tasks_lease_idx",
    activity_tasks.c.lease_expires_at,
    postgresql_where=text("state = 'leased'"),
)

activity_results = Table(
    "continuum_activity_results",
    metadata,
    Column("activity_module", Text, nullable=False),
    Column("idempotency_key", Text, nullable=False),
    Column("run_id", UUID(as_uuid=True), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("result", JSONB, nullable=False),
    _tz("completed_at", nullable=False, now=True),
    PrimaryKeyConstraint("activity_module", "idempotency_key", name="continuum_activity_results_pkey"),
)
Index("continuum_activity_results_run_idx", activity_results.c.run_id)

snapshots = Table(
    "continuum_snapshots",
    metadata,
    Column("id", BigInteger, nullable=False, autoincrement=True),
    Column("run_id", UUID(as_uuid=True), nullable=False),
    Column("through_seq", BigInteger, nullable=False),
    Column("version_hash", Text, nullable=False),
    Column("payload", JSONB, nullable=False),
    _tz("taken_at", nullable=False, now=True),
    Column("size_bytes", Integer, nullable=False, server_default=text("0")),
    PrimaryKeyConstraint("run_id", "id", name="continuum_snapshots_pkey"),
)
Index("continuum_snapshots_run_seq_idx", snapshots.c.run_id, snapshots.c.through_seq, unique=True)
Index("continuum_snapshots_latest_idx", snapshots.c.run_id, snapshots.c.through_seq.desc())

workflow_versions = Table(
    "continuum_workflow_versions",
    metadata,
    Column("name", Text, nullable=False),
    Column("version_hash", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("origin", Text, nullable=False, server_default="cell"),
    _tz("created_at", nullable=False, now=True),
    PrimaryKeyConstraint("name", "version_hash", name="continuum_workflow_versions_pkey"),
    CheckConstraint(_in("origin", ("cell", "module")), name="continuum_workflow_versions_origin_check"),
)
Index("continuum_workflow_versions_latest_idx", workflow_versions.c.name, workflow_versions.c.created_at.desc())

#: Idempotent starts: (workflow, key) -> the run a keyed ``cn.start`` created (kept after the run
#: is pruned unless ``cn.prune(drop_keys=True)``).
ingress_keys = Table(
    "continuum_ingress_keys",
    metadata,
    Column("workflow", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("run_id", UUID(as_uuid=True), nullable=False),
    _tz("created_at", nullable=False, now=True),
    PrimaryKeyConstraint("workflow", "key", name="continuum_ingress_keys_pkey"),
)
Index("continuum_ingress_keys_run_idx", ingress_keys.c.run_id)

#: Idempotent signals: (run, signal name, key) -> the signal a keyed ``cn.signal`` delivered.
signal_keys = Table(
    "continuum_signal_keys",
    metadata,
    Column("run_id", UUID(as_uuid=True), nullable=False),
    Column("name", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("signal_id", BigInteger, nullable=False),
    _tz("created_at", nullable=False, now=True),
    PrimaryKeyConstraint("run_id", "name", "key", name="continuum_signal_keys_pkey"),
)

#: Monthly rollups for the ready-made analytics queries (store/analytics_rollups.py): a month's
#: change counter (bumped by the migration's triggers) and closing mark, ...
analytics_months = Table(
    "continuum_analytics_months",
    metadata,
    Column("month", Date, nullable=False),
    Column("changes", BigInteger, nullable=False, server_default=text("0")),
    Column("closing_xmax", BigInteger),
    PrimaryKeyConstraint("month", name="continuum_analytics_months_pkey"),
)

#: ... each rolled-up month (the partition it counted, at which changes) ...
analytics_rollups = Table(
    "continuum_analytics_rollups",
    metadata,
    Column("month", Date, nullable=False),
    Column("partition_oid", BigInteger, nullable=False),
    Column("changes", BigInteger, nullable=False),
    _tz("filled_at", nullable=False, now=True),
    PrimaryKeyConstraint("month", name="continuum_analytics_rollups_pkey"),
)

#: ... and its counts: events per event type (minute NULL) and per UTC minute (event_type NULL).
analytics_counts = Table(
    "continuum_analytics_counts",
    metadata,
    Column("month", Date, nullable=False),
    Column("event_type", Text),
    Column("minute", DateTime(timezone=True)),
    Column("n", BigInteger, nullable=False),
)
Index("continuum_analytics_counts_month_idx", analytics_counts.c.month)

#: ... and its activity latency: activities scheduled per name (sched_month NULL), and outcomes
#: paired with their activity_scheduled per activity, outcome and latency bucket.
analytics_latency = Table(
    "continuum_analytics_latency",
    metadata,
    Column("month", Date, nullable=False),
    Column("sched_month", Date),
    Column("sched_changes", BigInteger),
    Column("activity", Text),
    Column("outcome", Text),
    Column("bucket", Integer),
    Column("n", BigInteger, nullable=False),
    Column("attempts", BigInteger),
    Column("retried", BigInteger),
    Column("min_s", Double),
    Column("max_s", Double),
)
Index("continuum_analytics_latency_month_idx", analytics_latency.c.month)

#: Which migrations a database has had (``continuum migrate`` reads and writes it).
schema_migrations = Table(
    "continuum_schema_migrations",
    metadata,
    Column("version", Text, nullable=False),
    Column("name", Text, nullable=False),
    _tz("applied_at", nullable=False, now=True),
    PrimaryKeyConstraint("version", name="continuum_schema_migrations_pkey"),
)

_dialect = postgresql.dialect()


def _sql(element: object) -> str:
    compiled = str(element.compile(dialect=_dialect))  # type: ignore[attr-defined]
    # SQLAlchemy indents with tabs and leaves trailing spaces; keep printed migrations tidy.
    return "\n".join(line.rstrip().replace("\t", "    ") for line in compiled.strip().splitlines())


#: The server-side functions, by the migration that defines each (its text is the definition:
#: one source for ``continuum migrate`` and the generated schema). A later migration that
#: replaces a function must be named here instead.
FUNCTIONS = {
    "continuum_cancel_tree": "20261207070000",
    "continuum_commit_wake": "20261207070000",
    "continuum_commit_wakes_json": "20261208000000",
    "continuum_commit_wakes": "20261208000000",  # (calls the one above: created after it)
    "continuum_analytics_changed": "20261207090000",
    "continuum_analytics_truncated": "20261207090000",
}

#: The migrations whose ``CREATE TRIGGER`` statements are part of the current shape (after the
#: functions they execute).
TRIGGER_MIGRATIONS = ("20261207090000",)


def trigger_statements() -> list[str]:
    """The ``CREATE TRIGGER`` statements of ``TRIGGER_MIGRATIONS``, read from their migrations."""
    by_version = {m.version: m for m in available()}
    out = []
    for version in TRIGGER_MIGRATIONS:
        out += [t.strip() for t in re.findall(r"^CREATE TRIGGER .*?;$", by_version[version].sql, re.M | re.S)]
    return out


def function_statements() -> list[str]:
    """The ``CREATE FUNCTION`` statements of ``FUNCTIONS``, read from their migrations."""
    by_version = {m.version: m for m in available()}
    out = []
    for name, version in FUNCTIONS.items():
        sql = by_version[version].sql
        at = min(i for i in (sql.find(f"CREATE FUNCTION {name}("), sql.find(f"CREATE OR REPLACE FUNCTION {name}("))
                 if i >= 0)
        end = sql.index("\n$$;", at) + len("\n$$")  # the statement ends with its body
        out.append(sql[at:end].strip())
    return out


def create_statements() -> list[str]:
    """Every statement that builds the current shape on an empty database, in order: the
    sequence, the tables and their indexes, the functions, the current month's partition and
    the next three, and the rows that mark every migration applied (so a later
    ``continuum migrate`` is a no-op)."""
    out = [_sql(CreateSequence(lease_token_seq))]
    for table in metadata.sorted_tables:
        out.append(_sql(CreateTable(table)))
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            out.append(_sql(CreateIndex(index)))
    out += function_statements()
    out += trigger_statements()
    out.append(INITIAL_PARTITIONS_SQL)
    # Versions and names match ^\d{14}$ / ^[a-z0-9_]+$ (checked when the folder is read).
    values = ",\n    ".join(f"('{m.version}', '{m.name}')" for m in available())
    out.append(
        "INSERT INTO continuum_schema_migrations (version, name) VALUES\n    "
        f"{values}\nON CONFLICT (version) DO NOTHING"
    )
    return out


def drop_statements() -> list[str]:
    """Undo ``create_statements`` (dropping continuum_events drops its partitions)."""
    # A trigger first: the function it executes cannot be dropped before it.
    out = [f"DROP TRIGGER IF EXISTS {m[0]} ON {m[1]}"
           for m in (re.match(r"CREATE TRIGGER (\w+) .*? ON (\w+)", t, re.S).groups()  # type: ignore[union-attr]
                     for t in trigger_statements())]
    out += [f"DROP FUNCTION IF EXISTS {name}" for name in FUNCTIONS]
    out += [f"DROP TABLE IF EXISTS {t.name}" for t in reversed(metadata.sorted_tables)]
    out.append(f"DROP SEQUENCE IF EXISTS {lease_token_seq.name}")
    return out
