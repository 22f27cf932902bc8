"""The migration guide's promise: "v0.1 runs in flight at the time of upgrade resume on v0.2 code
and complete the same way."

A database is migrated to v0.1 only, and runs are written into it the way v0.1 left them: rows in
the v0.1 tables (unpartitioned journal with events from months ago, the signal mailbox, timers,
activity tasks named in ``mfa``), with v0.1's version hashes. Then the database is migrated to the
current schema and a current worker, which knows the workflows under their new versions only,
replays each run, adopts it and finishes it.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

import continuum_nb as cn
from continuum_nb.store.migrate import migrate
from tests.faults import fault_workflows as fx

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

NOW = datetime.now(timezone.utc)
LONG_AGO = NOW - timedelta(days=95)  # lands in a month the migration has to create a partition for


class V01:
    """Writes rows in the v0.1 shape (migrations/20260502153302_create_continuum_tables.sql)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def run(self, workflow: str, inp: dict[str, Any], state: str, *, next_wakeup_at: datetime | None = None,
            lease_owner: str | None = None, lease_expires_at: datetime | None = None) -> uuid.UUID:
        rid = uuid.uuid4()
        token = None
        if lease_owner is not None:
            token = self.conn.execute("SELECT nextval('continuum_lease_token_seq')").fetchone()[0]  # type: ignore[index]
        self.conn.execute(
            "INSERT INTO continuum_runs (id, workflow, version_hash, state, input, started_at, lease_owner, "
            "lease_token, lease_expires_at, next_wakeup_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (rid, workflow, f"v0.1:{workflow}:0a1b2c", state, json.dumps(inp), LONG_AGO, lease_owner, token,
             lease_expires_at, next_wakeup_at))
        return rid

    def event(self, rid: uuid.UUID, seq: int, event_type: str, payload: dict[str, Any], at: datetime = LONG_AGO) -> None:
        self.conn.execute(
            "INSERT INTO continuum_events (run_id, seq, event_type, payload, inserted_at) VALUES (%s, %s, %s, %s, %s)",
            (rid, seq, event_type, json.dumps(payload), at))

    def scheduled(self, rid: uuid.UUID, seq: int, ordinal: int, args: list[Any], task_state: str, *,
                  result: Any = None, lease_owner: str | None = None, lease_expires_at: datetime | None = None,
                  ) -> uuid.UUID:
        tid = uuid.uuid4()
        self.event(rid, seq, "activity_scheduled", {
            "activity": "fx_step", "ordinal": ordinal, "args": args, "kwargs": {}, "idempotency_key": None,
            "task_id": str(tid)})
        self.conn.execute(
            "INSERT INTO continuum_activity_tasks (id, run_id, seq, mfa, attempt, state, scheduled_at, available_at, "
            "lease_owner, lease_expires_at, result) VALUES (%s, %s, %s, %s, 1, %s, %s, %s, %s, %s, %s)",
            (tid, rid, seq, json.dumps({"activity": "fx_step", "args": args, "kwargs": {}}), task_state, LONG_AGO,
             LONG_AGO, lease_owner, lease_expires_at, None if result is None else json.dumps(result)))
        return tid


