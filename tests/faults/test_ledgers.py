"""The campaign's checkers see what they are meant to see: each is shown a database broken in
exactly its way (by hand, no engine), so a campaign that passes is not passing on blind checks.

continuum_events is keyed by (run_id, seq, inserted_at) (a partitioned table), so a second row
for the same (run_id, seq) is possible in the database and only the checks would notice it.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from tests.faults import fault_workflows as fx

pytestmark = pytest.mark.postgres


def _run(conn: psycopg.Connection, owner: str | None, token: int | None) -> uuid.UUID:
    rid = uuid.uuid4()
    conn.execute("INSERT INTO continuum_runs (id, workflow, version_hash, state, input, lease_owner, lease_token) "
                 "VALUES (%s, 'fx_steps', 'v', 'running', '{}', %s, %s)", (rid, owner, token))
    return rid


def _event(conn: psycopg.Connection, rid: uuid.UUID, seq: int, at: datetime | None = None) -> None:
    conn.execute("INSERT INTO continuum_events (run_id, seq, event_type, payload, inserted_at) "
                 "VALUES (%s, %s, 'side_effect', %s, coalesce(%s, now()))", (rid, seq, json.dumps({}), at))


def test_journal_checker_sees_a_repeated_seq_and_a_gap(db_url: str) -> None:
    fx.install(db_url)
    now = datetime.now(timezone.utc)
    with psycopg.connect(db_url, autocommit=True) as conn:
        ok, twice, gap = _run(conn, None, None), _run(conn, None, None), _run(conn, None, None)
        for seq in (1, 2):
            _event(conn, ok, seq)
        _event(conn, twice, 1, now)
        _event(conn, twice, 1, now + timedelta(seconds=1))
        _event(conn, gap, 1)
        _event(conn, gap, 3)
    problems = fx.journal_problems(db_url)
    assert any(f"(run {twice}, seq 1) appears 2 times" in p for p in problems), problems
    assert any(str(gap) in p and "not 1..2" in p for p in problems), problems
    assert not any(str(ok) in p for p in problems)


def test_fencing_checker_sees_a_write_by_a_process_that_does_not_hold_the_lease(db_url: str) -> None:
    fx.install(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        rid = _run(conn, "owner-b", 9)
    ghost = make_conninfo(db_url, application_name="fx-ghost")
    with psycopg.connect(ghost, autocommit=True) as conn:
        _event(conn, rid, 1)  # fx-ghost (owner-a) writes while owner-b holds the lease
    problems = fx.fencing_problems(db_url, {"fx-ghost": "owner-a"})
    assert len(problems) == 1 and "owner-b" in problems[0], problems
    assert fx.fencing_problems(db_url, {"fx-ghost": "owner-b"}) == []


def test_token_checker_sees_an_older_lease_writing_after_a_newer_one(db_url: str) -> None:
    fx.install(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        rid = _run(conn, "o", 9)
        _event(conn, rid, 1)
        conn.execute("UPDATE continuum_runs SET lease_token = 5 WHERE id = %s", (rid,))
        _event(conn, rid, 2)
    assert fx.token_order_problems(db_url) == [f"run {rid}: an older lease wrote after a newer one: [9, 5]"]


def test_execution_checker_sees_a_repeat_outside_a_crash_window(db_url: str) -> None:
    fx.install(db_url)
    t = datetime.now(timezone.utc)
    with psycopg.connect(db_url, autocommit=True) as conn:
        rid = _run(conn, None, None)
        rows = [("fx_charge", "charge:once", 1, t),
                ("fx_charge", "charge:twice", 1, t), ("fx_charge", "charge:twice", 2, t + timedelta(seconds=1)),
                ("fx_charge", "charge:late", 3, t + timedelta(seconds=5)),
                ("fx_ship", "ship:killed", 4, t), ("fx_ship", "ship:killed", 5, t)]
        for activity, key, pid, started in rows:
            conn.execute("INSERT INTO fx_effects (activity, key, pid, started_at) VALUES (%s, %s, %s, %s)",
                         (activity, key, pid, started))
        for key in ("charge:once", "charge:twice", "charge:late"):
            conn.execute("INSERT INTO continuum_activity_results (activity_module, idempotency_key, run_id, seq, "
                         "result, completed_at) VALUES ('fx_charge', %s, %s, 1, '{}', %s)",
                         (key, rid, t + timedelta(seconds=2)))
    problems, counts = fx.execution_problems(db_url, lambda pid, started: pid == 4)
    assert [p.split(":")[0] + ":" + p.split(":")[1] for p in problems] == [
        "fx_charge charge:twice", "fx_charge charge:late"], problems
    assert "ran after its result was stored" in problems[1]
    assert counts == {"keys": 4, "executions": 6, "repeated_keys": 2}
