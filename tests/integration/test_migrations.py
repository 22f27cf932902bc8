"""``continuum migrate`` on a fresh database and on a v0.1 database holding two years of data."""

from __future__ import annotations

import json
import random
import shutil
import threading
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from continuum_nb.cli import main
from continuum_nb.errors import MigrationError
from continuum_nb.store import migrate as migrate_module
from continuum_nb.store.migrate import ALIASES, applied, available, migrate
from continuum_nb.store.partitions import add_months, partition_name

#: The v0.1 columns of every v0.1 table and its key: what the checksums cover.
V01_TABLES: dict[str, tuple[str, str]] = {
    "continuum_runs": (
        "id, workflow, version_hash, state, input, result, error, started_at, completed_at, "
        "lease_owner, lease_token, lease_expires_at, next_wakeup_at",
        "id",
    ),
    "continuum_events": ("run_id, seq, event_type, payload, inserted_at", "run_id, seq"),
    "continuum_signals": ("id, run_id, name, payload, delivered, inserted_at", "id"),
    "continuum_timers": ("id, run_id, fires_at, fired", "id"),
    "continuum_activity_tasks": (
        "id, run_id, seq, mfa, attempt, state, scheduled_at, available_at, lease_owner, "
        "lease_expires_at, result, error",
        "id",
    ),
}


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def checksums(url: str) -> dict[str, tuple[int, str]]:
    """Row count and md5 of the ordered rows (v0.1 columns) of every v0.1 table."""
    out = {}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        for table, (cols, key) in V01_TABLES.items():
            query = sql.SQL(
                "SELECT count(*), md5(coalesce(string_agg(row({})::text, E'\\n' ORDER BY {}), '')) FROM {}"
            ).format(sql.SQL(cols), sql.SQL(key), sql.Identifier(table))
            row = conn.execute(query).fetchone()
            assert row is not None
            out[table] = (int(row[0]), str(row[1]))
    return out


def this_month() -> datetime:
    now = datetime.now(timezone.utc)
    return datetime(now.year, now.month, 1, tzinfo=timezone.utc)


def fill_v01(url: str, *, months: int = 26, runs: int = 390, seed: int = 20260601) -> None:
    """Runs in every state, with events spread over ``months`` months up to now, signals,
    timers and activity tasks (mfa in both the Elixir and the continuum_nb form)."""
    rnd = random.Random(seed)
    first = add_months(this_month().date(), -(months - 1))
    now = datetime.now(timezone.utc)
    states = ["running", "suspended", "completed", "failed"]
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        run_rows: list[tuple[Any, ...]] = []
        event_rows: list[tuple[Any, ...]] = []
        signal_rows: list[tuple[Any, ...]] = []
        timer_rows: list[tuple[Any, ...]] = []
        task_rows: list[tuple[Any, ...]] = []
        for i in range(runs):
            run_id = uuid.UUID(int=rnd.getrandbits(128), version=4)
            month = add_months(first, i % months)
            started = datetime(month.year, month.month, 1, tzinfo=timezone.utc) + timedelta(
                days=rnd.randrange(0, 27), seconds=rnd.randrange(0, 86400)
            )
            state = states[i % 4]
            done = state in ("completed", "failed")
            run_rows.append(
                (
                    run_id, "order" if i % 3 else "billing", f"v{i % 5}", state,
                    json.dumps({"order_id": f"A{i}", "cents": rnd.randrange(100, 10000)}),
                    json.dumps({"ok": True, "n": i}) if state == "completed" else None,
                    json.dumps({"error": "boom"}) if state == "failed" else None,
                    started, started + timedelta(hours=5) if done else None,
                    "node-1" if state == "running" else None,
                    rnd.randrange(1, 1000) if state == "running" else None,
                    now + timedelta(seconds=30) if state == "running" else None,
                    now + timedelta(hours=1) if state == "suspended" else None,
                )
            )
            at = started
            for seq in range(1, rnd.randrange(8, 24)):
                at = min(at + timedelta(minutes=rnd.randrange(1, 4000)), now)
                kind = rnd.choice(["activity_scheduled", "activity_completed", "timer_started", "signal_received"])
                event_rows.append((run_id, seq, kind, json.dumps({"seq": seq, "k": kind, "r": rnd.random()}), at))
            for s in range(i % 3):
                signal_rows.append((run_id, f"sig{s}", json.dumps({"by": "ana", "s": s}), bool(s % 2), at))
            if state == "suspended":
                timer_rows.append((uuid.UUID(int=rnd.getrandbits(128), version=4), run_id, at + timedelta(hours=3), False))
            for t in range(2):
                mfa = (
                    {"module": "Elixir.Billing", "function": "charge", "args": [i, t]}
                    if t == 0
                    else {"activity": "ship", "args": [i]}
                )
                task_rows.append(
                    (
                        uuid.UUID(int=rnd.getrandbits(128), version=4), run_id, t + 1, json.dumps(mfa),
                        1 + t, rnd.choice(["available", "leased", "completed", "failed"]), started, started,
                        None, None, json.dumps({"ok": t}) if t else None, None,
                    )
                )
        copies = [
            ("continuum_runs", V01_TABLES["continuum_runs"][0], run_rows),
            ("continuum_events", V01_TABLES["continuum_events"][0], event_rows),
            ("continuum_signals", "run_id, name, payload, delivered, inserted_at", signal_rows),
            ("continuum_timers", V01_TABLES["continuum_timers"][0], timer_rows),
            ("continuum_activity_tasks", V01_TABLES["continuum_activity_tasks"][0], task_rows),
        ]
        for table, cols, rows in copies:
            with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table), sql.SQL(cols))) as copy:
                for r in rows:
                    copy.write_row(r)
        for _ in range(37):
            cur.execute("SELECT nextval('continuum_lease_token_seq')")


