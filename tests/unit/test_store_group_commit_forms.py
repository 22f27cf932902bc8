"""The group commit's two wire forms on PostgreSQL (migration 20261208000000): this client sends
each wake's arguments as JSON values (``continuum_commit_wakes_json``); a client of 20261207080000
still sends them as text inside JSON strings (``continuum_commit_wakes``), which now parses the
jsonb ones and hands the batch to the same loop. Both commit the same rows and refuse the same
wakes alone."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

import psycopg
import pytest

from continuum_nb.store.base import Event, NewRun, NewTask, Wake
from continuum_nb.store.payloads import dumps
from continuum_nb.store.postgres import PostgresStore
from continuum_nb.store.postgres.wake import wake_args, wake_values

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def _leased_run(store: PostgresStore) -> tuple[uuid.UUID, int]:
    rid = uuid.uuid4()
    token = store.create_run(NewRun(rid, "order", "v1", {"n": 1}, T0), owner="e1", lease_ttl=60.0)
    assert token is not None
    return rid, token


def _wake(rid: uuid.UUID, token: int, result: Any) -> Wake:
    return Wake(run_id=rid, lease_token=token, now=T0, state="completed", result=result,
                events=[Event(1, "side_effect", {"value": "a \"quoted\" \\ text"}),
                        Event(2, "workflow_completed", {"result": result})],
                new_tasks=[NewTask(uuid.uuid4(), 3, "a", {"args": [1], "kwargs": {}}, T0, lease_to_self=True)])


@pytest.mark.parametrize("form", ["json", "text"])
def test_both_forms_commit_the_same_rows_and_refuse_alone(form: str, pg_server: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("db_url")
    store = PostgresStore(url, pool_size=2)
    try:
        (a, ta), (b, tb) = _leased_run(store), _leased_run(store)
        results: list[Any] = ["a string result", {"nested": [1, None, True]}]
        wakes = [_wake(a, ta, results[0]), _wake(b, tb + 1000, results[1])]  # b: a stale token
        if form == "json":
            payload = dumps([wake_values(w, w.run_id) for w in wakes])
            statement = "SELECT out_index, out_sqlstate FROM continuum_commit_wakes_json(%s::jsonb) ORDER BY out_index"
        else:
            payload = dumps([wake_args(w, w.run_id) for w in wakes])
            statement = "SELECT out_index, out_sqlstate FROM continuum_commit_wakes(%s::jsonb) ORDER BY out_index"
        with psycopg.connect(url, autocommit=True) as conn:
            rows = conn.execute(statement, (payload,)).fetchall()
        assert rows == [(0, None), (1, "CNW01")]  # b fenced out alone
        run_a = store.get_run(a)
        assert run_a.state == "completed" and run_a.result == results[0]
        assert [(e.seq, e.event_type, e.payload) for e in store.load_journal(a)] == [
            (1, "side_effect", {"value": "a \"quoted\" \\ text"}), (2, "workflow_completed", {"result": results[0]})]
        assert store.load_journal(b) == [] and store.get_run(b).state != "completed"
    finally:
        store.close()
