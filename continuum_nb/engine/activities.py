"""Activity attempts: executed off the engine loop on the activity pool, with a timeout, retries
with backoff, and idempotency keys (a stored result is returned without running the body).

An attempt starts only after the ``activity_scheduled`` event it depends on is committed. Its
outcome goes to the run's next wake when this engine holds the run (one commit for outcome +
next step), else to the task row, fenced by the task lease.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .._json import check_json
from ..store.base import NewTask, TaskOutcome, TaskRecord
from ..workflow import ACTIVITIES, ActivityDef
from .clock import wall_now
from .replay import LiveOutcome, error_dict

if TYPE_CHECKING:
    from .node import Engine
    from .runner import HeldRun

log = logging.getLogger("continuum_nb.activities")


def _call_async(fn: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    return asyncio.run(fn(*args, **kwargs))


async def _execute(engine: Engine, act: ActivityDef, args: list[Any], kwargs: dict[str, Any]) -> Any:
    assert engine.loop is not None
    if act.is_async:
        call = functools.partial(_call_async, act.fn, args, kwargs)
    else:
        call = functools.partial(act.fn, *args, **kwargs)
    fut = engine.loop.run_in_executor(engine.activity_pool, call)
    if act.timeout is None:
        return await fut
    try:
        return await asyncio.wait_for(fut, act.timeout)
    except asyncio.TimeoutError:
        raise TimeoutError(f"activity {act.name!r} timed out after {act.timeout:g}s") from None


def _as_record(engine: Engine, held: HeldRun, task: NewTask) -> TaskRecord:
    return TaskRecord(
        id=task.id, run_id=held.run_id, seq=task.seq, activity=task.activity, args=task.args,
        attempt=task.attempt, state="leased", lease_owner=engine.owner, lease_token=held.token,
        idempotency_key=task.idempotency_key,
    )


async def run_attempt(engine: Engine, held: HeldRun | None, task: NewTask | TaskRecord) -> None:
    if isinstance(task, NewTask):
        assert held is not None
        record = _as_record(engine, held, task)
    else:
        record = task
    assert record.lease_token is not None
    engine.tasks_inflight[record.id] = record.lease_token
    if held is not None:
        held.inflight.add(record.seq)  # a run with an attempt running here is not released
    workflow = held.record.workflow if held is not None else None
    meta = {
        "run_id": str(record.run_id), "workflow": workflow, "activity": record.activity,
        "attempt": record.attempt, "task_id": str(record.id),
        "trace_context": held.trace_context if held is not None else None,
    }
    engine.emit(("continuum", "activity", "started"), {"system_time": time.time_ns()}, meta)
    t0 = time.perf_counter_ns()
    act = ACTIVITIES.get(record.activity)
    args = list(record.args.get("args", []))
    kwargs = dict(record.args.get("kwargs", {}))
    hit = False
    try:
        if act is None:
            raise LookupError(f"activity {record.activity!r} is not defined on this engine")
        if record.idempotency_key:
            found, stored = await engine.db(engine.store.get_activity_result, record.activity, record.idempotency_key)
            if found:
                hit = True
                result = stored
                engine.emit(("continuum", "activity", "idempotency_hit"), {}, {**meta, "idempotency_key": record.idempotency_key})
        if not hit:
            result = await _execute(engine, act, args, kwargs)
            check_json(result, f"result of activity {record.activity!r}")
        outcome = LiveOutcome("completed", result=result, attempts=record.attempt, idempotency_hit=hit,
                              task_id=record.id, local=True)
    except Exception as exc:
        err = error_dict(exc)
        max_attempts = act.retry.max_attempts if act is not None else 1
        if act is not None and record.attempt < max_attempts:
            delay = act.retry.delay(record.attempt)
            available_at = wall_now() + timedelta(seconds=delay)
            engine.tasks_inflight.pop(record.id, None)
            h = engine.held.get(record.run_id)
            if h is not None:
                h.inflight.discard(record.seq)
            ok = await engine.db(engine.store.retry_task, record, err, available_at)
            engine.emit(("continuum", "activity", "retried"),
                        {"duration": time.perf_counter_ns() - t0, "delay_s": delay},
                        {**meta, "error": err, "lease_ok": ok})
            if engine.loop is not None:
                engine.loop.call_later(delay, engine.kick)
            return
        outcome = LiveOutcome("failed", error=err, attempts=record.attempt, task_id=record.id, local=True)
    engine.tasks_inflight.pop(record.id, None)
    delivered = engine.deliver_outcome(record.run_id, record.seq, outcome, record)
    if not delivered:
        key = None
        if outcome.state == "completed" and not hit and record.idempotency_key:
            key = (record.activity, record.idempotency_key)
        ok = await engine.db(
            engine.store.complete_task, record,
            TaskOutcome(record.id, outcome.state, outcome.result, outcome.error, key, record.seq),
            engine.now(),
        )
        if not ok:
            log.info("outcome of task %s dropped: its lease was lost", record.id)
    event = "completed" if outcome.state == "completed" else "failed"
    engine.emit(("continuum", "activity", event), {"duration": time.perf_counter_ns() - t0},
                {**meta, "error": outcome.error} if outcome.error else meta)
