"""The generated shape (``continuum gen-migration``) equals applying every migration, catalog
against catalog: tables, columns, constraints, indexes, partitioning, sequences."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from continuum_nb.commands.gen_migration import alembic_revision, sql_script
from continuum_nb.store.migrate import available, migrate, pending
from continuum_nb.store.schema import metadata


def catalog(conninfo: str) -> dict[str, Any]:
    """Everything about the public schema that a migration can change, in comparable form."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")  # partition bounds render in the session zone

        def rows(query: str) -> list[tuple[Any, ...]]:
            return [tuple(r) for r in conn.execute(query).fetchall()]

        return {
            "tables": rows(
                """
                SELECT c.relname, c.relkind, c.relpersistence, coalesce(c.reloptions, '{}')
                  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
                 ORDER BY 1
                """
            ),
            "columns": rows(
                """
                SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                       pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
                       row_number() OVER (PARTITION BY c.relname ORDER BY a.attnum)
                  FROM pg_attribute a
                  JOIN pg_class c ON c.oid = a.attrelid
                  JOIN pg_namespace n ON n.oid = c.relnamespace
                  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
                   AND a.attnum > 0 AND NOT a.attisdropped
                 ORDER BY 1, 8
                """
            ),
            "constraints": rows(
                """
                SELECT c.relname, k.conname, k.contype, pg_get_constraintdef(k.oid)
                  FROM pg_constraint k
                  JOIN pg_class c ON c.oid = k.conrelid
                  JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'public'
                 ORDER BY 1, 2
                """
            ),
            "indexes": rows(
                "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1, 2"
            ),
            "partition_keys": rows(
                """
                SELECT p.partrelid::regclass::text, pg_get_partkeydef(p.partrelid)
                  FROM pg_partitioned_table p ORDER BY 1
                """
            ),
            "partitions": rows(
                """
                SELECT i.inhparent::regclass::text, c.relname, pg_get_expr(c.relpartbound, c.oid)
                  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 ORDER BY 1, 2
                """
            ),
            "sequences": rows(
                """
                SELECT s.sequencename, s.data_type::text, s.start_value, s.min_value, s.max_value,
                       s.increment_by, s.cycle, s.cache_size,
                       (SELECT t.relname || '.' || a.attname
                          FROM pg_depend d
                          JOIN pg_class t ON t.oid = d.refobjid
                          JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                         WHERE d.objid = (quote_ident(s.sequencename))::regclass
                           AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
                  FROM pg_sequences s WHERE s.schemaname = 'public' ORDER BY 1
                """
            ),
            "functions": rows(
                """
                SELECT p.proname, pg_get_functiondef(p.oid)
                  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                 WHERE n.nspname = 'public' ORDER BY 1
                """
            ),
            "triggers": rows(
                """
                SELECT t.tgrelid::regclass::text, t.tgname, pg_get_triggerdef(t.oid)
                  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                  JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'public' AND NOT t.tgisinternal ORDER BY 1, 2
                """
            ),
            "migrations": rows("SELECT version, name FROM continuum_schema_migrations ORDER BY 1"),
        }


