"""Held runs: the runs (with their live coroutines) an engine keeps in memory between wakes.
Long waits do not pin memory (the cache is bounded); a run that ended is let go by its drive
thread; a held run whose wake notification was lost is woken by the heartbeat; a wake that dies
of a BaseException, or that races the drive thread letting the run go, leaves nothing behind.

These tests reach engine internals (``engine.held``, ``engine.waking``, ``engine.post``,
``engine.drives.running``, ``engine.dispatcher.unlisten()``, ...) on purpose; they are gathered here.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

import continuum_nb as cn
from continuum_nb.engine.clock import VirtualClock
from continuum_nb.workflow import WorkflowDef
from tests.engine.helpers import define, double, eventually, suspended_on


def test_a_run_that_ended_is_forgotten_by_its_drive_thread(make_instance: Any) -> None:
    """A run whose drive ended it leaves the engine there and then: no report is posted to
    the engine loop (which would wake that thread once per run)."""
    import concurrent.futures

    inst = make_instance()

    async def two_steps(x: int) -> int:
        return await double(await double(x))

    wf = define(inst, two_steps)
    engine = inst.start_engine()
    posted: list[str] = []
    original = engine.post

    def recording(fn: Any, *args: Any) -> None:
        posted.append(getattr(fn, "__name__", repr(fn)))
        original(fn, *args)

    engine.post = recording  # what the drive threads post to the loop through
    for i in range(5):
        run = cn.start(wf, {"x": i}, instance=inst)
        assert cn.wait(run.id, timeout=30, instance=inst) == 4 * i
        concurrent.futures.wait(list(engine.drives.running), timeout=30)
        rid = uuid.UUID(run.id)
        assert rid not in engine.held and rid not in engine.waking
    assert "_drive_done" not in posted


def _held_idle_on_a_signal(inst: cn.Instance, wf: WorkflowDef) -> tuple[cn.Run, Any, uuid.UUID]:
    """Start ``wf`` and return once its run awaits a signal, held by the engine and idle."""
    run = cn.start(wf, instance=inst)
    eventually(lambda: suspended_on(inst, run, "signal_awaited"), what="await")
    engine = inst.engine
    assert engine is not None
    rid = uuid.UUID(run.id)
    eventually(lambda: rid in engine.held and rid not in engine.waking, what="held and idle")
    return run, engine, rid


def test_a_held_run_whose_wake_notification_was_lost_is_woken_by_the_heartbeat(
    make_instance: Any, clock: VirtualClock
) -> None:
    inst = make_instance(heartbeat=0.1, release_after=3600)

    async def gated() -> Any:
        # held (due within release_after); its timer is far beyond the test
        return await cn.signal("open", timeout=cn.minutes(30))

    run, engine, rid = _held_idle_on_a_signal(inst, define(inst, gated))
    engine.dispatcher.unlisten()  # from here on the engine hears no NOTIFY
    cn.signal(run.id, "open", "late", instance=inst)
    clock.advance(cn.seconds(1))  # overdue by more than a heartbeat interval
    assert cn.wait(run.id, timeout=30, instance=inst) == "late"


class _NotAnException(BaseException):
    pass


def test_a_wake_that_raises_a_base_exception_does_not_wedge_the_engine(make_instance: Any) -> None:
    """A drive that dies of something that is not an Exception is cleaned up like any failed
    wake: the run leaves memory and is no longer marked waking (else no wake would run again)."""
    inst = make_instance(release_after=3600)

    async def rude() -> Any:
        await cn.signal("go", timeout=cn.minutes(30))
        raise _NotAnException("not an Exception")

    run, engine, rid = _held_idle_on_a_signal(inst, define(inst, rude))
    cn.signal(run.id, "go", None, instance=inst)
    eventually(lambda: rid not in engine.held and rid not in engine.waking, what="dropped after the failed wake")


@pytest.mark.stores("memory")
def test_a_wake_requested_while_the_drive_thread_lets_go_leaves_nothing_behind(make_instance: Any) -> None:
    """The loop's request_wake and a drive thread's let_go_ended can interleave: the loop sees
    the run still waking, the drive thread then drops it from `held` and `waking`, the loop
    marks it woken again. No `waking` entry may survive that: a later claim of the run (a
    drifted run resumed, say) would wait for a wake that never runs."""
    from continuum_nb.engine.held import HeldRun
    from continuum_nb.store.base import RunRecord

    inst = make_instance()
    engine = inst.start_engine()
    assert engine is not None
    rid = uuid.uuid4()
    held = HeldRun(record=RunRecord(id=rid, workflow="w", version_hash="v", state="running", input=None),
                   token=1, wf=None)  # type: ignore[arg-type]

    class LetGoOnCheck(dict):  # the drive thread runs right after the loop's membership test
        def __contains__(self, key: object) -> bool:
            found = dict.__contains__(self, key)
            if found and key == rid:
                assert engine.held.let_go_ended(held, timer_pending=False)
            return found

    engine.held.add(held)
    waking = LetGoOnCheck({rid: False})
    engine.held.waking = waking
    engine.request_wake(rid)
    assert rid not in engine.held
    assert not dict.__contains__(waking, rid)


def test_long_waits_do_not_pin_memory(make_instance: Any) -> None:
    inst = make_instance(max_cached_runs=2, release_after=3600)

    async def parked(i: int) -> Any:
        return await cn.signal("go", timeout=cn.seconds(600))  # short enough to stay cached...

    wf = define(inst, parked)
    runs = [cn.start(wf, {"i": i}, instance=inst) for i in range(6)]
    for r in runs:
        eventually(lambda r=r: suspended_on(inst, r, "signal_awaited"), what="await")
    engine = inst.engine
    assert engine is not None
    eventually(lambda: len(engine.held) <= 2, what="eviction")  # ...but the cache is bounded
    for r in runs:
        cn.signal(r.id, "go", r.id, instance=inst)
    assert [cn.wait(r.id, timeout=30, instance=inst) for r in runs] == [r.id for r in runs]


def test_a_heartbeat_that_fails_does_not_end_the_engine(make_instance: Any) -> None:
    """A renewal that fails with any error (PostgreSQL aborting it to break a deadlock with a
    group commit, say) is logged and the next beat renews: the engine goes on."""
    inst = make_instance(heartbeat=0.1, release_after=3600)  # the run stays held: beats renew it
    store = inst.store
    real = store.renew_leases
    failures: list[int] = []

    def renew_once_broken(*a: Any, **k: Any) -> Any:
        if not failures:
            failures.append(1)
            raise RuntimeError("deadlock detected")
        return real(*a, **k)

    store.renew_leases = renew_once_broken

    async def gated() -> Any:
        return await cn.signal("open", timeout=cn.minutes(30))

    run = cn.start(define(inst, gated), instance=inst)
    eventually(lambda: failures, what="a failed heartbeat")
    cn.signal(run.id, "open", "after", instance=inst)
    assert cn.wait(run.id, timeout=30, instance=inst) == "after"
    engine = inst.engine
    assert engine is not None and engine.running


@cn.activity(name="held_runs.add")
def _add(a: int, b: int) -> int:
    return a + b


def test_a_run_leaves_no_reference_cycle_behind(make_instance: Any) -> None:
    """What a run's wakes build (its replayer, coroutine, journal, held run) is freed when the
    run ends, by reference counting: nothing of it waits for the cyclic garbage collector, which
    would otherwise run over the whole heap every few hundred runs on a busy engine."""
    import gc

    inst = make_instance()

    async def steps(x: int) -> int:
        y = await _add(x, 1)
        got = await cn.signal("more", timeout=cn.seconds(600))
        return await _add(y, got)

    wf = define(inst, steps)

    def run_some(n: int, base: int) -> None:
        runs = [cn.start(wf, {"x": base + i}, instance=inst) for i in range(n)]
        for r in runs:
            eventually(lambda r=r: suspended_on(inst, r, "signal_awaited"), what="await")
            cn.signal(r.id, "more", 10, instance=inst)
        assert [cn.wait(r.id, timeout=30, instance=inst) for r in runs] == [base + i + 11 for i in range(n)]

    run_some(5, 0)  # warm: imports, pools, caches
    gc.collect()
    gc.disable()  # from here, unreachable cycles accumulate until collected below
    try:
        run_some(40, 100)
        found = gc.collect()
    finally:
        gc.enable()
    # Threads of the engine and the store may leave a stray cycle (an exception's traceback, say);
    # a cycle per run would be 40 at least.
    assert found < 40, f"{found} objects in reference cycles after 40 runs"
