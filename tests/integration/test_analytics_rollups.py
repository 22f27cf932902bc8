"""Monthly rollups (migration 20261207090000): the whole-journal ``events_by_type_and_month`` and
``throughput_per_minute`` on a scanner connection read the kept counts of months that are over
and count the rest live, with exactly the answer of counting everything (the plain pushdown and
the COPY fallback), through late inserts, deletes, a direct delete on a partition, a dropped
partition and a transaction still open across a month's end."""

from __future__ import annotations

import json
import random
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pandas as pd
import psycopg
import pytest

from continuum_nb import analytics
from continuum_nb.partitions import create as create_partition
from continuum_nb.store import analytics_rollups as rollups
from continuum_nb.store.partitions import add_months, partition_name

pytest.importorskip("duckdb_extension_postgres_scanner")

UTC = timezone.utc
EARLY = datetime(1900, 1, 1, tzinfo=UTC)  # a window that covers everything: the plain pushdown


def _this_month() -> date:
    return datetime.now(UTC).date().replace(day=1)


def _events(conn: psycopg.Connection[Any], month: date, n: int, rng: random.Random) -> None:
    """``n`` runs' worth of events at random instants of ``month`` (all before now): activities
    that completed, failed after retries or are still pending, some finishing in the next month."""
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    end = min(datetime.now(UTC) - timedelta(minutes=5), start + timedelta(days=27))
    next_start = datetime(*(add_months(month, 1).timetuple()[:3]), tzinfo=UTC)
    for i in range(n):
        run_id, at = uuid.uuid4(), start + (end - start) * rng.random()
        if i % 7 == 3 and next_start < datetime.now(UTC) - timedelta(hours=1):
            at = next_start - timedelta(seconds=rng.uniform(1, 300))  # its outcome lands next month
        done = at + timedelta(seconds=rng.uniform(1, 600))
        fate = rng.choice(["activity_completed"] * 6 + ["activity_failed", None])
        kinds = ["workflow_started", "activity_scheduled"] + ([fate, "workflow_completed"] if fate else [])
        conn.execute("INSERT INTO continuum_runs (id, workflow, version_hash, state, input, started_at, completed_at, "
                     "last_seq) VALUES (%s, 'shop', 'v1', %s, '{}', %s, %s, %s)",
                     (run_id, "completed" if fate else "suspended", at, done if fate else None, len(kinds)))
        for seq, kind in enumerate(kinds, 1):
            payload: dict[str, Any] = {"activity": rng.choice(["charge", "ship"])} if seq == 2 else {}
            if kind in ("activity_completed", "activity_failed"):
                payload = {"scheduled_seq": 2, "attempts": 3 if kind == "activity_failed" else rng.choice([1, 1, 2])}
            inserted = at if seq <= 2 else done + timedelta(seconds=seq)
            conn.execute("INSERT INTO continuum_events (run_id, seq, event_type, payload, inserted_at) "
                         "VALUES (%s, %s, %s, %s, %s)", (run_id, seq, kind, json.dumps(payload), inserted))