@pytest.fixture
def other_db_url(admin_url: str) -> Iterator[str]:
    """A second empty database on the same server."""
    name = "cn_test_" + uuid.uuid4().hex[:12]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield make_conninfo(admin_url, dbname=name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _assert_same(migrated: dict[str, Any], generated: dict[str, Any]) -> None:
    for key in migrated:
        assert generated[key] == migrated[key], f"{key} differ between migrations and the generated shape"


def test_generated_sql_equals_migrations(empty_db_url: str, other_db_url: str) -> None:
    migrate(empty_db_url)
    with psycopg.connect(other_db_url, autocommit=True) as conn:
        conn.execute(sql_script().encode())

    migrated, generated = catalog(empty_db_url), catalog(other_db_url)
    _assert_same(migrated, generated)
    # The comparison saw the whole shape, not an empty catalog.
    tables = {t[0] for t in migrated["tables"]}
    assert {t.name for t in metadata.sorted_tables} <= tables
    assert len([p for p in migrated["partitions"] if p[0] == "continuum_events"]) == 4
    assert ("continuum_events", "RANGE (inserted_at)") in migrated["partition_keys"]
    assert any(s[0] == "continuum_lease_token_seq" for s in migrated["sequences"])
    assert any(c[2] == "c" for c in migrated["constraints"])  # CHECKs compared
    assert any("WHERE" in i[2] for i in migrated["indexes"])  # partial indexes compared
    assert [f[0] for f in migrated["functions"]] == [
        "continuum_analytics_changed", "continuum_analytics_truncated",
        "continuum_cancel_tree", "continuum_commit_wake", "continuum_commit_wakes",
        "continuum_commit_wakes_json"]  # compared
    assert {t[1] for t in migrated["triggers"]} >= {  # compared, on the partitions too
        "continuum_analytics_late_insert", "continuum_analytics_changed", "continuum_analytics_truncated"}
    # Every migration is marked applied, so `continuum migrate` afterwards does nothing.
    assert [m[0] for m in generated["migrations"]] == [m.version for m in available()]
    assert pending(other_db_url) == []
    assert migrate(other_db_url) == []


def test_a_schema_difference_is_detected(empty_db_url: str, other_db_url: str) -> None:
    """The diff is sharp enough to see a single changed default."""
    migrate(empty_db_url)
    script = sql_script().replace("size_bytes INTEGER DEFAULT 0 NOT NULL", "size_bytes INTEGER DEFAULT 1 NOT NULL")
    with psycopg.connect(other_db_url, autocommit=True) as conn:
        conn.execute(script.encode())
    assert catalog(empty_db_url)["columns"] != catalog(other_db_url)["columns"]


def test_alembic_revision_compiles_and_builds_the_same_shape(empty_db_url: str, other_db_url: str) -> None:
    source = alembic_revision("cn0001", None)
    code = compile(source, "continuum_revision.py", "exec")
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # the generated file only defines constants and two functions
    assert namespace["revision"] == "cn0001" and namespace["down_revision"] is None

    alembic_migration = pytest.importorskip("alembic.runtime.migration")
    alembic_ops = pytest.importorskip("alembic.operations")
    sqlalchemy = pytest.importorskip("sqlalchemy")
    from continuum_nb.store.database import sqlalchemy_url

    migrate(empty_db_url)
    engine = sqlalchemy.create_engine(sqlalchemy_url(other_db_url))
    try:
        with engine.begin() as connection:
            context = alembic_migration.MigrationContext.configure(connection)
            with alembic_ops.Operations.context(context):
                namespace["upgrade"]()
        _assert_same(catalog(empty_db_url), catalog(other_db_url))

        with engine.begin() as connection:
            context = alembic_migration.MigrationContext.configure(connection)
            with alembic_ops.Operations.context(context):
                namespace["downgrade"]()
        with psycopg.connect(other_db_url, autocommit=True) as conn:
            left = conn.execute(
                """
                SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'public' AND c.relname LIKE 'continuum%'
                """
            ).fetchone()
        assert left is not None and left[0] == 0
    finally:
        engine.dispose()


_MONTHLY = re.compile(r"continuum_events_y\d{4}_m\d{2}")


def _without_monthly_partitions(cat: dict[str, Any]) -> dict[str, Any]:
    """Drop every catalog row that belongs to a monthly partition (their set depends on the data)."""
    return {
        key: [r for r in rows if not any(isinstance(v, str) and _MONTHLY.search(v) for v in r)]
        for key, rows in cat.items()
    }


def test_upgraded_v01_database_has_the_generated_shape(empty_db_url: str, other_db_url: str) -> None:
    """A v0.1 database with old events, once migrated, is shaped like a fresh install
    (apart from the extra monthly partitions its old events needed)."""
    migrate(empty_db_url, to="v0.1")
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        run_id = uuid.uuid4()
        conn.execute(
            "INSERT INTO continuum_runs (id, workflow, version_hash, state, input) "
            "VALUES (%s, 'order', 'v1', 'completed', '{}')",
            (run_id,),
        )
        for seq, at in enumerate(("2023-01-15", "2023-07-01", "2024-12-31 23:59:59+00"), start=1):
            conn.execute(
                "INSERT INTO continuum_events (run_id, seq, event_type, payload, inserted_at) "
                "VALUES (%s, %s, 'side_effect', '{}', %s)",
                (run_id, seq, at),
            )
    migrate(empty_db_url)
    with psycopg.connect(other_db_url, autocommit=True) as conn:
        conn.execute(sql_script().encode())
    upgraded, generated = catalog(empty_db_url), catalog(other_db_url)
    def months(cat: dict[str, Any]) -> set[str]:
        return {p[1] for p in cat["partitions"] if p[0] == "continuum_events"}

    assert months(upgraded) - months(generated) == {
        "continuum_events_y2023_m01",
        "continuum_events_y2023_m07",
        "continuum_events_y2024_m12",
    }
    _assert_same(_without_monthly_partitions(upgraded), _without_monthly_partitions(generated))
