"""Engine behaviour, written once and run on two stores.

``tests/unit/test_engine_memory.py`` runs these against the in-memory store and
``tests/integration/test_engine_postgres.py`` against real PostgreSQL (both servers). Each
module provides the fixtures ``make_instance(name=None, **settings) -> Instance`` (instances
sharing one database/store; closed after the test) and ``clock`` (a VirtualClock).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

import continuum_nb as cn
from continuum_nb import telemetry
from continuum_nb.engine.clock import VirtualClock
from continuum_nb.workflow import WorkflowDef


def eventually(cond: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Wait for ``cond()`` to be truthy, with a deadline (never a fixed sleep)."""
    end = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def types(inst: cn.Instance, run: cn.Run) -> list[str]:
    return [e.event_type for e in cn.api.events(run.id, instance=inst)]


def journal(inst: cn.Instance, run: cn.Run) -> list[Any]:
    return cn.api.events(run.id, instance=inst)


def suspended_on(inst: cn.Instance, run: cn.Run, event_type: str) -> bool:
    info = cn.api.get_run(run.id, instance=inst)
    evs = journal(inst, run)
    return info.state == "suspended" and bool(evs) and evs[-1].event_type == event_type


def define(inst: cn.Instance, fn: Any, name: str | None = None) -> WorkflowDef:
    """Register ``fn`` in this instance only (tests must not leak definitions into others)."""
    wf = WorkflowDef(fn, name=name or fn.__name__)
    inst.registry.register(wf)
    return wf


class Recorder:
    def __init__(self, *events: tuple[str, ...]) -> None:
        self.id = f"rec-{uuid.uuid4().hex[:8]}"
        self.seen: list[tuple[tuple[str, ...], dict[str, Any], dict[str, Any]]] = []
        self._lock = threading.Lock()
        telemetry.attach(self.id, list(events), self)

    def __call__(self, event: tuple[str, ...], meas: dict[str, Any], meta: dict[str, Any]) -> None:
        with self._lock:
            self.seen.append((event, meas, meta))

    def names(self) -> list[tuple[str, ...]]:
        with self._lock:
            return [e for e, _, _ in self.seen]

    def close(self) -> None:
        telemetry.detach(self.id)


# ------------------------------------------------------------------------------------------------
# activities
# ------------------------------------------------------------------------------------------------

_flaky_calls: dict[str, int] = {}


@cn.activity(name="cases.flaky", retry=cn.Retry(max_attempts=3, backoff="constant", base=cn.seconds(0.01)))
def flaky(key: str, fail_times: int) -> dict[str, Any]:
    n = _flaky_calls.get(key, 0) + 1
    _flaky_calls[key] = n
    if n <= fail_times:
        raise RuntimeError(f"attempt {n} fails")
    return {"key": key, "attempt": n}


@cn.activity(name="cases.double")
def double(x: int) -> int:
    return 2 * x


@cn.activity(name="cases.async_inc")
async def async_inc(x: int) -> int:
    return x + 1


@cn.activity(name="cases.bad_result", retry=cn.Retry(max_attempts=1))
def bad_result() -> Any:
    return {"when": object()}


@cn.activity(name="cases.slow", timeout=cn.seconds(0.2), retry=cn.Retry(max_attempts=1))
def slow(done: list[Any] | None = None) -> str:
    threading.Event().wait(2.0)
    return "late"


_charges: list[str] = []


@cn.activity(name="cases.charge", idempotency_key=lambda order_id, cents: f"charge:{order_id}")
def charge(order_id: str, cents: int) -> dict[str, Any]:
    _charges.append(order_id)
    return {"order_id": order_id, "cents": cents, "n": len(_charges)}


def test_activity_retries_then_succeeds(make_instance: Any) -> None:
    inst = make_instance()
    key = uuid.uuid4().hex

    async def retrying(key: str) -> dict[str, Any]:
        return await flaky(key, 2)

    rec = Recorder(("continuum", "activity", "retried"), ("continuum", "activity", "completed"))
    try:
        run = cn.start(define(inst, retrying), {"key": key}, instance=inst)
        assert cn.wait(run.id, timeout=30, instance=inst) == {"key": key, "attempt": 3}
    finally:
        rec.close()
    done = [e for e in journal(inst, run) if e.event_type == "activity_completed"]
    assert done[0].payload["attempts"] == 3
    assert rec.names().count(("continuum", "activity", "retried")) == 2
    assert types(inst, run) == ["activity_scheduled", "activity_completed"]  # retries are not journaled


