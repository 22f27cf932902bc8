"""Activity attempts: executed off the engine loop, with a timeout, retries with backoff, and
idempotency keys (a stored result is returned without running the body).

An attempt starts only after the ``activity_scheduled`` event it depends on is committed. Its
outcome goes to the run's next wake when this engine holds the run (one commit for outcome +
next step), else to the task row, fenced by the task lease.

Two ways to run one: ``attempt_inline`` on the drive thread that just committed the schedule (a
plain function without a timeout that the run alone waits on: no thread hand-off at all), and
``run_attempt`` on the activity pool (async functions, timeouts, several at once, tasks claimed
from the store). Both hold ``Activities.bodies`` while the body runs, so
``activity_concurrency`` bounds them together.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from ..definitions.activity import ACTIVITIES, ActivityDef
from ..replay.outcomes import LiveOutcome, error_dict
from ..store.base import NewTask, TaskOutcome, TaskRecord
from ..store.payloads import check_json
from ..telemetry import _active as telemetry_active
from .held import HeldRun
from .part import Part, Surroundings

__all__ = ["Activities"]

log = logging.getLogger("continuum_nb.engine")


def _call_async(fn: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    return asyncio.run(fn(*args, **kwargs))


class BodyExited(Exception):
    """An activity body raised a BaseException that is not an Exception (``SystemExit`` from
    ``sys.exit()``, ``KeyboardInterrupt``, ...): carried out of the pool thread as an ordinary
    failure, so that asyncio never re-raises it on the engine loop. The attempt fails with the
    original's type and message: user code is recorded, never obeyed."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(f"{type(original).__name__}: {original}")
        self.original = original


class LeaseExpired(Exception):
    """An attempt waited (for a slot, or while this process was stopped) past its task lease:
    the task may be another engine's by now, so its body must not start here."""


def _error_of(exc: BaseException) -> dict[str, Any]:
    return error_dict(exc.original if isinstance(exc, BodyExited) else exc)


def inline_eligible(act: ActivityDef | None) -> bool:
    """Whether an attempt of ``act`` may run on the thread that committed its schedule: a plain
    function without a timeout (a timeout needs the activity pool, where the wait can give up)."""
    return act is not None and not act.is_async and act.timeout is None


def _retry_delay(act: ActivityDef | None, record: TaskRecord, exc: BaseException) -> float | None:
    """Seconds until the next attempt, or None when this was the last one (no attempts left, or
    the error is one the policy does not retry: ``cn.NonRetryableError``, ``non_retryable``)."""
    if act is None or record.attempt >= act.retry.max_attempts:
        return None
    if not act.retry.retries(exc.original if isinstance(exc, BodyExited) else exc):
        return None
    return act.retry.delay(record.attempt)


def _completed(record: TaskRecord, result: Any, hit: bool) -> LiveOutcome:
    """The outcome of an attempt that returned ``result`` (or found it stored: ``hit``)."""
    if not hit:
        check_json(result, f"result of activity {record.activity!r}")
    return LiveOutcome("completed", result=result, attempts=record.attempt, idempotency_hit=hit,
                       task_id=record.id, local=True)


def _failed(record: TaskRecord, err: dict[str, Any]) -> LiveOutcome:
    return LiveOutcome("failed", error=err, attempts=record.attempt, task_id=record.id, local=True)