def test_fresh_database_gets_every_migration(empty_db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = cli(capsys, "migrate", "--database-url", empty_db_url)
    assert rc == 0
    assert [line.split()[1] for line in out.splitlines()] == [m.revision for m in available()]
    with psycopg.connect(empty_db_url) as conn:
        assert applied(conn) == [m.version for m in available()]
        pk = conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'continuum_events_pkey' "
            "AND conrelid = 'continuum_events'::regclass"
        ).fetchone()
        assert pk == ("PRIMARY KEY (run_id, seq, inserted_at)",)
        parts = {r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'continuum_events'::regclass"
        )}
    month = this_month().date()
    assert parts == {partition_name(add_months(month, k)) for k in range(4)}


def test_v01_database_with_two_years_of_data(empty_db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    url = empty_db_url
    rc, out, _ = cli(capsys, "migrate", "--to", "v0.1", "--database-url", url)
    assert rc == 0 and out.split() == ["applied", "20260502153302_create_continuum_tables"]
    fill_v01(url)
    before = checksums(url)
    with psycopg.connect(url) as conn:
        months = {r[0] for r in conn.execute(
            "SELECT DISTINCT to_char(inserted_at AT TIME ZONE 'UTC', 'YYYY-MM') FROM continuum_events"
        )}
    assert len(months) >= 24 and before["continuum_events"][0] >= 3000
    assert all(count > 0 for count, _ in before.values())

    # --print shows exactly the pending migrations and changes nothing.
    rc, out, _ = cli(capsys, "migrate", "--print", "--database-url", url)
    assert rc == 0
    assert "20260502153302_create_continuum_tables" not in out
    assert all(f"-- {m.revision}" in out for m in available()[1:])
    with psycopg.connect(url) as conn:
        assert applied(conn) == [ALIASES["v0.1"]]
        assert conn.execute("SELECT to_regclass('continuum_events_legacy')").fetchone() == (None,)
        assert conn.execute(
            "SELECT count(*) FROM pg_partitioned_table WHERE partrelid = 'continuum_events'::regclass"
        ).fetchone() == (0,)
    assert checksums(url) == before

    rc, out, _ = cli(capsys, "migrate", "--database-url", url)
    assert rc == 0 and len(out.splitlines()) == len(available()) - 1
    assert checksums(url) == before

    with psycopg.connect(url) as conn:
        assert conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'continuum_events_pkey'"
        ).fetchone() == ("PRIMARY KEY (run_id, seq, inserted_at)",)
        assert conn.execute("SELECT to_regclass('continuum_events_legacy')").fetchone() == (None,)
        parts = {r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'continuum_events'::regclass"
        )}
        # Every row sits in the partition named after its own UTC month.
        misplaced = conn.execute(
            "SELECT count(*) FROM continuum_events WHERE tableoid::regclass::text <> "
            "'continuum_events_y' || to_char(inserted_at AT TIME ZONE 'UTC', 'YYYY') "
            "|| '_m' || to_char(inserted_at AT TIME ZONE 'UTC', 'MM')"
        ).fetchone()
        assert misplaced == (0,)
        activities: dict[Any, Any] = dict(conn.execute(
            "SELECT mfa ->> 'function', activity FROM continuum_activity_tasks GROUP BY 1, 2"
        ).fetchall())
        assert activities == {"charge": "Elixir.Billing.charge", None: "ship"}
        # Every run's last_seq is backfilled from its journal (the wake's seq check reads it).
        assert conn.execute(
            "SELECT count(*) FILTER (WHERE last_seq > 0), count(*) FILTER (WHERE r.last_seq <> "
            "coalesce((SELECT max(seq) FROM continuum_events e WHERE e.run_id = r.id), 0)) FROM continuum_runs r"
        ).fetchone() == (390, 0)
        # Sequences carry on where v0.1 left them.
        assert conn.execute("SELECT nextval('continuum_lease_token_seq')").fetchone() == (38,)
        max_id = conn.execute("SELECT max(id) FROM continuum_signals").fetchone()
        new_id = conn.execute(
            "INSERT INTO continuum_signals (run_id, name, payload) VALUES (gen_random_uuid(), 'x', '{}') RETURNING id"
        ).fetchone()
        assert max_id is not None and new_id is not None and new_id[0] > max_id[0]
        conn.rollback()
    first = this_month().date()
    expected = {f"continuum_events_y{m[:4]}_m{m[5:]}" for m in months}
    expected |= {partition_name(add_months(first, k)) for k in range(4)}
    assert parts == expected

    # A second run is a no-op.
    rc, out, _ = cli(capsys, "migrate", "--database-url", url)
    assert rc == 0 and out.startswith("nothing to apply")
    assert checksums(url) == before