def test_activity_failure_is_catchable_in_the_workflow(make_instance: Any) -> None:
    inst = make_instance()
    key = uuid.uuid4().hex

    async def catching(key: str) -> str:
        try:
            await flaky(key, 99)
        except cn.ActivityFailed as exc:
            return f"caught after {exc.attempts}: {exc.activity}"
        return "not reached"

    run = cn.start(define(inst, catching), {"key": key}, instance=inst)
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


def test_gather_raises_the_first_failure_after_all_finish(make_instance: Any) -> None:
    inst = make_instance()
    key = uuid.uuid4().hex

    async def mixed(key: str) -> str:
        try:
            await cn.gather(double(1), flaky(key, 99))
        except cn.ActivityFailed as exc:
            return exc.activity or ""
        return "no"

    run = cn.start(define(inst, mixed), {"key": key}, instance=inst)
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
# signals and timers
# ------------------------------------------------------------------------------------------------


async def approval(wait_first: float) -> Any:
    await cn.timer(cn.seconds(wait_first))
    try:
        return await cn.signal("approve", timeout=cn.hours(1))
    except cn.SignalTimeout:
        return "expired"


def test_signal_sent_before_the_await_journals_only_signal_received(make_instance: Any, clock: VirtualClock) -> None:
    inst = make_instance()
    run = cn.start(define(inst, approval), {"wait_first": 3600}, instance=inst)
    eventually(lambda: suspended_on(inst, run, "timer_started"), what="timer")
    cn.signal(run.id, "approve", {"by": "ana"}, instance=inst)  # before the await
    clock.advance(cn.hours(2))
    assert cn.wait(run.id, timeout=30, instance=inst) == {"by": "ana"}
    ts = types(inst, run)
    assert ts == ["timer_started", "timer_fired", "signal_received"]  # no signal_awaited, no timeout timer
    received = journal(inst, run)[-1].payload
    assert received["awaited_seq"] is None


def test_signal_after_the_await(make_instance: Any, clock: VirtualClock) -> None:
    inst = make_instance()
    run = cn.start(define(inst, approval), {"wait_first": 0}, instance=inst)
    clock.advance(cn.seconds(1))
    eventually(lambda: suspended_on(inst, run, "signal_awaited"), what="signal_awaited")
    cn.signal(run.id, "approve", [1, 2, 3], instance=inst)
    assert cn.wait(run.id, timeout=30, instance=inst) == [1, 2, 3]
    evs = journal(inst, run)
    assert [e.event_type for e in evs] == ["timer_started", "timer_fired", "signal_awaited", "signal_received"]
    assert evs[-1].payload["awaited_seq"] == evs[-2].seq
    assert evs[-2].payload["timeout_s"] == 3600


def test_signal_timeout(make_instance: Any, clock: VirtualClock) -> None:
    inst = make_instance()
    run = cn.start(define(inst, approval), {"wait_first": 0}, instance=inst)
    clock.advance(cn.seconds(1))
    eventually(lambda: suspended_on(inst, run, "signal_awaited"), what="signal_awaited")
    clock.advance(cn.hours(2))
    assert cn.wait(run.id, timeout=30, instance=inst) == "expired"
    evs = journal(inst, run)
    assert evs[-1].event_type == "timer_fired" and evs[-1].payload["started_seq"] == evs[-2].seq
    with pytest.raises(cn.RunNotActive):
        cn.signal(run.id, "approve", {"late": True}, instance=inst)