def test_v01_runs_in_flight_resume_and_complete_after_migration(empty_db_url: str) -> None:
    url = empty_db_url
    migrate(url, "v0.1")
    awaited = {"name": "go", "ordinal": 0, "timeout_s": None, "timeout_at": None, "timer_id": None}
    with psycopg.connect(url, autocommit=True) as conn:
        v01 = V01(conn)
        # Suspended on a signal that has not been sent yet.
        on_signal = v01.run("fx_signal", {"tag": "v1-sig"}, "suspended")
        v01.event(on_signal, 1, "signal_awaited", awaited)
        # Suspended on a signal that arrived while v0.1 was running (in the mailbox, unconsumed).
        signalled = v01.run("fx_signal", {"tag": "v1-sig2"}, "suspended", next_wakeup_at=NOW - timedelta(minutes=1))
        v01.event(signalled, 1, "signal_awaited", awaited)
        conn.execute("INSERT INTO continuum_signals (run_id, name, payload, inserted_at) VALUES (%s, 'go', %s, %s)",
                     (signalled, json.dumps({"by": "v0.1"}), NOW - timedelta(minutes=1)))
        # Suspended on a timer (due by now).
        on_timer = v01.run("fx_timer", {"tag": "v1-tim", "seconds": 1}, "suspended",
                           next_wakeup_at=NOW - timedelta(seconds=10))
        timer_id = uuid.uuid4()
        v01.event(on_timer, 1, "timer_started", {"ordinal": 0, "duration_s": 1,
                                                 "fire_at": (NOW - timedelta(seconds=10)).isoformat(),
                                                 "timer_id": str(timer_id)})
        conn.execute("INSERT INTO continuum_timers (id, run_id, fires_at) VALUES (%s, %s, %s)",
                     (timer_id, on_timer, NOW - timedelta(seconds=10)))
        # Suspended on an activity whose task is waiting for an engine.
        on_activity = v01.run("fx_steps", {"tag": "v1-act", "n": 2}, "suspended")
        v01.scheduled(on_activity, 1, 0, ["v1-act", 0], "available")
        # Held by a v0.1 engine that died: run lease and task lease expired long ago.
        dead = "v01-node@oldhost:4242"
        orphan = v01.run("fx_steps", {"tag": "v1-dead", "n": 2}, "running", lease_owner=dead,
                         lease_expires_at=NOW - timedelta(minutes=5))
        first = v01.scheduled(orphan, 1, 0, ["v1-dead", 0], "completed", result=0)
        v01.event(orphan, 2, "activity_completed", {"activity": "fx_step", "scheduled_seq": 1, "attempts": 1,
                                                    "result": 0, "idempotency_hit": False})
        v01.scheduled(orphan, 3, 1, ["v1-dead", 1], "leased", lease_owner=dead,
                      lease_expires_at=NOW - timedelta(minutes=5))
        assert first is not None
    old_journal = fx.query(url, "SELECT run_id, seq, event_type, payload, inserted_at FROM continuum_events ORDER BY 1, 2")

    migrate(url)
    fx.install(url)
    worker = fx.Worker(url, "v02")
    with fx.workers(worker), fx.client(url) as inst:
        worker.wait_ready()
        cn.signal(str(on_signal), "go", {"by": "v0.2"}, instance=inst)
        try:
            fx.wait_until("every v0.1 run to complete", lambda: fx.completed_count(url) == 5, 60)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{fx.diagnose(url, [worker])}") from None

        results = {uuid.UUID(r.id): r.result for r in cn.runs(instance=inst)}
        assert results == {
            on_signal: {"got": {"by": "v0.2"}, "step": 1},
            signalled: {"got": {"by": "v0.1"}, "step": 1},
            on_timer: 2,
            on_activity: 1,
            orphan: 1,
        }
        # The v0.1 journal is kept as it was (in its old month's partition) and continued after it.
        assert fx.query(url, "SELECT run_id, seq, event_type, payload, inserted_at FROM continuum_events "
                             "WHERE inserted_at < %s ORDER BY 1, 2", (NOW - timedelta(days=1),)) == old_journal
        assert fx.journal_problems(url) == []
        # Each run was replayed on the current version, found clean, and moved to it.
        versions = dict(fx.query(url, "SELECT name, version_hash FROM continuum_workflow_versions"))
        for wf, vh in fx.query(url, "SELECT workflow, version_hash FROM continuum_runs"):
            assert vh == versions[wf]
        assert fx.query(url, "SELECT count(*) FROM continuum_events WHERE event_type = 'timer_fired'") == [(1,)]
        assert fx.query(url, "SELECT fired FROM continuum_timers WHERE id = %s", (timer_id,)) == [(True,)]
        assert fx.query(url, "SELECT count(*) FROM continuum_signals WHERE NOT delivered") == [(0,)]
        # The dead engine's completed step was not run again; its in-flight one ran once more, here
        # (nothing crashed after the upgrade), exactly once.
        effects = dict(fx.query(url, "SELECT key, count(*) FROM fx_effects GROUP BY key"))
        assert "v1-dead:0" not in effects and effects.get("v1-dead:1") == 1, effects
        assert fx.query(url, "SELECT count(*) FROM continuum_runs WHERE lease_owner = %s", (dead,)) == [(0,)]
