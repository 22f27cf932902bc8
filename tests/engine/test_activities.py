"""Activities: results and failures (caught, or failing the run), retries, timeouts, gather,
idempotency keys; where the bodies run (inline on the drive thread, or on the activity pool),
the activity_concurrency bound both share, and what a run of S steps commits."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

import continuum_nb as cn
from continuum_nb.engine.clock import VirtualClock
from tests.engine.helpers import (
    Recorder,
    _charges,
    async_inc,
    charge,
    define,
    double,
    eventually,
    flaky,
    journal,
    through_backoff,
    types,
)


@cn.activity(name="cases.bad_result", retry=cn.Retry(max_attempts=1))
def bad_result() -> Any:
    return {"when": object()}


@cn.activity(name="cases.slow", timeout=cn.seconds(0.2), retry=cn.Retry(max_attempts=1))
def slow(done: list[Any] | None = None) -> str:
    threading.Event().wait(2.0)
    return "late"


def test_activity_retries_then_succeeds(make_instance: Any, clock: VirtualClock) -> None:
    inst = make_instance()
    key = uuid.uuid4().hex

    async def retrying(key: str) -> dict[str, Any]:
        return await flaky(key, 2)

    rec = Recorder(("continuum", "activity", "retried"), ("continuum", "activity", "completed"))
    try:
        run = cn.start(define(inst, retrying), {"key": key}, instance=inst)
        through_backoff(inst, clock, run)
        assert cn.wait(run.id, timeout=30, instance=inst) == {"key": key, "attempt": 3}
    finally:
        rec.close()
    done = [e for e in journal(inst, run) if e.event_type == "activity_completed"]
    assert done[0].payload["attempts"] == 3
    assert rec.names().count(("continuum", "activity", "retried")) == 2
    assert types(inst, run) == ["activity_scheduled", "activity_completed"]  # retries are not journaled


def test_activity_failure_is_catchable_in_the_workflow(make_instance: Any, clock: VirtualClock) -> None:
    inst = make_instance()
    key = uuid.uuid4().hex

    async def catching(key: str) -> str:
        try:
            await flaky(key, 99)
        except cn.ActivityFailed as exc:
            return f"caught after {exc.attempts}: {exc.activity}"
        return "not reached"

    run = cn.start(define(inst, catching), {"key": key}, instance=inst)
    through_backoff(inst, clock, run)
    assert cn.wait(run.id, timeout=30, instance=inst) == "caught after 3: cases.flaky"
    failed = [e for e in journal(inst, run) if e.event_type == "activity_failed"][0]
    assert failed.payload["attempts"] == 3
    assert failed.payload["error"]["message"] == "attempt 3 fails"


def test_uncaught_failure_fails_the_run(make_instance: Any) -> None:
    inst = make_instance()

    async def failing() -> int:
        await double(1)
        raise ValueError("bad order")

    run = cn.start(define(inst, failing), instance=inst)
    with pytest.raises(cn.RunFailed, match="bad order") as info:
        cn.wait(run.id, timeout=30, instance=inst)
    assert info.value.error["type"] == "builtins.ValueError"
    assert cn.api.get_run(run.id, instance=inst).state == "failed"


def test_non_json_activity_result_fails_the_attempt(make_instance: Any) -> None:
    inst = make_instance()

    async def bad() -> Any:
        try:
            return await bad_result()
        except cn.ActivityFailed as exc:
            return exc.error_type

    run = cn.start(define(inst, bad), instance=inst)
    assert cn.wait(run.id, timeout=30, instance=inst) == "builtins.TypeError"


def test_activity_timeout(make_instance: Any) -> None:
    inst = make_instance()

    async def timing_out() -> str:
        try:
            return await slow()
        except cn.ActivityFailed as exc:
            return str(exc)

    run = cn.start(define(inst, timing_out), instance=inst)
    assert "timed out after 0.2s" in cn.wait(run.id, timeout=30, instance=inst)


def test_sync_and_async_activities_and_gather(make_instance: Any) -> None:
    inst = make_instance()

    async def fan_out(n: int) -> list[Any]:
        a, b, c = await cn.gather(double(n), async_inc(n), double(n + 1))
        return [a, b, c]

    run = cn.start(define(inst, fan_out), {"n": 5}, instance=inst)
    assert cn.wait(run.id, timeout=30, instance=inst) == [10, 6, 12]
    assert types(inst, run)[:3] == ["activity_scheduled"] * 3


def test_gather_raises_the_first_failure_after_all_finish(make_instance: Any, clock: VirtualClock) -> None:
    inst = make_instance()
    key = uuid.uuid4().hex

    async def mixed(key: str) -> str:
        try:
            await cn.gather(double(1), flaky(key, 99))
        except cn.ActivityFailed as exc:
            return exc.activity or ""
        return "no"

    run = cn.start(define(inst, mixed), {"key": key}, instance=inst)
    through_backoff(inst, clock, run)
    assert cn.wait(run.id, timeout=30, instance=inst) == "cases.flaky"
    assert sorted(types(inst, run)) == sorted(
        ["activity_scheduled", "activity_scheduled", "activity_completed", "activity_failed"]
    )


def test_idempotency_key_returns_the_stored_result_across_runs(make_instance: Any) -> None:
    inst = make_instance()
    order_id = uuid.uuid4().hex
    before = _charges.count(order_id)

    async def pay(order_id: str) -> dict[str, Any]:
        return await charge(order_id, 500)

    wf = define(inst, pay)
    rec = Recorder(("continuum", "activity", "idempotency_hit"))
    try:
        first = cn.wait(cn.start(wf, {"order_id": order_id}, instance=inst).id, timeout=30, instance=inst)
        run2 = cn.start(wf, {"order_id": order_id}, instance=inst)
        second = cn.wait(run2.id, timeout=30, instance=inst)
    finally:
        rec.close()
    assert first == second
    assert _charges.count(order_id) - before == 1  # the body ran once
    done = [e for e in journal(inst, run2) if e.event_type == "activity_completed"][0]
    assert done.payload["idempotency_hit"] is True
    hits = [meta for ev, _, meta in rec.seen if meta.get("run_id") == run2.id]
    assert len(hits) == 1 and hits[0]["idempotency_key"] == f"charge:{order_id}"


# ------------------------------------------------------------------------------------------------
# where the bodies run: inline or on the activity pool, within activity_concurrency
# ------------------------------------------------------------------------------------------------


def test_commits_per_workflow_is_steps_plus_one(make_instance: Any) -> None:
    inst = make_instance()
    counts = {"create_run": 0, "commit_wake": 0, "commit_wakes": 0, "complete_task": 0}
    store = inst.store
    for name in counts:
        original = getattr(store, name)

        def counting(*a: Any, _o: Any = original, _n: str = name, **k: Any) -> Any:
            counts[_n] += 1
            return _o(*a, **k)

        setattr(store, name, counting)

    async def three_steps(x: int) -> int:
        x = await double(x)
        x = await double(x)
        return await double(x)

    run = cn.start(define(inst, three_steps), {"x": 1}, instance=inst)
    assert cn.wait(run.id, timeout=30, instance=inst) == 8
    # S + 1 = 4 commits: the run's insert with its first wake (a StartingWake), then one per step
    assert counts == {"create_run": 0, "commit_wake": 4, "commit_wakes": 0, "complete_task": 0}


@cn.activity(name="cases.thread_name")
def thread_name(i: int) -> str:
    return threading.current_thread().name


@cn.activity(name="cases.thread_name_with_timeout", timeout=cn.seconds(30))
def thread_name_with_timeout(i: int) -> str:
    return threading.current_thread().name


@cn.activity(name="cases.async_thread_name")
async def async_thread_name(i: int) -> str:
    return threading.current_thread().name


def test_plain_activities_run_inline_the_others_on_the_activity_pool(make_instance: Any) -> None:
    """A plain function without a timeout runs on the drive thread that committed its schedule
    (no hand-off); a timeout or an async function needs the activity pool."""
    inst = make_instance()

    async def where(i: int) -> list[str]:
        return [await thread_name(i), await thread_name_with_timeout(i), await async_thread_name(i)]

    run = cn.start(define(inst, where), {"i": 1}, instance=inst)
    plain, timed, asynchronous = cn.wait(run.id, timeout=30, instance=inst)
    assert "-drive" in plain, plain
    assert "-act" in timed, timed
    assert "-act" in asynchronous, asynchronous


_busy_lock = threading.Lock()


_busy = {"now": 0, "max": 0}


_release_bodies = threading.Event()


@cn.activity(name="cases.occupy")
def occupy(i: int) -> int:
    with _busy_lock:
        _busy["now"] += 1
        _busy["max"] = max(_busy["max"], _busy["now"])
    try:
        _release_bodies.wait(30)
        return i
    finally:
        with _busy_lock:
            _busy["now"] -= 1


def test_activity_concurrency_bounds_inline_and_pool_bodies_together(make_instance: Any) -> None:
    inst = make_instance(activity_concurrency=2)
    _busy.update(now=0, max=0)
    _release_bodies.clear()

    async def one(i: int) -> int:
        return await occupy(i)

    wf = define(inst, one)
    runs = [cn.start(wf, {"i": i}, instance=inst) for i in range(5)]
    eventually(lambda: _busy["now"] == 2, what="two bodies running")
    with _busy_lock:
        assert _busy["max"] == 2
    _release_bodies.set()
    assert sorted(cn.wait(r.id, timeout=60, instance=inst) for r in runs) == [0, 1, 2, 3, 4]
    assert _busy["max"] == 2  # never more than activity_concurrency bodies at once


_slot_held = threading.Event()


_release_slot = threading.Event()


_queued_bodies: list[str] = []


@cn.activity(name="cases.hold_slot")
def hold_slot() -> str:
    _slot_held.set()
    _release_slot.wait(30)
    return "held"


@cn.activity(name="cases.queued_with_timeout", timeout=cn.seconds(0.3), retry=cn.Retry(max_attempts=1))
def queued_with_timeout(tag: str) -> str:
    _queued_bodies.append(tag)
    return tag


def test_an_attempt_that_timed_out_waiting_for_a_slot_never_runs(make_instance: Any) -> None:
    inst = make_instance(activity_concurrency=1)
    _slot_held.clear()
    _release_slot.clear()
    _queued_bodies.clear()

    async def holder() -> str:
        return await hold_slot()

    async def queued(tag: str) -> str:
        try:
            return await queued_with_timeout(tag)
        except cn.ActivityFailed as exc:
            return f"failed: {exc}"

    first = cn.start(define(inst, holder), {}, instance=inst)
    assert _slot_held.wait(30)  # the only slot is taken by a plain (inline) body
    waiting = cn.start(define(inst, queued), {"tag": "late"}, instance=inst)
    assert "timed out" in cn.wait(waiting.id, timeout=30, instance=inst)
    _release_slot.set()
    assert cn.wait(first.id, timeout=30, instance=inst) == "held"
    # The activity pool has one thread: this body runs only after the abandoned attempt has had
    # the slot and given it back without running.
    after = cn.start(define(inst, queued, "queued_after"), {"tag": "after"}, instance=inst)
    assert cn.wait(after.id, timeout=30, instance=inst) == "after"
    assert _queued_bodies == ["after"]


# --- a task lease counts from when it was granted, not from when its attempt starts -----------
LATE_BODIES: dict[int, list[str]] = {}


@cn.activity(name="late_start.body", timeout=30)  # a timeout: attempted on the pool, via the loop
def late_body(n: int) -> int:
    LATE_BODIES.setdefault(n, []).append(threading.current_thread().name)
    return n + 1


async def late_one_step(n: int) -> int:
    return await late_body(n)


@pytest.mark.stores("postgres")
def test_an_attempt_that_starts_after_its_lease_lapsed_never_runs(make_instance: Any) -> None:
    """The engine that committed a task leased to itself reaches its attempt only after the lease
    lapsed (its loop busy, say), and the task was claimed again meanwhile (by any engine, this
    one included): the late attempt is not started, so the body runs once."""
    n = 7000 + len(LATE_BODIES)
    a = make_instance(lease_ttl=1.0)
    define(a, late_one_step, "late_start_wf")
    engine = a.start_engine()
    assert engine is not None
    real_start = engine.activities.start
    late: dict[str, Any] = {}

    def start_late(held: Any, task: Any, *when: Any) -> None:
        if "task" in late:
            real_start(held, task, *when)
            return
        late["task"] = task.id

        def now_start() -> None:
            real_start(held, task, *when)
            late["started"] = True

        engine.runtime.call_later(2.5, now_start)  # the loop reaches it 2.5 s late: past 1 s TTL

    engine.activities.start = start_late  # type: ignore[method-assign]
    run = cn.start("late_start_wf", {"n": n}, instance=a)  # its task is claimed again once the lease lapsed
    assert cn.wait(run.id, timeout=30, instance=a) == n + 1
    eventually(lambda: late.get("started") and late["task"] not in engine.activities.inflight,
               what="the late attempt started and ended")
    assert len(LATE_BODIES[n]) == 1, LATE_BODIES[n]


SLOW_COMMIT_BODIES: dict[int, int] = {}


@cn.activity(name="slow_commit.body", timeout=30)  # on the pool: its outcome goes to the loop
def slow_commit_body(n: int) -> int:
    SLOW_COMMIT_BODIES[n] = SLOW_COMMIT_BODIES.get(n, 0) + 1
    return n * 2


async def slow_commit_wf(n: int) -> int:
    return await slow_commit_body(n)


@pytest.mark.stores("postgres")
def test_an_outcome_waiting_for_its_wake_keeps_its_task_lease(make_instance: Any) -> None:
    """The attempt ended, and the wake that journals its outcome takes three lease TTLs to
    commit (a busy database, a queue of wakes): the task's lease is renewed meanwhile, so the
    other engine never claims the task and the body runs once."""
    n = 9000 + len(SLOW_COMMIT_BODIES)
    a = make_instance(lease_ttl=1.0, heartbeat=0.2)
    define(a, slow_commit_wf, "slow_commit_wf")
    engine = a.start_engine()
    assert engine is not None
    gc = engine.group_commit
    real_one = gc._commit_one
    held_back = threading.Event()

    def slow_commit(wake: Any) -> Any:
        if wake.task_outcomes and not held_back.is_set():
            held_back.set()
            threading.Event().wait(3.0)  # the commit of the outcome takes 3 s: three TTLs
        return real_one(wake)

    gc._commit_one = slow_commit
    b = make_instance(lease_ttl=1.0, heartbeat=0.2)
    define(b, slow_commit_wf, "slow_commit_wf")
    b.start_engine()  # polls for claimable tasks all along
    run = cn.start("slow_commit_wf", {"n": n}, instance=a)
    assert cn.wait(run.id, timeout=30, instance=a) == 2 * n
    assert held_back.is_set()
    assert SLOW_COMMIT_BODIES[n] == 1


def test_a_journaled_outcome_leaves_no_lease_to_renew(make_instance: Any) -> None:
    """Once the wake that journals an attempt's outcome is committed, the engine renews that
    task's lease no more: it is dropped then, not at the next heartbeat (which, with many
    attempts ending between two beats, would renew thousands of finished tasks each time)."""
    inst = make_instance(lease_ttl=30.0)  # heartbeat every 10 s: none comes during this test
    define(inst, slow_commit_wf, "journaled_outcome_wf")
    engine = inst.start_engine()
    assert engine is not None
    n = 9500 + len(SLOW_COMMIT_BODIES)
    run = cn.start("journaled_outcome_wf", {"n": n}, instance=inst)
    assert cn.wait(run.id, timeout=30, instance=inst) == 2 * n
    assert engine.activities.leases() == {}