def test_signals_are_fifo_per_name_and_never_lost(make_instance: Any, clock: VirtualClock) -> None:
    inst = make_instance()

    async def collect(n: int) -> list[Any]:
        await cn.timer(cn.hours(1))
        return [await cn.signal("item") for _ in range(n)]

    run = cn.start(define(inst, collect), {"n": 4}, instance=inst)
    eventually(lambda: suspended_on(inst, run, "timer_started"), what="timer")
    for i in range(3):
        cn.signal(run.id, "item", i, instance=inst)
    cn.signal(run.id, "other", "x", instance=inst)
    clock.advance(cn.hours(2))
    eventually(lambda: suspended_on(inst, run, "signal_awaited"), what="4th await")
    cn.signal(run.id, "item", 3, instance=inst)
    assert cn.wait(run.id, timeout=30, instance=inst) == [0, 1, 2, 3]


def test_durable_timer_with_a_virtual_clock(make_instance: Any, clock: VirtualClock) -> None:
    inst = make_instance()

    async def sleepy() -> str:
        start = cn.now()
        await cn.timer(cn.days(3))
        return str(cn.now() - start)

    run = cn.start(define(inst, sleepy), instance=inst)
    eventually(lambda: suspended_on(inst, run, "timer_started"), what="timer")
    with pytest.raises(TimeoutError):
        cn.wait(run.id, timeout=0.3, instance=inst)
    clock.advance(cn.days(3))
    assert cn.wait(run.id, timeout=30, instance=inst).startswith("3 days")


def test_side_effects_return_journaled_values_on_replay(make_instance: Any, clock: VirtualClock) -> None:
    # release_after=0: every suspension drops the coroutine, so the next wake replays from the top.
    inst = make_instance(release_after=0)

    async def effects() -> list[Any]:
        first = [str(cn.uuid4()), cn.random(), cn.now().isoformat(), cn.today().isoformat(),
                 cn.side_effect(lambda: {"n": 42})]
        await cn.timer(cn.minutes(1))
        return first

    run = cn.start(define(inst, effects), instance=inst)
    eventually(lambda: suspended_on(inst, run, "timer_started"), what="timer")
    assert cn.api.get_run(run.id, instance=inst).lease_owner is None  # released: it will replay
    clock.advance(cn.minutes(2))
    result = cn.wait(run.id, timeout=30, instance=inst)
    recorded = [e.payload["value"] for e in journal(inst, run) if e.event_type == "side_effect"]
    assert result == recorded
    assert [e.payload["kind"] for e in journal(inst, run) if e.event_type == "side_effect"] == [
        "uuid4", "random", "now", "today", "side_effect"]


# ------------------------------------------------------------------------------------------------
# cancel, wait, bad input
# ------------------------------------------------------------------------------------------------


def test_cancel(make_instance: Any) -> None:
    inst = make_instance()
    run = cn.start(define(inst, approval), {"wait_first": 3600}, instance=inst)
    eventually(lambda: suspended_on(inst, run, "timer_started"), what="timer")
    cn.cancel(run.id, instance=inst)
    with pytest.raises(cn.RunCancelled):
        cn.wait(run.id, timeout=10, instance=inst)
    info = cn.api.get_run(run.id, instance=inst)
    assert info.state == "cancelled" and info.completed_at is not None
    assert inst.store.pending_timers(uuid.UUID(run.id)) == []
    with pytest.raises(cn.RunNotActive):
        cn.cancel(run.id, instance=inst)
    with pytest.raises(cn.RunNotActive):
        cn.signal(run.id, "approve", 1, instance=inst)


def test_unknown_runs_and_workflows(make_instance: Any) -> None:
    inst = make_instance()
    missing = str(uuid.uuid4())
    for call in (lambda: cn.signal(missing, "x", 1, instance=inst), lambda: cn.cancel(missing, instance=inst),
                 lambda: cn.wait(missing, timeout=1, instance=inst), lambda: cn.resume(missing, instance=inst)):
        with pytest.raises(cn.RunNotFound, match=missing):
            call()
    with pytest.raises(cn.RunNotFound, match="not a run id"):
        cn.wait("nope", instance=inst)
    with pytest.raises(cn.WorkflowNotFound, match="no_such_workflow"):
        cn.start("no_such_workflow", {}, instance=inst)


