"""Activity attempts: executed off the engine loop, with a timeout, retries with backoff, and
idempotency keys (a stored result is returned without running the body).

An attempt starts only after the ``activity_scheduled`` event it depends on is committed. Its
outcome goes to the run's next wake when this engine holds the run (one commit for outcome +
next step), else to the task row, fenced by the task lease.

Two ways to run one: ``attempt_inline`` on the drive thread that just committed the schedule (a
plain function without a timeout that the run alone waits on: no thread hand-off at all), and
``run_attempt`` on the activity pool (async functions, timeouts, several at once, tasks claimed
from the store). Both hold ``engine.activity_bodies`` while the body runs, so
``activity_concurrency`` bounds them together.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..store.base import NewTask, TaskRecord
from ..store.payloads import check_json
from ..telemetry import _active as telemetry_active
from ..workflow import ACTIVITIES, ActivityDef
from .clock import wall_now
from .replay import LiveOutcome, error_dict

if TYPE_CHECKING:
    from .node import Engine
    from .runner import HeldRun


def _call_async(fn: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    return asyncio.run(fn(*args, **kwargs))


def _guarded(engine: Engine, call: Any, abandoned: threading.Event) -> Any:
    """A body on the activity pool, counted with the inline ones (activity_concurrency). An
    attempt that timed out while it waited for a slot never starts."""
    with engine.activity_bodies:
        if abandoned.is_set():
            return None
        return call()


async def _execute(engine: Engine, act: ActivityDef, args: list[Any], kwargs: dict[str, Any]) -> Any:
    assert engine.loop is not None
    if act.is_async:
        call = functools.partial(_call_async, act.fn, args, kwargs)
    else:
        call = functools.partial(act.fn, *args, **kwargs)
    abandoned = threading.Event()
    fut = engine.loop.run_in_executor(engine.activity_pool, _guarded, engine, call, abandoned)
    if act.timeout is None:
        return await fut
    try:
        return await asyncio.wait_for(fut, act.timeout)
    except asyncio.TimeoutError:
        abandoned.set()
        raise TimeoutError(f"activity {act.name!r} timed out after {act.timeout:g}s") from None


def _as_record(engine: Engine, held: HeldRun, task: NewTask) -> TaskRecord:
    return TaskRecord(
        id=task.id, run_id=held.run_id, seq=task.seq, activity=task.activity, args=task.args,
        attempt=task.attempt, state="leased", lease_owner=engine.owner, lease_token=held.token,
        idempotency_key=task.idempotency_key,
    )


def _begin(engine: Engine, held: HeldRun | None, record: TaskRecord) -> dict[str, Any] | None:
    """Book the attempt as in flight on this engine and emit ``activity started``; the
    attempt's telemetry metadata (None when no telemetry handler is attached: then none of the
    attempt's events is emitted)."""
    assert record.lease_token is not None
    engine.tasks_inflight[record.id] = record.lease_token
    if held is not None:
        held.inflight.add(record.seq)  # a run with an attempt running here is not released
    if not telemetry_active():
        return None
    meta = {
        "run_id": str(record.run_id), "workflow": held.record.workflow if held is not None else None,
        "activity": record.activity, "attempt": record.attempt, "task_id": str(record.id),
        "trace_context": held.trace_context if held is not None else None,
    }
    engine.emit(("continuum", "activity", "started"), {"system_time": time.time_ns()}, meta)
    return meta


def _stored_result(engine: Engine, record: TaskRecord, meta: dict[str, Any] | None, found: bool) -> bool:
    if found and meta is not None:
        engine.emit(("continuum", "activity", "idempotency_hit"), {}, {**meta, "idempotency_key": record.idempotency_key})
    return found


def _retry_delay(act: ActivityDef | None, record: TaskRecord) -> float | None:
    """Seconds until the next attempt, or None when this was the last one."""
    if act is None or record.attempt >= act.retry.max_attempts:
        return None
    return act.retry.delay(record.attempt)


def _retry(engine: Engine, record: TaskRecord, err: dict[str, Any], delay: float,
           meta: dict[str, Any] | None, t0: int) -> None:
    """Put the task back for its next attempt (fenced by the task lease; any engine may take it)."""
    engine.tasks_inflight.pop(record.id, None)
    h = engine.held.get(record.run_id)
    if h is not None:
        h.inflight.discard(record.seq)
    ok = engine.store.retry_task(record, err, wall_now() + timedelta(seconds=delay))
    if meta is not None:
        engine.emit(("continuum", "activity", "retried"),
                    {"duration": time.perf_counter_ns() - t0, "delay_s": delay},
                    {**meta, "error": err, "lease_ok": ok})
    loop = engine.loop
    if loop is not None:
        try:
            loop.call_soon_threadsafe(loop.call_later, delay, engine.kick)
        except RuntimeError:  # the loop is closed: the engine stopped
            pass


