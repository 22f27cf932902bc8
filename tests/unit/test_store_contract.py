"""One contract suite, run against MemoryStore and PostgresStore (on every test server)."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from continuum_nb.errors import LeaseLost, RunNotActive, RunNotFound
from continuum_nb.store.base import (
    CHANNEL_DONE,
    CHANNEL_TASKS,
    CHANNEL_WAKE,
    Event,
    KeyedStart,
    NewRun,
    NewTask,
    NewTimer,
    Notification,
    PruneReport,
    Snapshot,
    TaskOutcome,
    Wake,
    WakeResult,
)
from continuum_nb.store.forks import NewFork
from continuum_nb.store.memory import MemoryStore
from continuum_nb.store.postgres import PostgresStore
from continuum_nb.store.starts import StartingWake, starting_wake

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def now() -> datetime:
    return datetime.now(timezone.utc)


def new_run(store: Any, *, workflow: str = "order", owner: str | None = "e1", started: datetime | None = None,
            first_wake: Wake | None = None, ttl: float = 30.0, input: Any = None) -> tuple[uuid.UUID, int | None]:
    rid = uuid.uuid4()
    token = store.create_run(
        NewRun(rid, workflow, "v1", {"order_id": "A1"} if input is None else input, started or now()),
        owner=owner, lease_ttl=ttl, first_wake=first_wake,
    )
    return rid, token


def ev(seq: int, kind: str = "side_effect", **payload: Any) -> Event:
    return Event(seq, kind, payload or {"value": seq})


def task(seq: int, activity: str = "charge", *, mine: bool = False, key: str | None = None,
         available_at: datetime | None = None) -> NewTask:
    return NewTask(uuid.uuid4(), seq, activity, {"args": [seq], "kwargs": {"x": "y"}},
                   available_at or now() - timedelta(seconds=1), idempotency_key=key, lease_to_self=mine)


def wait_for(listener: Any, pred: Any, timeout: float = 10.0) -> list[Notification]:
    """Collect notifications until pred(all) holds or the deadline passes."""
    got: list[Notification] = []
    deadline = time.monotonic() + timeout
    while not pred(got) and time.monotonic() < deadline:
        got.extend(listener.wait(min(0.5, max(0.0, deadline - time.monotonic()))))
    return got


def has(channel: str, payload: str) -> Any:
    return lambda got: Notification(channel, payload) in got


# --- runs -----------------------------------------------------------------------------------------

def test_create_run_unleased_is_runnable_and_notifies(store: Any) -> None:
    listener = store.listen([CHANNEL_WAKE])
    started = now()
    rid, token = new_run(store, owner=None, started=started, input={"n": (1, 2)})
    assert token is None
    assert has(CHANNEL_WAKE, str(rid))(wait_for(listener, has(CHANNEL_WAKE, str(rid))))
    run = store.get_run(rid)
    assert run.id == rid and isinstance(run.id, uuid.UUID)
    assert run.state == "suspended" and run.lease_owner is None and run.lease_token is None
    assert run.next_wakeup_at == started and run.started_at == started
    assert run.started_at.utcoffset() == timedelta(0)
    assert run.input == {"n": [1, 2]}  # JSON round trip
    with pytest.raises(ValueError, match="already exists"):
        store.create_run(NewRun(rid, "order", "v1", {}, now()))
    assert store.get_run(uuid.uuid4()) is None


def test_create_run_with_owner_commits_first_wake(store: Any) -> None:
    t = task(2, mine=True)
    wake = Wake(run_id=uuid.uuid4(), lease_token=0, now=now(), state="suspended",
                events=[ev(1), ev(2, "activity_scheduled", activity="charge")], new_tasks=[t])
    rid, token = new_run(store, owner="e1", first_wake=wake)
    assert isinstance(token, int)
    run = store.get_run(rid)
    assert (run.state, run.lease_owner, run.lease_token) == ("suspended", "e1", token)
    assert run.lease_expires_at > now()
    journal = store.load_journal(rid)
    assert [(e.seq, e.event_type) for e in journal] == [(1, "side_effect"), (2, "activity_scheduled")]
    assert journal[1].payload == {"activity": "charge"}
    assert journal[0].inserted_at is not None and journal[0].inserted_at.utcoffset() == timedelta(0)
    assert [e.seq for e in store.load_journal(rid, after_seq=1)] == [2]
    # the self-leased task carries the run's owner and token, and is not claimable by others
    assert store.claim_tasks("e2", ["charge"], now(), 30, 10) == []
    assert store.renew_leases("e1", {rid: token}, {t.id: token}, 30) == (set(), set())
    bad = Wake(run_id=uuid.uuid4(), lease_token=0, now=now(), state="suspended", events=[ev(2)])
    with pytest.raises(ValueError, match="starts at seq 1"):
        new_run(store, owner="e1", first_wake=bad)
    with pytest.raises(ValueError, match="needs an owner"):
        new_run(store, owner=None, first_wake=wake)


def test_list_runs_keyset_paging_and_filters(store: Any) -> None:
    ids = []
    for i in range(5):
        rid, _ = new_run(store, owner=None, workflow="a" if i % 2 else "b", started=T0 + timedelta(minutes=i))
        ids.append(rid)
    rid_same, _ = new_run(store, owner=None, workflow="b", started=T0 + timedelta(minutes=4))
    ids.append(rid_same)
    expected = sorted(
        [(store.get_run(r).started_at, r) for r in ids], key=lambda x: (x[0], x[1].bytes), reverse=True
    )
    seen, before = [], None
    while True:
        page = store.list_runs(limit=2, before=before)
        if not page:
            break
        assert len(page) <= 2
        seen.extend(page)
        before = (page[-1].started_at, page[-1].id)
    assert [r.id for r in seen] == [r for _, r in expected]
    assert {r.id for r in store.list_runs(workflow="a")} == {ids[1], ids[3]}
    assert store.list_runs(state="completed") == []
    assert len(store.list_runs(state="suspended", workflow="b", limit=10)) == 4


# --- commit_wake ----------------------------------------------------------------------------------

def test_commit_wake_writes_everything_and_notifies_tasks(store: Any) -> None:
    rid, token = new_run(store)
    listener = store.listen([CHANNEL_TASKS])
    t = task(2, "ship", key="ship:A1")
    timer = NewTimer(uuid.uuid4(), 3, T0 + timedelta(hours=1))
    result = store.commit_wake(Wake(
        run_id=rid, lease_token=token, now=T0, state="suspended",
        events=[ev(1), ev(2, "activity_scheduled"), ev(3, "timer_started")],
        new_tasks=[t], new_timers=[timer], next_wakeup_at=timer.fires_at,
    ))
    assert result.signal_pending is False
    assert has(CHANNEL_TASKS, "ship")(wait_for(listener, has(CHANNEL_TASKS, "ship")))
    run = store.get_run(rid)
    assert run.state == "suspended" and run.next_wakeup_at == timer.fires_at and run.lease_token == token
    assert store.pending_timers(rid) == [timer]
    claimed = store.claim_tasks("e2", ["ship"], now(), 30, 10)
    assert len(claimed) == 1
    c = claimed[0]
    assert (c.id, c.run_id, c.seq, c.activity, c.state, c.attempt) == (t.id, rid, 2, "ship", "leased", 1)
    assert c.args == {"args": [2], "kwargs": {"x": "y"}} and c.idempotency_key == "ship:A1"
    assert c.lease_owner == "e2" and isinstance(c.lease_token, int)
    # the timer fires in the next wake
    store.commit_wake(Wake(run_id=rid, lease_token=token, now=T0, state="running",
                           events=[ev(4, "timer_fired")], fired_timers=[timer.id]))
    assert store.pending_timers(rid) == []
    assert [e.seq for e in store.load_journal(rid)] == [1, 2, 3, 4]


def test_stale_token_raises_lease_lost_and_writes_nothing(store: Any) -> None:
    rid, token = new_run(store)
    store.commit_wake(Wake(run_id=rid, lease_token=token, now=T0, state="running", events=[ev(1)]))
    before = store.get_run(rid)
    with pytest.raises(LeaseLost):
        store.commit_wake(Wake(
            run_id=rid, lease_token=token + 1000, now=T0, state="completed", result={"x": 1},
            events=[ev(2)], new_tasks=[task(2)], new_timers=[NewTimer(uuid.uuid4(), 2, T0)], release=True,
        ))
    assert [e.seq for e in store.load_journal(rid)] == [1]
    assert store.get_run(rid) == before
    assert store.claim_tasks("e2", ["charge"], now(), 30, 10) == []
    assert store.pending_timers(rid) == []
    with pytest.raises(LeaseLost):
        store.commit_wake(Wake(run_id=uuid.uuid4(), lease_token=token, now=T0, state="running"))


def test_wrong_first_seq_is_refused_and_writes_nothing(store: Any) -> None:
    rid, token = new_run(store)
    store.commit_wake(Wake(run_id=rid, lease_token=token, now=T0, state="running", events=[ev(1), ev(2)]))
    for first in (2, 4):  # a duplicate seq, and a gap
        with pytest.raises(LeaseLost, match="journal ends at seq 2"):
            store.commit_wake(Wake(run_id=rid, lease_token=token, now=T0, state="suspended",
                                   events=[ev(first)], new_tasks=[task(first)]))
    assert [e.seq for e in store.load_journal(rid)] == [1, 2]
    assert store.get_run(rid).state == "running"
    with pytest.raises(ValueError, match="not consecutive"):
        store.commit_wake(Wake(run_id=rid, lease_token=token, now=T0, state="running", events=[ev(3), ev(5)]))


def test_finished_run_notifies_done_and_records_result(store: Any) -> None:
    rid, token = new_run(store)
    listener = store.listen([CHANNEL_DONE])
    finished = now()
    store.commit_wake(Wake(run_id=rid, lease_token=token, now=T0, state="running", trace_context=b"00-ab-01"))
    store.commit_wake(Wake(run_id=rid, lease_token=token, now=finished, state="completed",
                           result={"ok": True}, release=True, version_hash="v2", trace_context=b"00-cd-01"))
    assert has(CHANNEL_DONE, str(rid))(wait_for(listener, has(CHANNEL_DONE, str(rid))))
    run = store.get_run(rid)
    assert (run.state, run.result, run.completed_at, run.version_hash) == ("completed", {"ok": True}, finished, "v2")
    assert (run.lease_owner, run.lease_token, run.lease_expires_at) == (None, None, None)
    assert run.trace_context == b"00-ab-01"  # set once


def test_a_finished_run_holds_no_lease_without_being_released(store: Any) -> None:
    """The wake that finishes a run clears its lease even without ``release``: nobody holds a
    finished run (operators list a worker's leases by lease_owner)."""
    for state, extra in (("completed", {"result": 1}), ("failed", {"error": {"message": "x"}})):
        rid, token = new_run(store)
        store.commit_wake(Wake(run_id=rid, lease_token=token, now=now(), state=state, **extra))
        run = store.get_run(rid)
        assert (run.state, run.lease_owner, run.lease_token, run.lease_expires_at) == (state, None, None, None)
    # a run that finishes in its first wake is inserted without a lease
    rid, token = new_run(store, first_wake=Wake(run_id=uuid.uuid4(), lease_token=0, now=now(), state="completed",
                                                result=2, events=[Event(1, "side_effect", {"v": 1})]))
    run = store.get_run(rid)
    assert (run.state, run.result, run.lease_owner, run.lease_expires_at) == ("completed", 2, None, None)


# --- signals ----------------------------------------------------------------------------------------

def test_signals_fifo_consumption_and_awaiting_recheck(store: Any) -> None:
    rid, token = new_run(store)
    listener = store.listen([CHANNEL_WAKE])
    s1 = store.send_signal(rid, "approve", {"by": "ana"}, T0)
    s2 = store.send_signal(rid, "approve", {"by": "bo"}, T0)
    s3 = store.send_signal(rid, "other", None, T0)
    assert has(CHANNEL_WAKE, str(rid))(wait_for(listener, has(CHANNEL_WAKE, str(rid))))
    assert [s.id for s in store.pending_signals(rid)] == [s1, s2, s3]
    pending = store.pending_signals(rid, ["approve"])
    assert [(s.id, s.name, s.payload) for s in pending] == [(s1, "approve", {"by": "ana"}), (s2, "approve", {"by": "bo"})]
    assert pending[0].run_id == rid
    # consume s1; s2 is still pending, so a wake awaiting 'approve' is told to wake again
    r = store.commit_wake(Wake(run_id=rid, lease_token=token, now=T0, state="suspended",
                               events=[ev(1, "signal_received")], consumed_signals={s1: 1},
                               awaiting_signals=["approve"]))
    assert r.signal_pending is True
    assert store.get_run(rid).next_wakeup_at == T0
    assert [s.id for s in store.pending_signals(rid, ["approve"])] == [s2]
    r = store.commit_wake(Wake(run_id=rid, lease_token=token, now=T0, state="suspended",
                               events=[ev(2, "signal_received")], consumed_signals={s2: 2},
                               awaiting_signals=["approve"]))
    assert r.signal_pending is False
    assert store.get_run(rid).next_wakeup_at is None
    assert [s.id for s in store.pending_signals(rid)] == [s3]


def test_signal_errors_name_the_state(store: Any) -> None:
    missing = uuid.uuid4()
    with pytest.raises(RunNotFound, match=str(missing)):
        store.send_signal(missing, "x", 1, T0)
    rid, token = new_run(store)
    store.commit_wake(Wake(run_id=rid, lease_token=token, now=T0, state="completed", release=True))
    with pytest.raises(RunNotActive, match=f"run {rid} is completed; it can no longer receive signals"):
        store.send_signal(rid, "x", 1, T0)
    assert store.pending_signals(rid) == []


def test_signal_wakes_a_suspended_run(store: Any) -> None:
    rid, token = new_run(store, workflow="wf")
    store.commit_wake(Wake(run_id=rid, lease_token=token, now=T0, state="suspended", release=True,
                           awaiting_signals=["go"]))
    assert store.claim_runs("e2", ["wf"], now(), 30, 10) == []
    store.send_signal(rid, "go", {"n": 1}, T0)
    claimed = store.claim_runs("e2", ["wf"], now(), 30, 10)
    assert [r.id for r in claimed] == [rid]


# --- activity tasks ---------------------------------------------------------------------------------

def test_complete_task_fenced_idempotency_and_wake(store: Any) -> None:
    rid, token = new_run(store)
    t = task(1, key="charge:A1")
    store.commit_wake(Wake(run_id=rid, lease_token=token, now=T0, state="suspended", release=True,
                           events=[ev(1, "activity_scheduled")], new_tasks=[t]))
    listener = store.listen([CHANNEL_WAKE])
    [claimed] = store.claim_tasks("w", ["charge"], now(), 30, 10)
    stale = type(claimed)(**{**claimed.__dict__, "lease_token": claimed.lease_token + 1000})
    out = TaskOutcome(t.id, "completed", result={"receipt": 7}, idempotency=("billing.charge", "charge:A1"), seq=1)
    assert store.complete_task(stale, out, T0) is False
    assert store.task_outcomes(rid, [1]) == {}
    assert store.get_activity_result("billing.charge", "charge:A1") == (False, None)
    wake_at = now()
    assert store.complete_task(claimed, out, wake_at) is True
    assert has(CHANNEL_WAKE, str(rid))(wait_for(listener, has(CHANNEL_WAKE, str(rid))))
    assert store.complete_task(claimed, out, wake_at) is False  # the lease is gone with the outcome
    done = store.task_outcomes(rid, [1, 2])
    assert list(done) == [1] and done[1].state == "completed" and done[1].result == {"receipt": 7}
    assert store.get_activity_result("billing.charge", "charge:A1") == (True, {"receipt": 7})
    assert store.get_run(rid).next_wakeup_at == wake_at
    assert [r.id for r in store.claim_runs("e2", ["order"], now(), 30, 10)] == [rid]


def test_journaled_outcomes_keep_the_first_idempotency_result(store: Any) -> None:
    rid, token = new_run(store)
    t1, t2 = task(1, mine=True, key="k"), task(2, mine=True, key="k")
    store.commit_wake(Wake(run_id=rid, lease_token=token, now=T0, state="running",
                           events=[ev(1, "activity_scheduled"), ev(2, "activity_scheduled")], new_tasks=[t1, t2]))
    store.commit_wake(Wake(run_id=rid, lease_token=token, now=T0, state="running",
                           events=[ev(3, "activity_completed")],
                           task_outcomes=[TaskOutcome(t1.id, "completed", {"v": 1}, idempotency=("m", "k"), seq=1)]))
    store.commit_wake(Wake(run_id=rid, lease_token=token, now=T0, state="running",
                           events=[ev(4, "activity_completed")],
                           task_outcomes=[TaskOutcome(t2.id, "completed", {"v": 2}, idempotency=("m", "k"), seq=2)]))
    assert store.get_activity_result("m", "k") == (True, {"v": 1})
    outcomes = store.task_outcomes(rid, [1, 2])
    assert outcomes[1].result == {"v": 1} and outcomes[2].result == {"v": 2}
    assert outcomes[2].lease_token is None


def test_retry_task_and_available_at(store: Any) -> None:
    rid, token = new_run(store)
    t = task(1)
    store.commit_wake(Wake(run_id=rid, lease_token=token, now=T0, state="suspended",
                           events=[ev(1, "activity_scheduled")], new_tasks=[t]))
    [c] = store.claim_tasks("w", ["charge"], now(), 30, 10)
    later = now() + timedelta(minutes=5)
    assert store.retry_task(c, {"type": "ValueError", "message": "boom"}, later) is True
    assert store.retry_task(c, {"type": "x"}, later) is False  # lease already given back
    assert store.claim_tasks("w", ["charge"], now(), 30, 10) == []
    assert store.claim_tasks("w", ["other"], later, 30, 10) == []
    [again] = store.claim_tasks("w", ["charge"], later, 30, 10)
    assert (again.attempt, again.error, again.available_at) == (2, {"type": "ValueError", "message": "boom"}, later)
    assert again.lease_token != c.lease_token
    # a failed outcome: state failed, no idempotency row
    assert store.complete_task(again, TaskOutcome(t.id, "failed", error={"type": "E"}, idempotency=("m", "z")), T0)
    assert store.task_outcomes(rid, [1])[1].state == "failed"
    assert store.get_activity_result("m", "z") == (False, None)


def test_wake_cancels_tasks(store: Any) -> None:
    rid, token = new_run(store)
    t = task(1)
    store.commit_wake(Wake(run_id=rid, lease_token=token, now=T0, state="running",
                           events=[ev(1, "activity_scheduled")], new_tasks=[t]))
    store.commit_wake(Wake(run_id=rid, lease_token=token, now=T0, state="running", cancelled_tasks=[t.id]))
    assert store.claim_tasks("w", ["charge"], now(), 30, 10) == []


def test_awaiting_tasks_recheck(store: Any) -> None:
    """A task finished by another engine while the holder decided to suspend is not lost."""
    rid, token = new_run(store)
    t = task(1)
    store.commit_wake(Wake(run_id=rid, lease_token=token, now=T0, state="suspended",
                           events=[ev(1, "activity_scheduled")], new_tasks=[t]))
    [c] = store.claim_tasks("w", ["charge"], now(), 30, 10)
    assert store.complete_task(c, TaskOutcome(t.id, "completed", {"r": 1}), T0)
    wake = Wake(run_id=rid, lease_token=token, now=T0, state="suspended", release=True)
    if not hasattr(wake, "awaiting_tasks"):
        object.__setattr__(wake, "awaiting_tasks", [1])
    else:
        wake.awaiting_tasks = [1]  # type: ignore[attr-defined]
    assert store.commit_wake(wake).signal_pending is True
    assert store.get_run(rid).next_wakeup_at == T0


# --- claiming, leases, recovery ---------------------------------------------------------------------

def test_claim_runs_due_filters_and_expired_leases(store: Any) -> None:
    due, _ = new_run(store, owner=None, workflow="wf", started=T0)
    future, _ = new_run(store, owner=None, workflow="wf", started=T0 + timedelta(days=1))
    other, _ = new_run(store, owner=None, workflow="other", started=T0)
    leased, token = new_run(store, owner="e1", workflow="wf", ttl=30)
    expired, old_token = new_run(store, owner="e1", workflow="wf", ttl=0)
    claimed = store.claim_runs("e2", ["wf"], T0 + timedelta(seconds=1), 30, 10)
    # running runs with no wakeup time are due; a live lease is not taken; an expired one is
    assert {r.id for r in claimed} == {due, expired}
    for r in claimed:
        assert r.lease_owner == "e2" and r.lease_token is not None and r.lease_expires_at > now()
    new_token = {r.id: r.lease_token for r in claimed}[expired]
    assert new_token != old_token
    with pytest.raises(LeaseLost):
        store.commit_wake(Wake(run_id=expired, lease_token=old_token, now=T0, state="completed"))
    assert store.claim_runs("e3", ["wf"], T0 + timedelta(seconds=1), 30, 10) == []
    assert {r.id for r in store.claim_runs("e3", ["wf", "other"], T0 + timedelta(days=2), 30, 10)} == {future, other}
    assert store.claim_runs("e3", ["wf"], T0, 30, 0) == []
    assert store.get_run(leased).lease_token == token


def test_claim_runs_limit_and_oldest_first(store: Any) -> None:
    ids = []
    for i in range(4):
        rid, tok = new_run(store, workflow="wf")
        store.commit_wake(Wake(run_id=rid, lease_token=tok, now=T0, state="suspended", release=True,
                               next_wakeup_at=T0 - timedelta(minutes=i)))
        ids.append(rid)
    first = store.claim_runs("e", ["wf"], T0, 30, 2)
    assert [r.id for r in first] == [ids[3], ids[2]]
    assert [r.id for r in store.claim_runs("e", ["wf"], T0, 30, 5)] == [ids[1], ids[0]]
    assert store.next_wakeup(["wf"]) is None  # all leased now


def test_claim_run_and_release_and_next_wakeup(store: Any) -> None:
    rid, token = new_run(store, workflow="wf")
    assert store.claim_run(rid, "e2", 30) is None  # e1 holds a live lease
    again = store.claim_run(rid, "e1", 30)
    assert again is not None and again.lease_token != token
    store.release_run(rid, token)  # stale token: no effect
    assert store.get_run(rid).lease_owner == "e1"
    wake_at = T0 + timedelta(hours=2)
    store.commit_wake(Wake(run_id=rid, lease_token=again.lease_token, now=T0, state="suspended",
                           next_wakeup_at=wake_at))
    assert store.next_wakeup(["wf"]) is None  # still leased
    store.release_run(rid, again.lease_token)
    run = store.get_run(rid)
    assert (run.lease_owner, run.lease_token, run.state, run.next_wakeup_at) == (None, None, "suspended", wake_at)
    assert store.next_wakeup(["wf"]) == wake_at
    assert store.next_wakeup(["nope"]) is None
    assert store.claim_run(uuid.uuid4(), "e1", 30) is None


def test_renew_leases_reports_lost(store: Any) -> None:
    a, ta = new_run(store)
    b, tb = new_run(store, ttl=0)
    t = task(1)
    store.commit_wake(Wake(run_id=a, lease_token=ta, now=T0, state="suspended",
                           events=[ev(1, "activity_scheduled")], new_tasks=[t]))
    [c] = store.claim_tasks("e1", ["charge"], now(), 0, 10)
    stolen = store.claim_run(b, "e2", 30)  # b's lease had expired
    assert stolen is not None
    lost_runs, lost_tasks = store.renew_leases("e1", {a: ta, b: tb}, {c.id: c.lease_token, uuid.uuid4(): 5}, 30)
    assert lost_runs == {b}
    assert len(lost_tasks) == 1 and c.id not in lost_tasks
    assert store.get_run(a).lease_expires_at > now() + timedelta(seconds=20)
    assert store.claim_tasks("e2", ["charge"], now(), 30, 10) == []  # renewed, so not expired


def test_overdue_runs_are_the_suspended_ones_due_by_the_cutoff(store: Any) -> None:
    due, t_due = new_run(store)
    later, t_later = new_run(store)
    running, _ = new_run(store)  # never suspended: its first wake is still running
    done, t_done = new_run(store)
    for rid, tok, at in ((due, t_due, T0), (later, t_later, T0 + timedelta(hours=1))):
        store.commit_wake(Wake(run_id=rid, lease_token=tok, now=T0, state="suspended",
                               events=[ev(1, "timer_started")], next_wakeup_at=at))
    store.commit_wake(Wake(run_id=done, lease_token=t_done, now=T0, state="completed", result=1,
                           events=[ev(1, "run_completed")]))
    ids = [due, later, running, done, uuid.uuid4()]
    assert store.overdue_runs(ids, T0) == [due]
    assert sorted(store.overdue_runs(ids, T0 + timedelta(hours=2))) == sorted([due, later])
    assert store.overdue_runs(ids, T0 - timedelta(seconds=1)) == []
    assert store.overdue_runs([], T0) == []


def test_recover_clears_expired_leases(store: Any) -> None:
    live, _ = new_run(store, ttl=30)
    dead, dead_token = new_run(store, ttl=0)
    t = task(1)
    rid, tok = new_run(store, ttl=30)
    store.commit_wake(Wake(run_id=rid, lease_token=tok, now=T0, state="suspended",
                           events=[ev(1, "activity_scheduled")], new_tasks=[t]))
    store.claim_tasks("gone", ["charge"], now(), 0, 10)
    listener = store.listen([CHANNEL_TASKS])
    counts = store.recover()
    assert counts == {"runs": 1, "tasks": 1}
    assert has(CHANNEL_TASKS, "charge")(wait_for(listener, has(CHANNEL_TASKS, "charge")))
    assert store.get_run(dead).lease_token is None
    assert store.get_run(live).lease_owner == "e1"
    with pytest.raises(LeaseLost):
        store.commit_wake(Wake(run_id=dead, lease_token=dead_token, now=T0, state="completed"))
    [again] = store.claim_tasks("e2", ["charge"], now(), 30, 10)
    assert again.id == t.id
    assert store.recover() == {"runs": 0, "tasks": 0}


# --- drift, cancel, resume --------------------------------------------------------------------------

def test_mark_drifted_and_resume(store: Any) -> None:
    rid, token = new_run(store)
    listener = store.listen([CHANNEL_DONE, CHANNEL_WAKE])
    with pytest.raises(LeaseLost):
        store.mark_drifted(rid, token + 1000, {"expected": "a"})
    assert store.get_run(rid).state == "running"
    with pytest.raises(RunNotActive, match="only a drifted run can be resumed"):
        store.resume_run(rid, T0)
    store.mark_drifted(rid, token, {"expected": "activity charge #1", "actual": "timer #1", "at_seq": 3})
    assert has(CHANNEL_DONE, str(rid))(wait_for(listener, has(CHANNEL_DONE, str(rid))))
    run = store.get_run(rid)
    assert run.state == "drifted" and run.error["actual"] == "timer #1" and run.lease_token is None
    assert store.load_journal(rid) == []
    resumed = store.resume_run(rid, T0)
    assert (resumed.state, resumed.error, resumed.next_wakeup_at, resumed.lease_owner) == ("running", None, T0, None)
    assert has(CHANNEL_WAKE, str(rid))(wait_for(listener, has(CHANNEL_WAKE, str(rid))))
    with pytest.raises(RunNotFound):
        store.resume_run(uuid.uuid4(), T0)


def test_cancel_run_fences_holder_and_clears_work(store: Any) -> None:
    rid, token = new_run(store)
    t = task(1)
    timer = NewTimer(uuid.uuid4(), 2, T0)
    store.commit_wake(Wake(run_id=rid, lease_token=token, now=T0, state="suspended",
                           events=[ev(1, "activity_scheduled"), ev(2, "timer_started")],
                           new_tasks=[t], new_timers=[timer]))
    listener = store.listen([CHANNEL_DONE])
    cancelled_at = now()
    run = store.cancel_run(rid, cancelled_at)
    assert (run.state, run.completed_at, run.lease_token) == ("cancelled", cancelled_at, None)
    assert has(CHANNEL_DONE, str(rid))(wait_for(listener, has(CHANNEL_DONE, str(rid))))
    assert store.claim_tasks("w", ["charge"], now(), 30, 10) == []
    assert store.pending_timers(rid) == []
    with pytest.raises(LeaseLost):
        store.commit_wake(Wake(run_id=rid, lease_token=token, now=T0, state="running", events=[ev(3)]))
    with pytest.raises(RunNotActive, match="is cancelled; it can no longer be cancelled"):
        store.cancel_run(rid, T0)
    with pytest.raises(RunNotActive, match="is cancelled; it can no longer receive signals"):
        store.send_signal(rid, "x", 1, T0)
    with pytest.raises(RunNotFound):
        store.cancel_run(uuid.uuid4(), T0)


# --- snapshots and versions -------------------------------------------------------------------------

def test_snapshots_newest_and_fenced(store: Any) -> None:
    rid, token = new_run(store)
    assert store.load_snapshot(rid) is None
    assert store.save_snapshot(Snapshot(rid, 10, "v1", {"state": [1]}), token) is True
    assert store.save_snapshot(Snapshot(rid, 20, "v1", {"state": [2]}), token) is True
    assert store.save_snapshot(Snapshot(rid, 20, "v1", {"state": ["dup"]}), token) is False
    assert store.save_snapshot(Snapshot(rid, 30, "v1", {"state": [3]}), token + 1000) is False
    snap = store.load_snapshot(rid)
    assert (snap.run_id, snap.through_seq, snap.version_hash, snap.payload) == (rid, 20, "v1", {"state": [2]})
    assert snap.size_bytes == len('{"state":[2]}')


def test_versions(store: Any) -> None:
    assert store.latest_version("order") is None and store.get_version("order", "h1") is None
    store.save_version("order", "h1", "async def order(): ...", "cell")
    store.save_version("order", "h1", "something else", "cell")  # idempotent: first wins
    assert store.get_version("order", "h1") == ("async def order(): ...", "cell")
    store.save_version("order", "h2", "v2 source", "cell")
    store.save_version("mod_wf", "m1", "module source", "module")
    assert store.latest_version("order") == ("h2", "v2 source", "cell")
    assert store.stored_workflow_names() == ["order"]
    with pytest.raises(ValueError, match="origin"):
        store.save_version("x", "y", "z", "notebook")
    old, _ = new_run(store, workflow="order")
    done, tok = new_run(store, workflow="order")
    store.commit_wake(Wake(run_id=done, lease_token=tok, now=T0, state="completed", release=True))
    assert [r.id for r in store.runs_on_other_versions("order", "h2")] == [old]
    assert store.runs_on_other_versions("order", "v1") == []


def test_listener_wait_times_out_empty(store: Any) -> None:
    listener = store.listen([CHANNEL_WAKE])
    start = time.monotonic()
    assert listener.wait(0.05) == []
    assert time.monotonic() - start < 5
    listener.close()


def test_listener_close_interrupts_a_waiting_thread(store: Any) -> None:
    import threading

    listener = store.listen([CHANNEL_WAKE])
    started, done = threading.Event(), threading.Event()
    out: dict[str, Any] = {}

    def waiter() -> None:
        started.set()
        try:
            out["got"] = listener.wait(30)
        except Exception as exc:  # noqa: BLE001 - the test asserts there is none
            out["error"] = exc
        done.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    assert started.wait(10)
    listener.close()
    assert done.wait(10), "wait() did not return after close()"
    thread.join(10)
    assert out == {"got": []}


# --- idempotent ingress: keyed starts and signals (migration 20261201000000) ---------------------

def keyed(key: str, *, workflow: str = "order", started: datetime | None = None, **extra: Any) -> NewRun:
    return NewRun(uuid.uuid4(), workflow, "v1", {"order_id": key}, started or now(), idempotency_key=key, **extra)


def test_a_keyed_run_is_created_once_per_workflow_and_key(store: Any) -> None:
    listener = store.listen([CHANNEL_WAKE])
    first = keyed("2026-12-06", attributes={"customer": "acme"})
    got = store.create_keyed_run(first)
    assert got == KeyedStart(first.id, False, None)
    assert has(CHANNEL_WAKE, str(first.id))(wait_for(listener, has(CHANNEL_WAKE, str(first.id))))
    run = store.get_run(first.id)
    assert run.state == "suspended" and run.attributes == {"customer": "acme"} and run.input == {"order_id": "2026-12-06"}
    again = keyed("2026-12-06")
    assert store.create_keyed_run(again) == KeyedStart(first.id, True, None)
    assert store.get_run(again.id) is None  # nothing written
    # the key is per workflow
    other = keyed("2026-12-06", workflow="invoice")
    assert store.create_keyed_run(other) == KeyedStart(other.id, False, None)
    assert len(store.list_runs(limit=10)) == 2


def test_a_keyed_run_leased_to_its_owner_waits_for_its_first_wake(store: Any) -> None:
    run = keyed("k1", retention=timedelta(days=3))
    got = store.create_keyed_run(run, owner="e1", lease_ttl=30)
    assert got.run_id == run.id and not got.existing and isinstance(got.lease_token, int)
    rec = store.get_run(run.id)
    assert (rec.state, rec.lease_owner, rec.lease_token, rec.next_wakeup_at) == ("running", "e1", got.lease_token, None)
    assert rec.retention == timedelta(days=3) and rec.retention_until is None
    assert store.claim_runs("e2", ["order"], now(), 30, 10) == []  # leased: nobody else takes it
    assert store.create_keyed_run(keyed("k1"), owner="e2") == KeyedStart(run.id, True, None)
    store.commit_wake(Wake(run_id=run.id, lease_token=got.lease_token, now=T0, state="suspended",
                           events=[ev(1)], release=True))
    assert [e.seq for e in store.load_journal(run.id)] == [1]


def test_keyed_runs_are_refused_by_create_run_and_a_bad_id_writes_no_key(store: Any) -> None:
    with pytest.raises(ValueError, match="create_keyed_run"):
        store.create_run(keyed("k"))
    with pytest.raises(ValueError, match="no idempotency_key"):
        store.create_keyed_run(NewRun(uuid.uuid4(), "order", "v1", {}, now()))
    taken, _ = new_run(store, owner=None)
    with pytest.raises(ValueError, match="already exists"):
        store.create_keyed_run(NewRun(taken, "order", "v1", {}, now(), idempotency_key="k"))
    fresh = keyed("k")  # the failed insert left no key behind
    assert store.create_keyed_run(fresh) == KeyedStart(fresh.id, False, None)


def test_concurrent_keyed_starts_make_one_run_per_key(store: Any) -> None:
    import threading

    keys = [f"key-{i}" for i in range(3)]
    results: list[KeyedStart] = []
    lock = threading.Lock()
    barrier = threading.Barrier(6)

    def starter() -> None:
        barrier.wait()
        for key in keys * 3:
            got = store.create_keyed_run(keyed(key), owner="e1")
            with lock:
                results.append(got)

    threads = [threading.Thread(target=starter) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    runs = store.list_runs(limit=100)
    assert len(runs) == 3 and len(results) == 54
    assert {r.run_id for r in results} == {r.id for r in runs}
    assert sum(not r.existing for r in results) == 3


def test_a_keyed_signal_is_delivered_once(store: Any) -> None:
    rid, token = new_run(store)
    other, _ = new_run(store)
    listener = store.listen([CHANNEL_WAKE])
    sid, delivered = store.send_signal_once(rid, "approve", "req-1", {"by": "ana"}, T0)
    assert delivered is True
    assert has(CHANNEL_WAKE, str(rid))(wait_for(listener, has(CHANNEL_WAKE, str(rid))))
    assert store.send_signal_once(rid, "approve", "req-1", {"by": "other"}, T0) == (sid, False)
    assert [(s.id, s.payload) for s in store.pending_signals(rid)] == [(sid, {"by": "ana"})]
    # the key is per run and per signal name; plain signals are unaffected
    s2, d2 = store.send_signal_once(rid, "reject", "req-1", None, T0)
    s3, d3 = store.send_signal_once(other, "approve", "req-1", None, T0)
    s4 = store.send_signal(rid, "approve", {"by": "bo"}, T0)
    assert d2 and d3 and len({sid, s2, s3, s4}) == 4
    assert [s.id for s in store.pending_signals(rid, ["approve"])] == [sid, s4]  # FIFO
    # once the run finished: the old key is still a duplicate, a new one is refused
    store.commit_wake(Wake(run_id=rid, lease_token=token, now=T0, state="completed", release=True))
    assert store.send_signal_once(rid, "approve", "req-1", {}, T0) == (sid, False)
    with pytest.raises(RunNotActive, match="can no longer receive signals"):
        store.send_signal_once(rid, "approve", "req-2", {}, T0)
    with pytest.raises(RunNotFound):
        store.send_signal_once(uuid.uuid4(), "approve", "req-1", {}, T0)


def test_concurrent_keyed_signals_deliver_once(store: Any) -> None:
    import threading

    rid, _ = new_run(store)
    outcomes: list[tuple[int, bool]] = []
    barrier = threading.Barrier(6)

    def sender() -> None:
        barrier.wait()
        for _ in range(5):
            outcomes.append(store.send_signal_once(rid, "go", "once", {"n": 1}, T0))

    threads = [threading.Thread(target=sender) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(outcomes) == 30 and sum(d for _, d in outcomes) == 1
    assert len({sid for sid, _ in outcomes}) == 1
    assert len(store.pending_signals(rid)) == 1


# --- search attributes ------------------------------------------------------------------------------

def test_attributes_are_stored_merged_and_filtered(store: Any) -> None:
    a = NewRun(uuid.uuid4(), "order", "v1", {}, T0, attributes={"customer": "acme", "tier": 1, "vip": True})
    b = NewRun(uuid.uuid4(), "order", "v1", {}, T0 + timedelta(minutes=1), attributes={})
    store.create_run(a)
    store.create_run(b, owner="e1", first_wake=Wake(run_id=b.id, lease_token=0, now=T0, state="suspended"))
    assert store.get_run(a.id).attributes == {"customer": "acme", "tier": 1, "vip": True}
    assert store.get_run(b.id).attributes is None  # {} is stored as none
    merged = store.set_attributes(b.id, {"customer": "globex", "tier": 1.0})
    assert merged == {"customer": "globex", "tier": 1.0}
    assert store.set_attributes(b.id, {"tier": 2, "note": None}) == {"customer": "globex", "tier": 2, "note": None}
    with pytest.raises(RunNotFound):
        store.set_attributes(uuid.uuid4(), {"x": 1})

    def ids(**filters: Any) -> list[uuid.UUID]:
        return [r.id for r in store.list_runs(limit=10, **filters)]

    assert ids(attributes={"customer": "acme"}) == [a.id]
    assert ids(attributes={"tier": 1.0}) == [a.id]          # jsonb: 1 equals 1.0
    assert ids(attributes={"vip": 1}) == []                 # ... but true is not 1
    assert ids(attributes={"vip": True, "customer": "acme"}) == [a.id]
    assert ids(attributes={"note": None}) == [b.id]
    assert ids(attributes={"customer": "initech"}) == []
    assert ids(started_after=T0 + timedelta(minutes=1)) == [b.id]    # inclusive
    assert ids(started_before=T0 + timedelta(minutes=1)) == [a.id]   # exclusive
    assert ids(started_after=T0, started_before=T0 + timedelta(hours=1), state="suspended") == [b.id, a.id]
    assert ids(workflow="order", attributes={"tier": 2}, state="suspended") == [b.id]


# --- retention and pruning --------------------------------------------------------------------------

def test_retention_runs_from_the_end(store: Any) -> None:
    kept = timedelta(days=30)
    rid = uuid.uuid4()
    token = store.create_run(NewRun(rid, "order", "v1", {}, T0, retention=kept), owner="e1")
    assert store.get_run(rid).retention_until is None  # not ended: nothing to count from
    store.commit_wake(Wake(run_id=rid, lease_token=token, now=T0, state="suspended", events=[ev(1)]))
    assert store.get_run(rid).retention_until is None
    ended = T0 + timedelta(hours=5)
    store.commit_wake(Wake(run_id=rid, lease_token=token, now=ended, state="failed", error={"m": "x"}))
    assert store.get_run(rid).retention_until == ended + kept
    # finished in its first wake; cancelled; no retention at all; v0.2's explicit retention_until
    first, _ = new_run(store, first_wake=Wake(run_id=uuid.uuid4(), lease_token=0, now=ended, state="completed"))
    assert store.get_run(first).retention_until is None
    fid = uuid.uuid4()
    store.create_run(NewRun(fid, "order", "v1", {}, T0, retention=kept), owner="e1",
                     first_wake=Wake(run_id=fid, lease_token=0, now=ended, state="completed", result=1))
    assert store.get_run(fid).retention_until == ended + kept
    cid = uuid.uuid4()
    store.create_run(NewRun(cid, "order", "v1", {}, T0, retention=kept))
    assert store.cancel_run(cid, ended).retention_until == ended + kept
    legacy = uuid.uuid4()
    store.create_run(NewRun(legacy, "order", "v1", {}, T0, retention_until=T0 + kept))
    assert store.cancel_run(legacy, ended).retention_until == T0 + kept


def _rows(store: Any, request: pytest.FixtureRequest, run_id: uuid.UUID) -> dict[str, int]:
    """The run's rows in every table (the PostgreSQL tables read directly)."""
    if isinstance(store, MemoryStore):
        s: Any = store
        return {
            "continuum_runs": int(run_id in s._runs),
            "continuum_events": len(s._events.get(run_id, [])),
            "continuum_signals": sum(x.run_id == run_id for x in s._signals.values()),
            "continuum_timers": sum(x.run_id == run_id for x in s._timers.values()),
            "continuum_activity_tasks": sum(x.run_id == run_id for x in s._tasks.values()),
            "continuum_snapshots": len(s._snapshots.get(run_id, {})),
            "continuum_activity_results": sum(v[0] == run_id for v in s._results.values()),
            "continuum_ingress_keys": sum(v == run_id for v in s._ingress_keys.values()),
            "continuum_signal_keys": sum(k[0] == run_id for k in s._signal_keys),
        }
    import psycopg

    out = {}
    with psycopg.connect(request.getfixturevalue("db_url")) as conn:
        for table in ("continuum_runs", "continuum_events", "continuum_signals", "continuum_timers",
                      "continuum_activity_tasks", "continuum_snapshots", "continuum_activity_results",
                      "continuum_ingress_keys", "continuum_signal_keys"):
            column = "id" if table == "continuum_runs" else "run_id"
            row = conn.execute(f"SELECT count(*) FROM {table} WHERE {column} = %s", (run_id,)).fetchone()  # noqa: S608
            out[table] = int(row[0]) if row else 0
    return out


def _full_run(store: Any, key: str, retention: timedelta | None, end: str | None, ended_at: datetime) -> uuid.UUID:
    """A keyed run with a row in every table, ended (``end``) at ``ended_at`` or left suspended."""
    got = store.create_keyed_run(keyed(key, retention=retention), owner="e1")
    rid, token = got.run_id, got.lease_token
    t_done, t_open = task(1, mine=True, key=f"charge:{key}"), task(3)
    store.commit_wake(Wake(run_id=rid, lease_token=token, now=T0, state="suspended",
                           events=[ev(1, "activity_scheduled"), ev(2, "timer_started"), ev(3, "activity_scheduled")],
                           new_tasks=[t_done, t_open], new_timers=[NewTimer(uuid.uuid4(), 2, T0)]))
    store.commit_wake(Wake(run_id=rid, lease_token=token, now=T0, state="suspended", events=[ev(4)],
                           task_outcomes=[TaskOutcome(t_done.id, "completed", 7, idempotency=("charge", key), seq=1)]))
    store.send_signal_once(rid, "go", f"sig:{key}", {"n": 1}, T0)
    assert store.save_snapshot(Snapshot(rid, 4, "v1", {"s": 1}), token)
    if end == "cancelled":
        store.cancel_run(rid, ended_at)
    elif end is not None:
        store.commit_wake(Wake(run_id=rid, lease_token=token, now=ended_at, state=end, result=1, release=True))
    return rid


def test_prune_deletes_only_ended_runs_past_retention_and_all_their_rows(
    store: Any, request: pytest.FixtureRequest
) -> None:
    day = timedelta(days=1)
    past, now_ = T0, T0 + 40 * day
    expired = [_full_run(store, "done", 30 * day, "completed", past), _full_run(store, "gone", 30 * day, "cancelled", past)]
    kept = {
        "retained": _full_run(store, "retained", 60 * day, "failed", past),      # until T0 + 60 days
        "forever": _full_run(store, "forever", None, "completed", past),         # no retention
        "running": _full_run(store, "running", 30 * day, None, past),            # not ended
    }
    # v0.2 set retention_until at start: a run still going is not pruned even when it passed
    legacy = uuid.uuid4()
    store.create_run(NewRun(legacy, "order", "v1", {}, T0, retention_until=T0 + day))
    kept["legacy"] = legacy
    full = _rows(store, request, expired[0])
    assert set(full.values()) == {1, 4, 2} and full["continuum_events"] == 4  # a row in every table
    before = {name: _rows(store, request, rid) for name, rid in kept.items()}

    report = store.prune(now_, execute=False, drop_keys=False, batch_size=1)
    assert report == PruneReport(False, runs=2, events=8, signals=2, timers=2, tasks=4, snapshots=2,
                                 activity_results=2, ingress_keys=0, signal_keys=0, batches=0)
    assert _rows(store, request, expired[0]) == full  # a report changes nothing
    assert store.prune(now_, execute=False, drop_keys=True, batch_size=1).ingress_keys == 2

    done = store.prune(now_, execute=True, drop_keys=False, batch_size=1)
    assert done == PruneReport(True, runs=2, events=8, signals=2, timers=2, tasks=4, snapshots=2,
                               activity_results=2, ingress_keys=0, signal_keys=0, batches=2)
    for rid in expired:
        left = _rows(store, request, rid)
        assert left == {**dict.fromkeys(left, 0), "continuum_ingress_keys": 1, "continuum_signal_keys": 1}
    assert {name: _rows(store, request, rid) for name, rid in kept.items()} == before
    assert store.get_activity_result("charge", "done") == (False, None)
    assert store.get_activity_result("charge", "retained") == (True, 7)
    # the key still finds its (pruned) run; a keyed signal to it is still a duplicate
    assert store.create_keyed_run(keyed("done")) == KeyedStart(expired[0], True, None)
    assert store.send_signal_once(expired[0], "go", "sig:done", {}, T0)[1] is False
    assert store.prune(now_, execute=True, drop_keys=False, batch_size=10).runs == 0

    # drop_keys later: the keys of runs pruned before go, nobody else's
    dropped = store.prune(now_, execute=True, drop_keys=True, batch_size=1)
    assert (dropped.runs, dropped.ingress_keys, dropped.signal_keys, dropped.batches) == (0, 2, 2, 0)
    for rid in expired:
        assert set(_rows(store, request, rid).values()) == {0}
    assert {name: _rows(store, request, rid) for name, rid in kept.items()} == before
    fresh = keyed("done")
    assert store.create_keyed_run(fresh) == KeyedStart(fresh.id, False, None)


def test_prune_with_drop_keys_takes_the_keys_with_the_runs(store: Any, request: pytest.FixtureRequest) -> None:
    day = timedelta(days=1)
    rids = [_full_run(store, f"k{i}", day, "completed", T0) for i in range(5)]
    later = _full_run(store, "later", 10 * day, "completed", T0)
    report = store.prune(T0 + 2 * day, execute=True, drop_keys=True, batch_size=2)
    assert (report.runs, report.ingress_keys, report.signal_keys, report.batches) == (5, 5, 5, 3)
    for rid in rids:
        assert set(_rows(store, request, rid).values()) == {0}
    assert _rows(store, request, later)["continuum_ingress_keys"] == 1
    with pytest.raises(ValueError, match="batch_size"):
        store.prune(T0, execute=True, drop_keys=False, batch_size=0)


# --- forks (store/forks.py, migration 20261207020000) ---------------------------------------------

def test_fork_run_inserts_the_prefix_open_tasks_and_timers_and_links_both_ways(store: Any) -> None:
    origin, _ = new_run(store)
    listener = store.listen([CHANNEL_WAKE, CHANNEL_TASKS])
    fid = uuid.uuid4()
    started = now()
    open_task = task(3, "ship", available_at=started)
    timer = NewTimer(uuid.uuid4(), 4, T0 + timedelta(hours=1))
    events = [ev(1), ev(2, "activity_scheduled", activity="charge", task_id=str(uuid.uuid4())),
              ev(3, "activity_scheduled", activity="ship", task_id=str(open_task.id)), ev(4, "timer_started")]
    store.fork_run(NewFork(NewRun(fid, "order", "v2", {"order_id": "A1"}, started, attributes={"k": 1}),
                           origin, 4, events, [open_task], [timer]))
    got = wait_for(listener, lambda g: has(CHANNEL_WAKE, str(fid))(g) and has(CHANNEL_TASKS, "ship")(g))
    assert has(CHANNEL_WAKE, str(fid))(got) and has(CHANNEL_TASKS, "ship")(got)
    run = store.get_run(fid)
    assert (run.state, run.version_hash, run.next_wakeup_at, run.lease_owner) == ("suspended", "v2", started, None)
    assert run.attributes == {"k": 1}
    assert [(e.seq, e.event_type, e.payload) for e in store.load_journal(fid)] == [
        (e.seq, e.event_type, e.payload) for e in events]
    [t] = store.open_tasks(fid)
    assert (t.id, t.seq, t.activity, t.state, t.attempt, t.args) == (
        open_task.id, 3, "ship", "available", 1, {"args": [3], "kwargs": {"x": "y"}})
    assert [(x.id, x.seq, x.fires_at) for x in store.pending_timers(fid)] == [(timer.id, 4, timer.fires_at)]
    links = store.fork_links(fid)
    assert (links.forked_from_run_id, links.forked_at_seq, links.forks) == (origin, 4, [])
    assert store.fork_links(origin).forks == [(fid, 4)]
    assert store.fork_links(origin).forked_from_run_id is None
    with pytest.raises(ValueError, match="already exists"):
        store.fork_run(NewFork(NewRun(fid, "order", "v2", {}, started), origin, 0))


# --- commit_wakes (group commit) -----------------------------------------------------------------

def test_each_wake_is_fenced_alone_and_the_others_commit(store: Any) -> None:
    (a, ta), (b, tb), (c, tc), (d, td) = (new_run(store) for _ in range(4))
    store.commit_wake(Wake(run_id=c, lease_token=tc, now=T0, state="running", events=[ev(1), ev(2)]))
    listener = store.listen([CHANNEL_TASKS])
    results = store.commit_wakes([
        Wake(run_id=a, lease_token=ta, now=T0, state="suspended",
             events=[ev(1), ev(2, "activity_scheduled")], new_tasks=[task(2, "ship_a")]),
        Wake(run_id=b, lease_token=tb + 1000, now=T0, state="completed", result={"b": 1},  # stale token
             events=[ev(1)], new_tasks=[task(1, "ship_b")], release=True),
        Wake(run_id=c, lease_token=tc, now=T0, state="running", events=[ev(2)]),  # seq 2 is taken
        Wake(run_id=d, lease_token=td, now=T0, state="completed", result={"d": 4}, events=[ev(1)], release=True),
    ])
    assert [type(r) for r in results] == [WakeResult, LeaseLost, LeaseLost, WakeResult]
    assert "not leased" in str(results[1]) or "lease" in str(results[1])
    assert "journal ends at seq 2" in str(results[2])
    assert [e.seq for e in store.load_journal(a)] == [1, 2]
    assert store.load_journal(b) == [] and store.get_run(b).state == "running"
    assert [e.payload["value"] for e in store.load_journal(c)] == [1, 2]
    assert store.get_run(d).state == "completed" and store.get_run(d).result == {"d": 4}
    # the committed wake's NOTIFY is sent, the refused one's is not
    got = wait_for(listener, has(CHANNEL_TASKS, "ship_a"))
    assert has(CHANNEL_TASKS, "ship_a")(got)
    got.extend(listener.wait(0.3))
    assert Notification(CHANNEL_TASKS, "ship_b") not in got
    assert [t.activity for t in store.claim_tasks("e2", ["ship_a", "ship_b"], now(), 30, 10)] == ["ship_a"]


def test_a_wake_with_a_bad_value_is_refused_alone(store: Any) -> None:
    (a, ta), (b, tb) = new_run(store), new_run(store)
    results = store.commit_wakes([
        # consecutive seqs are the engine's promise: a wake breaking it is refused before sending
        Wake(run_id=a, lease_token=ta, now=T0, state="running", events=[ev(1), ev(3)]),
        Wake(run_id=b, lease_token=tb, now=T0, state="running", events=[ev(1)]),
    ])
    assert isinstance(results[0], ValueError) and "not consecutive" in str(results[0])
    assert isinstance(results[1], WakeResult)
    assert store.load_journal(a) == [] and [e.seq for e in store.load_journal(b)] == [1]


def test_postgres_refuses_one_value_and_commits_the_rest(pg_server: str, request: pytest.FixtureRequest) -> None:
    """A value PostgreSQL itself refuses (jsonb has no \\u0000) fails only its own wake."""
    store = PostgresStore(request.getfixturevalue("db_url"), pool_size=2)
    try:
        (a, ta), (b, tb) = new_run(store), new_run(store)
        results = store.commit_wakes([
            Wake(run_id=a, lease_token=ta, now=T0, state="running", events=[ev(1, value="a\x00b")]),
            Wake(run_id=b, lease_token=tb, now=T0, state="running", events=[ev(1)]),
        ])
        assert isinstance(results[0], ValueError) and "PostgreSQL refused a value" in str(results[0])
        assert isinstance(results[1], WakeResult)
        assert store.load_journal(a) == [] and [e.seq for e in store.load_journal(b)] == [1]
        # nothing of it moved the journal's end: its seq 1 is still free
        store.commit_wake(Wake(run_id=a, lease_token=ta, now=T0, state="running", events=[ev(1)]))
    finally:
        store.close()


def test_an_empty_batch_commits_nothing(store: Any) -> None:
    assert store.commit_wakes([]) == []


def _starting(rid: uuid.UUID, *events: Event, owner: str = "e1", state: str = "suspended",
              tasks: list[NewTask] | None = None) -> StartingWake:
    first = Wake(run_id=rid, lease_token=0, now=now(), state=state, events=list(events), new_tasks=tasks or [])
    return starting_wake(first, NewRun(rid, "order", "v1", {"order_id": rid.hex[:4]}, now()), owner, 30.0)


def test_a_starting_wake_inserts_its_run_leased_alone_or_in_a_batch(store: Any) -> None:
    """The run's insert with its first wake through commit_wake / commit_wakes (store/starts.py)."""
    alone = uuid.uuid4()
    got = store.commit_wake(_starting(alone, ev(1), ev(2, "activity_scheduled", activity="charge"),
                                      tasks=[task(2, mine=True)]))
    assert isinstance(got.lease_token, int)
    run = store.get_run(alone)
    assert (run.state, run.lease_owner, run.lease_token) == ("suspended", "e1", got.lease_token)
    assert [e.seq for e in store.load_journal(alone)] == [1, 2]
    assert run.input == {"order_id": alone.hex[:4]}

    a, b, taken = uuid.uuid4(), uuid.uuid4(), alone
    (c, tc) = new_run(store)
    results = store.commit_wakes([
        _starting(a, ev(1)),
        Wake(run_id=c, lease_token=tc, now=T0, state="running", events=[ev(1)]),   # an ordinary wake
        _starting(taken, ev(1)),                                                     # its id exists
        _starting(b, ev(1), state="completed"),
    ])
    assert isinstance(results[0], WakeResult) and isinstance(results[0].lease_token, int)
    assert isinstance(results[1], WakeResult) and results[1].lease_token is None
    assert isinstance(results[2], ValueError) and "already exists; pass a new run_id" in str(results[2])
    assert isinstance(results[3], WakeResult)
    assert results[0].lease_token != results[3].lease_token
    assert store.get_run(a).lease_token == results[0].lease_token and store.get_run(a).state == "suspended"
    assert store.get_run(b).state == "completed"
    assert [e.seq for e in store.load_journal(c)] == [1]
    # the refused start wrote nothing: the existing run and its journal are as they were
    assert store.get_run(taken).lease_token == got.lease_token and [e.seq for e in store.load_journal(taken)] == [1, 2]


def test_a_starting_wake_is_checked_like_create_run(store: Any) -> None:
    rid = uuid.uuid4()
    with pytest.raises(ValueError, match="starts at seq 1"):
        store.commit_wake(_starting(rid, ev(2)))
    results = store.commit_wakes([_starting(rid, ev(2)), _starting(uuid.uuid4(), ev(1))])
    assert isinstance(results[0], ValueError) and "starts at seq 1" in str(results[0])
    assert isinstance(results[1], WakeResult)
    assert store.get_run(rid) is None
    with pytest.raises(ValueError, match="needs the new run and its owner"):
        store.commit_wake(_starting(uuid.uuid4(), ev(1), owner=""))
    with pytest.raises(TypeError, match="only a plain first wake"):
        starting_wake(_starting(uuid.uuid4(), ev(1)), NewRun(rid, "order", "v1", {}, now()), "e1", 30.0)

# --- load_journals (the journals of a claimed batch) ---------------------------------------------

def test_load_journals_reads_the_short_journals_of_leased_runs_at_once(store: Any) -> None:
    (empty, te), (short, ts), (long_, tl), (big, tb), (lost, tx) = (new_run(store) for _ in range(5))
    store.commit_wake(Wake(run_id=short, lease_token=ts, now=T0, state="running", events=[ev(1), ev(2)]))
    store.commit_wake(Wake(run_id=long_, lease_token=tl, now=T0, state="running",
                           events=[ev(i) for i in range(1, 6)]))
    store.commit_wake(Wake(run_id=big, lease_token=tb, now=T0, state="running", events=[ev(1, value="x" * 5000)]))
    store.commit_wake(Wake(run_id=lost, lease_token=tx, now=T0, state="running", events=[ev(1)]))
    store.release_run(lost, tx)
    assert store.claim_run(lost, "e2", 30.0) is not None  # another engine's lease now: not ours to read
    leases = {empty: te, short: ts, long_: tl, big: tb, lost: tx, uuid.uuid4(): 1}
    got = store.load_journals(leases, 3, 4000)
    assert set(got) == {empty, short}  # too long, too big, leased to another, unknown: left out
    assert got[empty] == []
    assert got[short] == store.load_journal(short) and [e.seq for e in got[short]] == [1, 2]
    assert got[short][0].payload == {"value": 1} and got[short][0].event_type == "side_effect"
    # at the limits exactly, they are read
    assert set(store.load_journals({long_: tl, big: tb}, 5, 6000)) == {long_, big}
    assert store.load_journals({long_: tl}, 5, 6000)[long_] == store.load_journal(long_)
    assert store.load_journals({}, 10, 1000) == {}