def test_non_json_input_and_payloads_write_nothing(make_instance: Any) -> None:
    inst = make_instance()

    async def takes(x: Any) -> Any:
        return await cn.signal("s")

    wf = define(inst, takes)
    with pytest.raises(TypeError, match=r"input of the run is not JSON: \['x'\]\[0\] is a builtins.set"):
        cn.start(wf, {"x": [{1, 2}]}, instance=inst)
    assert cn.runs(workflow="takes", instance=inst) == []
    run = cn.start(wf, {"x": 1}, instance=inst)
    with pytest.raises(TypeError, match="payload of signal 's' is not JSON"):
        cn.signal(run.id, "s", {"when": object()}, instance=inst)
    assert inst.store.pending_signals(uuid.UUID(run.id)) == []
    cn.cancel(run.id, instance=inst)


def test_awaiting_a_foreign_awaitable_fails_clearly(make_instance: Any) -> None:
    import asyncio

    inst = make_instance()

    async def sleeper() -> None:
        await asyncio.sleep(1)

    run = cn.start(define(inst, sleeper), instance=inst)
    with pytest.raises(cn.RunFailed, match="not a continuum awaitable"):
        cn.wait(run.id, timeout=30, instance=inst)


def test_a_broken_telemetry_handler_does_not_break_the_engine(make_instance: Any) -> None:
    inst = make_instance()

    def broken(*_: Any) -> None:
        raise RuntimeError("handler bug")

    telemetry.attach("broken-handler", [("continuum", "run", "completed"), ("continuum", "activity", "started")], broken)
    try:
        async def simple() -> int:
            return await double(21)

        run = cn.start(define(inst, simple), instance=inst)
        assert cn.wait(run.id, timeout=30, instance=inst) == 42
    finally:
        telemetry.detach("broken-handler")


def test_commits_per_workflow_is_steps_plus_one(make_instance: Any) -> None:
    inst = make_instance()
    counts = {"create_run": 0, "commit_wake": 0, "complete_task": 0}
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
    assert counts == {"create_run": 1, "commit_wake": 3, "complete_task": 0}  # S + 1 = 4 commits


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


def test_waiting_on_a_run_finished_here_needs_no_read(make_instance: Any) -> None:
    """This engine hands the outcome to local waiters, also to one that comes after the end."""
    inst = make_instance()
    reads = {"get_run": 0}
    store = inst.store
    original = store.get_run

    def counting(*a: Any, **k: Any) -> Any:
        reads["get_run"] += 1
        return original(*a, **k)

    store.get_run = counting  # type: ignore[method-assign]

    async def two_steps(x: int) -> int:
        return await double(await double(x))

    wf = define(inst, two_steps)
    for i in range(10):
        run = cn.start(wf, {"x": i}, instance=inst)
        assert cn.wait(run.id, timeout=30, instance=inst) == 4 * i
        assert cn.wait(run.id, timeout=30, instance=inst) == 4 * i  # after the end
    assert reads["get_run"] == 0


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


# ------------------------------------------------------------------------------------------------
# versions, drift, resume, upgrade
# ------------------------------------------------------------------------------------------------


async def v1(order_id: str) -> Any:
    a = await double(1)
    decision = await cn.signal("go")
    return [a, decision]


async def v1_refactored(order_id: str) -> Any:
    # same effects, different code
    first = await double(1)
    return [first, await cn.signal("go")]


async def v2_incompatible(order_id: str) -> Any:
    b = await async_inc(1)  # a different first effect: drift
    return [b, await cn.signal("go")]


def _start_v1(make_instance: Any) -> tuple[Any, cn.Run]:
    inst = make_instance()
    run = cn.start(define(inst, v1, "versioned"), {"order_id": "A"}, instance=inst)
    eventually(lambda: suspended_on(inst, run, "signal_awaited"), what="suspension")
    eventually(lambda: cn.api.get_run(run.id, instance=inst).lease_owner is None, what="release")
    inst.stop()
    return inst, run


def test_run_continues_on_a_compatible_new_version(make_instance: Any) -> None:
    old, run = _start_v1(make_instance)
    v1_hash = cn.api.get_run(run.id, instance=old).version_hash
    new = make_instance()  # a fresh engine that only has the refactored code
    wf = define(new, v1_refactored, "versioned")
    cn.signal(run.id, "go", "yes", instance=new)
    assert cn.wait(run.id, timeout=30, instance=new) == [2, "yes"]
    assert cn.api.get_run(run.id, instance=new).version_hash == wf.version_hash != v1_hash