class Activities(Part):
    """Runs activity attempts for one engine and books what runs where."""

    def __init__(self, surroundings: Surroundings) -> None:
        super().__init__(surroundings)
        config, runtime = self._config, self._runtime
        self.slots = config.activity_concurrency
        #: task id -> task lease token, for the attempts running on this engine (renewed by the
        #: heartbeat). Written on the loop and by the thread that runs an inline attempt.
        self.inflight: dict[uuid.UUID, int] = {}
        #: task id -> lease token, for attempts that ended here whose outcome is not journaled
        #: yet (it waits in the run for its next wake, or to be written to the task row): the
        #: lease is still renewed, or another engine could claim the task meanwhile and run the
        #: body again. Dropped once the wake that journals it is committed (Runner), its outcome
        #: was written to the task row, or a renewal finds the task no longer leased to this
        #: engine. Not counted against the slots.
        self._ended: dict[uuid.UUID, int] = {}
        #: task id -> time.monotonic() by which its lease lapses unless renewed (the heartbeat
        #: pushes it): a body never starts past it. Monotonic time runs on while the process is
        #: stopped (SIGSTOP), which is exactly when leases lapse unnoticed.
        self._lease_until: dict[uuid.UUID, float] = {}
        #: Held while an activity body runs, inline or on the activity pool: at most
        #: activity_concurrency bodies at once in this engine.
        self.bodies = threading.BoundedSemaphore(config.activity_concurrency)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=config.activity_concurrency, thread_name_prefix=f"{runtime.name}-act"
        )

    def knows(self, name: str) -> bool:
        """Whether this engine runs attempts of ``name`` itself. While stopping it does not:
        tasks created then are left available for other engines."""
        return not self._loop.stopping and name in ACTIVITIES

    def free_slots(self) -> int:
        return self.slots - len(self.inflight)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def start(self, held: HeldRun | None, task: NewTask | TaskRecord, leased_at: float | None) -> None:
        """(loop) An attempt on the activity pool, of a task whose lease this engine took at
        ``leased_at`` (``time.monotonic()`` before the commit or claim that took it)."""
        self._runtime.spawn(self.run_attempt(held, task, leased_at))

    def renewed(self, task_ids: Iterable[uuid.UUID], since: float) -> None:
        """(loop) The heartbeat that started at ``since`` (monotonic) renewed these task leases."""
        until = since + self._config.lease_ttl
        for tid in task_ids:
            if tid in self._lease_until:
                self._lease_until[tid] = until

    def leases(self) -> dict[uuid.UUID, int]:
        """(loop) The task leases the heartbeat renews: attempts running here, and attempts
        ended here whose outcomes are not journaled yet."""
        return {**self._ended, **self.inflight}

    def forget(self, task_id: uuid.UUID) -> None:
        """The task's outcome is committed (or written), or its lease was lost: no longer renewed."""
        self.inflight.pop(task_id, None)
        self._ended.pop(task_id, None)
        self._lease_until.pop(task_id, None)

    def _attempt_ended(self, task_id: uuid.UUID) -> None:
        """The attempt ended with an outcome that is not journaled yet: its slot is free, its
        lease is still renewed until that outcome is committed (``_ended``)."""
        token = self.inflight.pop(task_id, None)
        self._lease_until.pop(task_id, None)
        if token is not None:
            self._ended[task_id] = token

    def _lease_lapsed(self, task_id: uuid.UUID) -> bool:
        until = self._lease_until.get(task_id)
        return until is None or time.monotonic() >= until

    def _guarded(self, call: Callable[[], Any], abandoned: threading.Event, task_id: uuid.UUID) -> Any:
        """A body on the activity pool, counted with the inline ones (activity_concurrency). An
        attempt that timed out while it waited for a slot never starts, nor one whose lease
        lapsed meanwhile."""
        with self.bodies:
            if abandoned.is_set():
                return None
            if self._lease_lapsed(task_id):
                raise LeaseExpired()
            try:
                return call()
            except Exception:
                raise
            except BaseException as exc:  # sys.exit() and friends in user code
                raise BodyExited(exc) from exc

    async def _execute(self, act: ActivityDef, args: list[Any], kwargs: dict[str, Any], task_id: uuid.UUID) -> Any:
        if act.is_async:
            call = functools.partial(_call_async, act.fn, args, kwargs)
        else:
            call = functools.partial(act.fn, *args, **kwargs)
        abandoned = threading.Event()
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._pool, self._guarded, call, abandoned, task_id)
        if act.timeout is None:
            return await fut
        try:
            return await asyncio.wait_for(fut, act.timeout)
        except asyncio.TimeoutError:
            abandoned.set()
            raise TimeoutError(f"activity {act.name!r} timed out after {act.timeout:g}s") from None

    def _as_record(self, held: HeldRun, task: NewTask) -> TaskRecord:
        return TaskRecord(
            id=task.id, run_id=held.run_id, seq=task.seq, activity=task.activity, args=task.args,
            attempt=task.attempt, state="leased", lease_owner=self._owner, lease_token=held.token,
            idempotency_key=task.idempotency_key,
        )

    def _begin(self, held: HeldRun | None, record: TaskRecord, leased_at: float | None) -> dict[str, Any] | None:
        """Book the attempt as in flight on this engine and emit ``activity started``; the
        attempt's telemetry metadata (None when no telemetry handler is attached: then none of the
        attempt's events is emitted). The lease is known to last until ``leased_at`` + TTL, not
        TTL from now: an attempt that waited (the loop or the pool busy) past that is never
        started, as another engine may have claimed the task meanwhile."""
        assert record.lease_token is not None
        self.inflight[record.id] = record.lease_token
        self._lease_until[record.id] = (time.monotonic() if leased_at is None else leased_at) + self._config.lease_ttl
        if held is not None:
            held.inflight.add(record.seq)  # a run with an attempt running here is not released
        if not telemetry_active():
            return None
        meta = {
            "run_id": str(record.run_id), "workflow": held.record.workflow if held is not None else None,
            "activity": record.activity, "attempt": record.attempt, "task_id": str(record.id),
            "trace_context": held.trace_context if held is not None else None,
        }
        self._emit(("continuum", "activity", "started"), {"system_time": time.time_ns()}, meta)
        return meta

    def _stored_result(self, record: TaskRecord, meta: dict[str, Any] | None, found: bool) -> bool:
        if found and meta is not None:
            self._emit(("continuum", "activity", "idempotency_hit"), {},
                       {**meta, "idempotency_key": record.idempotency_key})
        return found

    def _retry(self, record: TaskRecord, err: dict[str, Any], delay: float,
               meta: dict[str, Any] | None, t0: int) -> None:
        """Put the task back for its next attempt (fenced by the task lease; any engine may take it)."""
        self.forget(record.id)
        h = self._held.get(record.run_id)
        if h is not None:
            h.inflight.discard(record.seq)
        # The engine's clock, so a virtual clock (tests) drives the backoff like any timer.
        ok = self._store.retry_task(record, err, self._clock.now() + timedelta(seconds=delay))
        if meta is not None:
            self._emit(("continuum", "activity", "retried"),
                       {"duration": time.perf_counter_ns() - t0, "delay_s": delay},
                       {**meta, "error": err, "lease_ok": ok})
        self._loop.post(self._runtime.call_later, delay, self._loop.kick)

    def _emit_outcome(self, outcome: LiveOutcome, meta: dict[str, Any] | None, t0: int) -> None:
        if meta is None:
            return
        event = "completed" if outcome.state == "completed" else "failed"
        self._emit(("continuum", "activity", event), {"duration": time.perf_counter_ns() - t0},
                   {**meta, "error": outcome.error} if outcome.error else meta)

    def attempt_inline(self, held: HeldRun, task: NewTask, act: ActivityDef, leased_at: float | None) -> bool:
        """Run one attempt of a task the run's last wake just committed, on the calling thread
        (the one that will commit the next wake), and hand its outcome to the run. False when the
        attempt failed and was put back for a retry: then there is no outcome to journal yet."""
        record = self._as_record(held, task)
        meta = self._begin(held, record, leased_at)
        if self._lease_lapsed(record.id):  # the commit took longer than the lease: not ours now
            log.info("attempt of task %s not started: its lease lapsed while its wake committed", record.id)
            self.forget(record.id)
            held.inflight.discard(record.seq)
            return False
        t0 = time.perf_counter_ns()
        hit = False
        try:
            if record.idempotency_key:
                found, result = self._store.get_activity_result(record.activity, record.idempotency_key)
                hit = self._stored_result(record, meta, found)
            if not hit:
                result = act.fn(*record.args.get("args", []), **record.args.get("kwargs", {}))
            outcome = _completed(record, result, hit)
        except BaseException as exc:  # user code: SystemExit etc. fail the attempt, never the thread
            err = error_dict(exc)
            delay = _retry_delay(act, record, exc)
            if delay is not None:
                self._retry(record, err, delay, meta, t0)
                return False
            outcome = _failed(record, err)
        self._attempt_ended(record.id)  # journaled by the wake this thread commits next
        held.outcomes[record.seq] = outcome
        held.outcome_records[record.seq] = record
        held.inflight.discard(record.seq)
        self._emit_outcome(outcome, meta, t0)
        return True

    async def run_attempt(self, held: HeldRun | None, task: NewTask | TaskRecord, leased_at: float | None) -> None:
        """One attempt on the activity pool (async activities, timeouts, and tasks claimed from the
        store); the outcome goes to the run's next wake, or to the task row."""
        if isinstance(task, NewTask):
            assert held is not None
            record = self._as_record(held, task)
        else:
            record = task
        meta = self._begin(held, record, leased_at)
        t0 = time.perf_counter_ns()
        act = ACTIVITIES.get(record.activity)
        hit = False
        try:
            if act is None:
                raise LookupError(f"activity {record.activity!r} is not defined on this engine")
            if record.idempotency_key:
                found, stored = await self._runtime.db(self._store.get_activity_result, record.activity,
                                                       record.idempotency_key)
                hit = self._stored_result(record, meta, found)
                result = stored
            if not hit:
                result = await self._execute(act, list(record.args.get("args", [])),
                                             dict(record.args.get("kwargs", {})), record.id)
            outcome = _completed(record, result, hit)
        except LeaseExpired:
            log.info("attempt of task %s not started: its lease lapsed while it waited", record.id)
            self.forget(record.id)
            if held is not None:
                held.inflight.discard(record.seq)
            return
        except Exception as exc:
            err = _error_of(exc)
            delay = _retry_delay(act, record, exc)
            if delay is not None:
                await self._runtime.db(self._retry, record, err, delay, meta, t0)
                return
            outcome = _failed(record, err)
        self._attempt_ended(record.id)
        if not self._loop.deliver_outcome(record.run_id, record.seq, outcome, record):
            await self.write_outcome(record, record.seq, outcome)
        self._emit_outcome(outcome, meta, t0)

    async def write_outcome(self, record: TaskRecord, seq: int, outcome: LiveOutcome) -> None:
        """(loop) Write a local attempt's outcome to its task row (fenced by the task lease), for a
        run this engine does not (or no longer) hold: whoever runs it next journals it."""
        key = None
        if outcome.state == "completed" and not outcome.idempotency_hit and record.idempotency_key:
            key = (record.activity, record.idempotency_key)
        try:
            ok = await self._runtime.db(
                self._store.complete_task, record,
                TaskOutcome(record.id, outcome.state, outcome.result, outcome.error, key, seq), self._clock.now(),
            )
        except Exception:
            log.warning("could not write the outcome of task %s; it will run again", record.id, exc_info=True)
            return
        finally:
            self.forget(record.id)  # written, refused or lost: its lease is no longer renewed here
        if not ok:
            log.info("outcome of task %s dropped: its lease was lost", record.id)