@pytest.fixture
def url(db_url: str) -> str:
    rng = random.Random(7)
    this = _this_month()
    for k in range(1, 5):
        create_partition(add_months(this, -k), database_url=db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        for k in range(0, 4):  # three closed months with events, one empty, and the current one
            if k != 2:
                _events(conn, add_months(this, -k), 30 + 10 * k, rng)
    return db_url


def _rolled_months(url: str) -> list[date]:
    """The months with a valid rollup, once every transaction older than their closing mark is
    over (on a shared server other sessions' transactions can hold that back for a while)."""
    deadline = time.monotonic() + 60
    while True:
        months = rollups.fill(url, "public")
        if months or time.monotonic() > deadline:
            return months


def _check(url: str) -> None:
    """Both queries over the whole journal equal the plain pushdown and the COPY fallback."""
    scan = analytics.connect(database_url=url, mode="scanner")
    copy = analytics.connect(database_url=url, mode="copy")
    try:
        for query in (analytics.events_by_type_and_month, analytics.throughput_per_minute):
            got = query(scan)
            assert len(got) > 0
            pd.testing.assert_frame_equal(got, query(scan, since=EARLY))
            pd.testing.assert_frame_equal(got, query(copy))
        # Percentiles from the merged histograms: within ALPHA (relative) of the exact ones; the
        # rest exactly the same.
        got, exact = analytics.activity_latency(scan), analytics.activity_latency(scan, since=EARLY)
        assert got["completed"].sum() > 0 and got["pending"].sum() > 0
        pd.testing.assert_frame_equal(got.drop(columns=["p50_s", "p95_s"]), exact.drop(columns=["p50_s", "p95_s"]))
        pd.testing.assert_frame_equal(got, analytics.activity_latency(copy), rtol=rollups.ALPHA)
        for column in ("p50_s", "p95_s"):
            assert ((got[column] - exact[column]).abs() <= rollups.ALPHA * exact[column].abs()).all()
    finally:
        scan.close()
        copy.close()


def test_whole_journal_queries_read_rollups_of_closed_months_and_stay_exact(url: str) -> None:
    _check(url)
    this = _this_month()
    closed = [add_months(this, -k) for k in (4, 3, 2, 1)]
    assert _rolled_months(url) == closed  # every month that is over, the empty ones too; not this one

    # The kept counts are what the answer is made of: a tampered count shows in it (and only there).
    scan = analytics.connect(database_url=url, mode="scanner")
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE continuum_analytics_counts SET n = n + 1000 WHERE month = %s AND minute IS NULL "
                         "AND event_type = 'workflow_started'", (closed[-1],))
        got = analytics.events_by_type_and_month(scan)
        plain = analytics.events_by_type_and_month(scan, since=EARLY)
        row = (got["month"] == closed[-1].strftime("%Y-%m")) & (got["event_type"] == "workflow_started")
        assert (got.loc[row, "events"] - plain.loc[row, "events"]).tolist() == [1000]
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE continuum_analytics_counts SET n = n - 1000 WHERE month = %s AND minute IS NULL "
                         "AND event_type = 'workflow_started'", (closed[-1],))
    finally:
        scan.close()

    rng = random.Random(11)
    with psycopg.connect(url, autocommit=True) as conn:
        _events(conn, closed[-1], 3, rng)  # a late insert into a month already rolled up
    _check(url)
    with psycopg.connect(url, autocommit=True) as conn:  # a delete through the parent (as prune does)
        conn.execute("DELETE FROM continuum_events WHERE inserted_at < %s AND event_type = 'workflow_completed'",
                     (datetime(closed[-1].year, closed[-1].month, 10, tzinfo=UTC),))
    _check(url)
    with psycopg.connect(url, autocommit=True) as conn:  # a delete on the partition itself
        conn.execute(f"DELETE FROM {partition_name(closed[1])} WHERE event_type = 'activity_completed'")  # noqa: S608
    _check(url)
    with psycopg.connect(url, autocommit=True) as conn:  # a partition dropped
        conn.execute(f"DROP TABLE {partition_name(closed[2])}")
    _check(url)
    with psycopg.connect(url) as conn:
        valid = conn.execute(
            "SELECT count(*) FROM continuum_analytics_rollups r WHERE EXISTS "
            "(SELECT 1 FROM pg_inherits i WHERE i.inhrelid = r.partition_oid::oid)").fetchone()
    assert valid == (3,)


def test_a_month_is_rolled_up_only_once_older_transactions_finished(url: str) -> None:
    """A transaction that started before a month ended may still insert into it: the month is
    counted live until that transaction is over."""
    last = add_months(_this_month(), -1)
    _check(url)
    with psycopg.connect(url, autocommit=True) as conn:  # as if ``last`` had only just ended
        conn.execute("DELETE FROM continuum_analytics_rollups WHERE month = %s", (last,))
        conn.execute("UPDATE continuum_analytics_months SET closing_xmax = NULL WHERE month = %s", (last,))
    with psycopg.connect(url) as old:
        old.execute("SELECT pg_current_xact_id()")  # holds an xid older than the month's closing mark
        # the closing mark is only taken now: as if this transaction had begun before the month ended
        _check(url)
        assert last not in _rolled_months(url)
        assert add_months(last, -1) in _rolled_months(url)
        _events(old, last, 2, random.Random(3))  # its inserts land in the month, committed below
        old.commit()
    _check(url)
    assert last in _rolled_months(url)


def test_without_the_rollup_tables_the_queries_count_live(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE continuum_analytics_rollups")
    _check(url)


def test_partitions_rollup_counts_the_months_that_are_over(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`continuum partitions rollup` (a cron job's step after `create`) fills the rollups the first
    whole-journal query would otherwise fill; the current month is never rolled up."""
    from continuum_nb.cli import main

    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM continuum_analytics_rollups").fetchone() == (0,)
    this = _this_month()
    expected = [f"{add_months(this, -k):%Y-%m}" for k in (4, 3, 2, 1)]  # closed months, the empty one too
    deadline = time.monotonic() + 60
    while True:  # a month some other session's transaction may still write is left for later
        assert main(["partitions", "rollup", "--database-url", url]) == 0
        out = capsys.readouterr().out
        if all(m in out for m in expected) or time.monotonic() > deadline:
            break
    assert f"{len(expected)} month(s): {', '.join(expected)}" in out, out
    assert f"{this:%Y-%m}" not in out
    with psycopg.connect(url, autocommit=True) as conn:
        rolled = [r[0] for r in conn.execute("SELECT month FROM continuum_analytics_rollups ORDER BY 1")]
    assert [f"{m:%Y-%m}" for m in rolled] == expected