def _emit_outcome(engine: Engine, outcome: LiveOutcome, meta: dict[str, Any] | None, t0: int) -> None:
    if meta is None:
        return
    event = "completed" if outcome.state == "completed" else "failed"
    engine.emit(("continuum", "activity", event), {"duration": time.perf_counter_ns() - t0},
                {**meta, "error": outcome.error} if outcome.error else meta)


def _completed(record: TaskRecord, result: Any, hit: bool) -> LiveOutcome:
    """The outcome of an attempt that returned ``result`` (or found it stored: ``hit``)."""
    if not hit:
        check_json(result, f"result of activity {record.activity!r}")
    return LiveOutcome("completed", result=result, attempts=record.attempt, idempotency_hit=hit,
                       task_id=record.id, local=True)


def _failed(record: TaskRecord, err: dict[str, Any]) -> LiveOutcome:
    return LiveOutcome("failed", error=err, attempts=record.attempt, task_id=record.id, local=True)


def inline_eligible(act: ActivityDef | None) -> bool:
    """Whether an attempt of ``act`` may run on the thread that committed its schedule: a plain
    function without a timeout (a timeout needs the activity pool, where the wait can give up)."""
    return act is not None and not act.is_async and act.timeout is None


def attempt_inline(engine: Engine, held: HeldRun, task: NewTask, act: ActivityDef) -> bool:
    """Run one attempt of a task the run's last wake just committed, on the calling thread
    (the one that will commit the next wake), and hand its outcome to the run. False when the
    attempt failed and was put back for a retry: then there is no outcome to journal yet."""
    record = _as_record(engine, held, task)
    meta = _begin(engine, held, record)
    t0 = time.perf_counter_ns()
    hit = False
    try:
        if record.idempotency_key:
            found, result = engine.store.get_activity_result(record.activity, record.idempotency_key)
            hit = _stored_result(engine, record, meta, found)
        if not hit:
            result = act.fn(*record.args.get("args", []), **record.args.get("kwargs", {}))
        outcome = _completed(record, result, hit)
    except Exception as exc:
        err = error_dict(exc)
        delay = _retry_delay(act, record)
        if delay is not None:
            _retry(engine, record, err, delay, meta, t0)
            return False
        outcome = _failed(record, err)
    engine.tasks_inflight.pop(record.id, None)
    held.outcomes[record.seq] = outcome
    held.outcome_records[record.seq] = record
    held.inflight.discard(record.seq)
    _emit_outcome(engine, outcome, meta, t0)
    return True


async def run_attempt(engine: Engine, held: HeldRun | None, task: NewTask | TaskRecord) -> None:
    """One attempt on the activity pool (async activities, timeouts, and tasks claimed from the
    store); the outcome goes to the run's next wake, or to the task row."""
    if isinstance(task, NewTask):
        assert held is not None
        record = _as_record(engine, held, task)
    else:
        record = task
    meta = _begin(engine, held, record)
    t0 = time.perf_counter_ns()
    act = ACTIVITIES.get(record.activity)
    hit = False
    try:
        if act is None:
            raise LookupError(f"activity {record.activity!r} is not defined on this engine")
        if record.idempotency_key:
            found, stored = await engine.db(engine.store.get_activity_result, record.activity, record.idempotency_key)
            hit = _stored_result(engine, record, meta, found)
            result = stored
        if not hit:
            result = await _execute(engine, act, list(record.args.get("args", [])), dict(record.args.get("kwargs", {})))
        outcome = _completed(record, result, hit)
    except Exception as exc:
        err = error_dict(exc)
        delay = _retry_delay(act, record)
        if delay is not None:
            await engine.db(_retry, engine, record, err, delay, meta, t0)
            return
        outcome = _failed(record, err)
    engine.tasks_inflight.pop(record.id, None)
    delivered = engine.deliver_outcome(record.run_id, record.seq, outcome, record)
    if not delivered:
        await engine.write_outcome(record, record.seq, outcome)
    _emit_outcome(engine, outcome, meta, t0)