def test_print_on_an_empty_database_changes_nothing(empty_db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = cli(capsys, "migrate", "--print", "--database-url", empty_db_url)
    assert rc == 0
    for m in available():
        assert f"-- {m.revision}" in out and m.sql.strip() in out
    with psycopg.connect(empty_db_url) as conn:
        n = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
        ).fetchone()
    assert n == (0,)


def test_printed_sql_builds_the_same_database(empty_db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """What --print shows is what migrate runs: executing it leaves nothing pending."""
    rc, out, _ = cli(capsys, "migrate", "--print", "--database-url", empty_db_url)
    assert rc == 0
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute(out.encode())
    assert migrate(empty_db_url) == []


def test_concurrent_migrators_apply_each_migration_once(empty_db_url: str) -> None:
    results: list[Any] = []

    def run() -> None:
        try:
            results.append(migrate(empty_db_url))
        except Exception as exc:  # reported below
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(isinstance(r, Exception) for r in results), results
    applied_by = [m.version for r in results for m in r]
    assert sorted(applied_by) == [m.version for m in available()]  # each exactly once
    with psycopg.connect(empty_db_url) as conn:
        assert applied(conn) == [m.version for m in available()]


def test_a_failing_migration_rolls_back_and_reports_one_line(
    empty_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for m in available():
        shutil.copy(m.path, tmp_path / m.path.name)
    (tmp_path / "20990101000000_broken.sql").write_text(
        "CREATE TABLE continuum_broken (id int);\nSELECT 1 / 0;\n", encoding="utf-8"
    )
    monkeypatch.setattr(migrate_module, "migrations_dir", lambda: tmp_path)
    rc, out, err = cli(capsys, "migrate", "--database-url", empty_db_url)
    assert rc == 2
    assert len(err.strip().splitlines()) == 1
    assert "20990101000000_broken" in err and "division by zero" in err
    with psycopg.connect(empty_db_url) as conn:
        assert applied(conn) == [m.version for m in available()[:-1]]
        assert conn.execute("SELECT to_regclass('continuum_broken')").fetchone() == (None,)
    with pytest.raises(MigrationError):
        migrate(empty_db_url)


def test_to_an_older_revision_than_applied_is_a_no_op(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = cli(capsys, "migrate", "--to", "v0.1", "--database-url", db_url)
    assert rc == 0 and out.startswith("nothing to apply")
    with psycopg.connect(db_url) as conn:
        assert applied(conn) == [m.version for m in available()]
