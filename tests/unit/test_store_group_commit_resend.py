"""The group commit on PostgreSQL: a wake of the batch that PostgreSQL aborts to break a conflict
with another transaction (deadlock_detected 40P01, serialization_failure 40001: nothing of it is
written) is committed again on its own, and the batch's other wakes commit with the batch.

The conflict is PostgreSQL's own error, raised once inside ``continuum_commit_wakes`` by a trigger
on the events of one run (a sequence counts the attempts: it is not rolled back with the aborted
subtransaction), so the whole server-side path runs: the subtransaction rolled back, its SQLSTATE
returned in the wake's row, the resend."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timezone

import psycopg
import pytest

from continuum_nb.store.base import Event, NewRun, Wake, WakeResult
from continuum_nb.store.postgres import PostgresStore

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)

# Test-only DDL on the test's own database: fails the first insert of an event of a run listed in
# continuum_test_fail_once, with the SQLSTATE listed there.
_ARM = """
CREATE TABLE continuum_test_fail_once (run_id uuid PRIMARY KEY, sqlstate text NOT NULL);
CREATE SEQUENCE continuum_test_fail_once_seq;
CREATE FUNCTION continuum_test_fail_once() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE v_state text;
BEGIN
    SELECT sqlstate INTO v_state FROM continuum_test_fail_once WHERE run_id = NEW.run_id;
    IF v_state IS NOT NULL AND nextval('continuum_test_fail_once_seq') = 1 THEN
        RAISE EXCEPTION 'conflict injected by the test' USING ERRCODE = v_state;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER continuum_test_fail_once BEFORE INSERT ON continuum_events
    FOR EACH ROW EXECUTE FUNCTION continuum_test_fail_once();
"""


@pytest.fixture
def pg(pg_server: str, request: pytest.FixtureRequest) -> Iterator[tuple[PostgresStore, str]]:
    url = request.getfixturevalue("db_url")
    store = PostgresStore(url, pool_size=2)
    try:
        yield store, url
    finally:
        store.close()


def _run(store: PostgresStore) -> tuple[uuid.UUID, int]:
    rid = uuid.uuid4()
    token = store.create_run(NewRun(rid, "order", "v1", {}, datetime.now(timezone.utc)), owner="e1")
    assert token is not None
    return rid, token


@pytest.mark.parametrize("sqlstate", ["40P01", "40001"])
def test_a_wake_that_lost_a_conflict_is_committed_again_alone(pg: tuple[PostgresStore, str], sqlstate: str) -> None:
    store, url = pg
    runs = [_run(store) for _ in range(3)]
    victim = runs[1][0]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(_ARM)
        conn.execute("INSERT INTO continuum_test_fail_once VALUES (%s, %s)", (victim, sqlstate))
    alone: list[uuid.UUID] = []
    commit_one = store.commit_wake

    def commit_wake(wake: Wake) -> WakeResult:
        alone.append(wake.run_id)
        return commit_one(wake)

    store.commit_wake = commit_wake  # type: ignore[method-assign]
    wakes = [Wake(run_id=rid, lease_token=token, now=T0, state="running",
                  events=[Event(1, "side_effect", {"run": i}), Event(2, "side_effect", {"run": i})])
             for i, (rid, token) in enumerate(runs)]
    results = store.commit_wakes(wakes)
    assert all(isinstance(r, WakeResult) for r in results), results
    assert alone == [victim]  # only the aborted one was sent again, on its own
    for i, (rid, _token) in enumerate(runs):
        assert [(e.seq, e.payload) for e in store.load_journal(rid)] == [(1, {"run": i}), (2, {"run": i})]
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT last_value, is_called FROM continuum_test_fail_once_seq").fetchone()
    # the batch's attempt was aborted at its first event; the resend inserted both
    assert row == (3, True)