def test_drift_then_resume_after_the_fix(make_instance: Any) -> None:
    old, run = _start_v1(make_instance)
    before = types(old, run)
    bad = make_instance()
    define(bad, v2_incompatible, "versioned")
    cn.signal(run.id, "go", "yes", instance=bad)
    with pytest.raises(cn.DriftError, match="cases.async_inc") as info:
        cn.wait(run.id, timeout=30, instance=bad)
    err = info.value.error
    assert err["expected"]["target"] == "cases.double" and err["actual"]["target"] == "cases.async_inc"
    assert err["expected"]["seq"] == 1
    assert types(bad, run) == before  # nothing appended
    assert cn.api.get_run(run.id, instance=bad).state == "drifted"
    bad.stop()
    fixed = make_instance()
    define(fixed, v1_refactored, "versioned")
    cn.resume(run.id, instance=fixed)
    assert cn.wait(run.id, timeout=30, instance=fixed) == [2, "yes"]
    with pytest.raises(cn.RunNotActive):
        cn.resume(run.id, instance=fixed)


def test_upgrade_only_when_the_journal_replays(make_instance: Any) -> None:
    old, run = _start_v1(make_instance)
    old_hash = cn.api.get_run(run.id, instance=old).version_hash
    inst = make_instance(run_engine=False)
    define(inst, v2_incompatible, "versioned")
    assert cn.upgrade(run.id, instance=inst, check_only=True) is False
    with pytest.raises(cn.DriftError):
        cn.upgrade(run.id, instance=inst)
    assert cn.api.get_run(run.id, instance=inst).version_hash == old_hash
    good = define(inst, v1_refactored, "versioned")
    assert cn.upgrade(run.id, instance=inst, check_only=True) is True
    assert cn.api.get_run(run.id, instance=inst).version_hash == old_hash  # check_only changes nothing
    assert cn.upgrade(run.id, instance=inst) is True
    info = cn.api.get_run(run.id, instance=inst)
    assert info.version_hash == good.version_hash and info.state == "suspended"
    assert [r.id for r in cn.api.outdated_runs("versioned", instance=inst)] == []


# ------------------------------------------------------------------------------------------------
# telemetry and memory
# ------------------------------------------------------------------------------------------------


def test_telemetry_covers_the_lifecycle(make_instance: Any, clock: VirtualClock) -> None:
    inst = make_instance()
    key = uuid.uuid4().hex
    rec = Recorder(*telemetry.EVENTS)

    async def tour(key: str) -> Any:
        await flaky(key, 1)
        await cn.timer(cn.seconds(5))
        await charge(key, 1)
        await charge(key, 1)  # same idempotency key: a hit
        return await cn.signal("go", timeout=cn.hours(1))

    try:
        run = cn.start(define(inst, tour), {"key": key}, instance=inst)
        eventually(lambda: suspended_on(inst, run, "timer_started"), what="timer")
        clock.advance(cn.seconds(6))
        eventually(lambda: suspended_on(inst, run, "signal_awaited"), what="signal wait")
        cn.signal(run.id, "go", 1, instance=inst)
        assert cn.wait(run.id, timeout=30, instance=inst) == 1
    finally:
        rec.close()
    mine = [(e, m, meta) for e, m, meta in rec.seen if meta.get("run_id") == run.id]
    names = {e for e, _, _ in mine}
    for expected in [("continuum", "run", n) for n in ("started", "claimed", "suspended", "completed")] + [
        ("continuum", "activity", n) for n in ("scheduled", "started", "completed", "retried", "idempotency_hit")
    ] + [("continuum", "timer", "scheduled"), ("continuum", "timer", "fired"),
         ("continuum", "signal", "sent"), ("continuum", "signal", "awaited"), ("continuum", "signal", "received")]:
        assert expected in names, (expected, sorted(names))
    for event, measurements, meta in mine:
        assert meta["instance"] == inst.name, event
        if event[1] == "run" and event[2] in ("suspended", "completed"):
            assert meta["workflow"] == "tour" and measurements["duration"] >= 0


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
