"""``continuum partitions create | list | drop-old`` and the Python API, on real PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from datetime import date, datetime, timedelta, timezone

import psycopg
import pytest

from continuum_nb import partitions
from continuum_nb.cli import main
from continuum_nb.errors import PartitionError
from continuum_nb.store.partitions import add_months, format_month, partition_name


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def this_month() -> date:
    now = datetime.now(timezone.utc)
    return date(now.year, now.month, 1)


def partition_names(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'continuum_events'::regclass"
        )}


def add_run(conn: psycopg.Connection, retention: timedelta | None) -> uuid.UUID:
    """A run whose retention_until is now + ``retention`` (None: no retention)."""
    run_id = uuid.uuid4()
    conn.execute(
        "INSERT INTO continuum_runs (id, workflow, version_hash, state, input, retention_until) "
        "VALUES (%s, 'order', 'v1', 'completed', '{}', now() + %s)",
        (run_id, retention),
    )
    return run_id


def add_events(conn: psycopg.Connection, run_id: uuid.UUID, month: date, n: int, first_seq: int = 1) -> None:
    start = datetime(month.year, month.month, 1, tzinfo=timezone.utc)
    for k in range(n):
        conn.execute(
            "INSERT INTO continuum_events (run_id, seq, event_type, payload, inserted_at) "
            "VALUES (%s, %s, 'side_effect', '{}', %s)",
            (run_id, first_seq + k, start + timedelta(days=k % 27, minutes=k)),
        )


def add_result(conn: psycopg.Connection, run_id: uuid.UUID, key: str) -> None:
    conn.execute(
        "INSERT INTO continuum_activity_results (activity_module, idempotency_key, run_id, seq, result) "
        "VALUES ('billing.charge', %s, %s, 1, '{}')",
        (key, run_id),
    )


def test_create_is_idempotent_and_list_shows_it(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = cli(capsys, "partitions", "create", "2031-05", "--database-url", db_url)
    assert rc == 0 and out.strip() == "created continuum_events_y2031_m05 for 2031-05"
    rc, out, _ = cli(capsys, "partitions", "create", "2031-05", "--database-url", db_url)
    assert rc == 0 and out.strip() == "already exists: continuum_events_y2031_m05 for 2031-05"
    rc, out, _ = cli(capsys, "partitions", "list", "--database-url", db_url)
    assert rc == 0
    line = next(ln for ln in out.splitlines() if ln.startswith("continuum_events_y2031_m05"))
    assert line.split()[1:4] == ["[2031-05-01,", "2031-06-01)", "0"]
    # Default month: the next one (created by the migrations already, so idempotent here).
    nxt = add_months(this_month(), 1)
    rc, out, _ = cli(capsys, "partitions", "create", "--database-url", db_url)
    assert rc == 0 and out.strip() == f"already exists: {partition_name(nxt)} for {format_month(nxt)}"


def test_default_create_makes_next_month(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    nxt = partition_name(add_months(this_month(), 1))
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE {nxt}")
    assert partitions.missing_next_month(db_url) is True
    rc, out, _ = cli(capsys, "partitions", "create", "--database-url", db_url)
    assert rc == 0 and out.startswith(f"created {nxt}")
    assert nxt in partition_names(db_url)
    assert partitions.missing_next_month(db_url) is False


def test_list_counts_rows_per_partition(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    old = add_months(this_month(), -14)
    partitions.create(old, database_url=db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        run = add_run(conn, None)
        add_events(conn, run, old, 7)
        add_events(conn, run, this_month(), 3, first_seq=100)
    listed = {p.name: p for p in partitions.list_partitions(database_url=db_url)}
    assert listed[partition_name(old)].rows == 7
    assert listed[partition_name(this_month())].rows == 3
    assert listed[partition_name(add_months(this_month(), 1))].rows == 0
    assert all(p.size_bytes > 0 for p in listed.values())
    names = list(listed)
    assert names == sorted(names)  # oldest first
    rc, out, _ = cli(capsys, "partitions", "list", "--database-url", db_url)
    rows = {ln.split()[0]: ln.split()[3] for ln in out.splitlines()[1:]}
    assert rows[partition_name(old)] == "7" and rows[partition_name(this_month())] == "3"


def test_a_big_partition_is_listed_with_its_estimate(db_url: str, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from continuum_nb.store import partitions as store_partitions

    old = add_months(this_month(), -3)
    partitions.create(old, database_url=db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        run = add_run(conn, None)
        add_events(conn, run, old, 9)
        add_events(conn, run, this_month(), 3, first_seq=100)
        conn.execute(f"ANALYZE {partition_name(old)}")
        conn.execute(f"ANALYZE {partition_name(this_month())}")
        # the statistics say 900000 rows now: an estimate that a count(*) would contradict
        conn.execute("UPDATE pg_class SET reltuples = 900000 WHERE relname = %s", (partition_name(old),))
    monkeypatch.setattr(store_partitions, "ESTIMATE_FROM", 5)
    listed = {p.name: p for p in partitions.list_partitions(database_url=db_url)}
    assert (listed[partition_name(old)].rows, listed[partition_name(old)].estimated) == (900000, True)
    assert (listed[partition_name(this_month())].rows, listed[partition_name(this_month())].estimated) == (3, False)
    rc, out, _ = cli(capsys, "partitions", "list", "--database-url", db_url)
    rows = {ln.split()[0]: ln.split()[3] for ln in out.splitlines()[1:] if ln.startswith("continuum_events")}
    assert rc == 0 and rows[partition_name(old)] == "~900000" and rows[partition_name(this_month())] == "3"
    assert "~ estimated from the statistics" in out


@pytest.mark.parametrize("month", ["2026-13", "26-01", "2026-00", "x; drop table continuum_runs", "2026-1", ""])
def test_malformed_month_is_refused_before_any_sql(
    db_url: str, capsys: pytest.CaptureFixture[str], month: str
) -> None:
    before = partition_names(db_url)
    rc, out, err = cli(capsys, "partitions", "create", month, "--database-url", db_url)
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "YYYY-MM" in err
    assert partition_names(db_url) == before
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT to_regclass('continuum_runs') IS NOT NULL").fetchone() == (True,)


def test_drop_old_does_nothing_without_retention(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    old = add_months(this_month(), -3)
    partitions.create(old, database_url=db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        add_events(conn, add_run(conn, None), old, 2)
    for args in ([], ["--execute"]):
        rc, out, _ = cli(capsys, "partitions", "drop-old", *args, "--database-url", db_url)
        assert rc == 0 and out.startswith("no run has retention_until set")
    assert partition_name(old) in partition_names(db_url)
    report = partitions.drop_old(True, database_url=db_url)
    assert not report.retention_in_use and report.dropped == []


def test_drop_old_follows_the_retention_rules(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    cur = this_month()
    only_expired, with_unretained, with_future, empty = (add_months(cur, -k) for k in (5, 4, 3, 2))
    for m in (only_expired, with_unretained, with_future, empty):
        partitions.create(m, database_url=db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        expired = add_run(conn, timedelta(days=-1))
        expired2 = add_run(conn, timedelta(days=-30))
        unretained = add_run(conn, None)
        future = add_run(conn, timedelta(days=10))
        add_events(conn, expired, only_expired, 4)
        add_events(conn, expired2, only_expired, 2)
        add_events(conn, expired, with_unretained, 3, first_seq=10)
        add_events(conn, unretained, with_unretained, 1)
        add_events(conn, expired2, with_future, 2, first_seq=10)
        add_events(conn, future, with_future, 2)
        add_events(conn, expired, cur, 2, first_seq=20)  # the current month is never dropped
        add_result(conn, expired, "a")
        add_result(conn, expired2, "b")
        add_result(conn, unretained, "c")
        add_result(conn, future, "d")
    names_before = partition_names(db_url)

    # Dry run: a report, nothing changes.
    rc, out, _ = cli(capsys, "partitions", "drop-old", "--database-url", db_url)
    assert rc == 0 and out.startswith("dry run")
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.startswith("  continuum_events")}
    assert "would drop" in lines[partition_name(only_expired)]
    assert "would drop" in lines[partition_name(empty)]
    assert "kept (1 run(s) without retention_until)" in lines[partition_name(with_unretained)]
    assert "kept (1 run(s) with retention_until in the future)" in lines[partition_name(with_future)]
    assert partition_name(cur) not in lines
    assert "activity results of expired runs: 2 would be deleted" in out
    assert partition_names(db_url) == names_before
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM continuum_activity_results").fetchone() == (4,)

    # --execute: drops exactly the allowed months and deletes expired runs' results.
    rc, out, _ = cli(capsys, "partitions", "drop-old", "--execute", "--database-url", db_url)
    assert rc == 0 and out.startswith("dropping")
    assert "activity results of expired runs: 2 deleted" in out
    assert partition_names(db_url) == names_before - {partition_name(only_expired), partition_name(empty)}
    with psycopg.connect(db_url) as conn:
        keys = {r[0] for r in conn.execute("SELECT idempotency_key FROM continuum_activity_results")}
        assert keys == {"c", "d"}
        # Events of kept runs are all still there.
        assert conn.execute(
            "SELECT count(*) FROM continuum_events WHERE run_id IN (%s, %s)", (unretained, future)
        ).fetchone() == (3,)

    # Once the future retention has passed, that month goes too; the unretained one never does.
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("UPDATE continuum_runs SET retention_until = now() - interval '1 hour' WHERE id = %s", (future,))
    report = partitions.drop_old(True, database_url=db_url)
    assert report.dropped == [partition_name(with_future)]
    assert partition_name(with_unretained) in partition_names(db_url)


def test_events_of_runs_missing_from_runs_keep_their_month(db_url: str) -> None:
    old = add_months(this_month(), -6)
    partitions.create(old, database_url=db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        add_run(conn, timedelta(days=-1))  # retention is in use
        add_events(conn, uuid.uuid4(), old, 2)  # no such run
    report = partitions.drop_old(True, database_url=db_url)
    (cand,) = [c for c in report.candidates if c.partition.name == partition_name(old)]
    assert not cand.dropped and cand.check.missing_runs == 1
    assert partition_name(old) in partition_names(db_url)


def test_insert_into_a_missing_month_fails_and_the_message_names_the_fix(db_url: str) -> None:
    far = date(2040, 2, 1)
    with psycopg.connect(db_url) as conn, pytest.raises(psycopg.errors.CheckViolation):
        add_events(conn, uuid.uuid4(), far, 1)
    message = partitions.partition_error_message(datetime(2040, 2, 14, 12, tzinfo=timezone.utc))
    assert "`continuum partitions create 2040-02`" in message and "\n" not in message
    partitions.create("2040-02", database_url=db_url)
    with psycopg.connect(db_url) as conn:
        add_events(conn, uuid.uuid4(), far, 1)


def test_instance_option_and_unknown_instance(
    db_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTINUUM_BILLING_DATABASE_URL", db_url)
    rc, out, _ = cli(capsys, "partitions", "create", "2032-01", "--instance", "billing")
    assert rc == 0 and out.startswith("created continuum_events_y2032_m01")
    rc, out, err = cli(capsys, "partitions", "list", "--instance", "nosuch")
    assert rc == 2 and "CONTINUUM_NOSUCH_DATABASE_URL" in err and len(err.strip().splitlines()) == 1


def test_unmigrated_or_unreachable_database_is_one_line(
    empty_db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for action in (["list"], ["create", "2030-01"], ["drop-old"]):
        rc, _, err = cli(capsys, "partitions", *action, "--database-url", empty_db_url)
        assert rc == 2 and "continuum migrate" in err and len(err.strip().splitlines()) == 1
        rc, _, err = cli(capsys, "partitions", *action, "--database-url", "postgresql://postgres@127.0.0.1:1/x")
        assert rc == 2 and "cannot connect" in err and len(err.strip().splitlines()) == 1


def test_drop_waits_briefly_for_the_lock_then_reports_one_line(db_url: str) -> None:
    """A long reader holding continuum_events makes the drop give up with a clear error,
    and the partition stays."""
    old = add_months(this_month(), -8)
    partitions.create(old, database_url=db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        add_events(conn, add_run(conn, timedelta(days=-1)), old, 1)
    with psycopg.connect(db_url) as reader:
        reader.execute("SELECT count(*) FROM continuum_events").fetchone()  # holds ACCESS SHARE
        with pytest.raises(PartitionError) as info:
            partitions.drop_old(True, database_url=db_url)
        reader.rollback()
    assert "could not lock continuum_events" in str(info.value) and "\n" not in str(info.value)
    assert partition_name(old) in partition_names(db_url)
    assert partitions.drop_old(True, database_url=db_url).dropped == [partition_name(old)]


def test_missing_next_month_accepts_any_url_form(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        info = conn.info
        url = f"postgresql+psycopg://{info.user}@/{info.dbname}?host={info.host}&port={info.port}"
    assert partitions.missing_next_month(url) is False


def test_overlap_with_a_hand_made_partition_is_one_line(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE continuum_events_custom PARTITION OF continuum_events "
            "FOR VALUES FROM ('2033-01-15 00:00:00+00') TO ('2033-02-15 00:00:00+00')"
        )
    rc, out, err = cli(capsys, "partitions", "create", "2033-02", "--database-url", db_url)
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "cannot create continuum_events_y2033_m02" in err and "overlap" in err
    listed = {p.name: p for p in partitions.list_partitions(database_url=db_url)}
    assert listed["continuum_events_custom"].month is None
    assert listed["continuum_events_custom"].start == datetime(2033, 1, 15, tzinfo=timezone.utc)
    assert "continuum_events_y2033_m02" not in listed


def test_concurrent_creates_of_one_month_both_succeed(db_url: str) -> None:
    barrier = threading.Barrier(4)
    results: list[object] = []

    def create() -> None:
        barrier.wait(timeout=30)
        try:
            results.append(partitions.create("2034-03", database_url=db_url).created)
        except Exception as exc:  # reported below
            results.append(exc)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results, key=str) == [False, False, False, True], results
    assert "continuum_events_y2034_m03" in partition_names(db_url)


def test_prune_and_drop_old_work_together(db_url: str) -> None:
    """cn.prune deletes an expired run's events row by row, so drop-old never finds them orphaned
    (which would keep their month); a month left empty by prune is dropped, a month that holds a
    retained run's events is kept."""
    from continuum_nb.store.postgres import PostgresStore

    cur = this_month()
    pruned_month, kept_month = add_months(cur, -4), add_months(cur, -3)
    for m in (pruned_month, kept_month):
        partitions.create(m, database_url=db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        expired, retained = add_run(conn, timedelta(days=-1)), add_run(conn, timedelta(days=10))
        running = uuid.uuid4()  # not ended: never pruned, even with retention_until passed
        conn.execute("INSERT INTO continuum_runs (id, workflow, version_hash, state, input, retention_until) "
                     "VALUES (%s, 'order', 'v1', 'suspended', '{}', now() - interval '1 day')", (running,))
        add_events(conn, expired, pruned_month, 3)
        add_events(conn, retained, kept_month, 2)
        add_events(conn, running, kept_month, 2)
        add_result(conn, expired, "e")
    store = PostgresStore(db_url, pool_size=1)
    try:
        report = store.prune(datetime.now(timezone.utc), execute=True, drop_keys=False, batch_size=10)
    finally:
        store.close()
    assert (report.runs, report.events, report.activity_results) == (1, 3, 1)
    drop = partitions.drop_old(True, database_url=db_url)
    assert partition_name(pruned_month) in drop.dropped
    (kept,) = [c for c in drop.candidates if c.partition.name == partition_name(kept_month)]
    assert not kept.dropped and kept.check.missing_runs == 0 and kept.check.retained_runs == 1
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM continuum_events WHERE run_id IN (%s, %s)",
                            (retained, running)).fetchone() == (4,)
