"""Group commit: wakes of several runs that are ready at the same moment share one commit.

The drive threads call ``GroupCommit.commit(wake)``. At most ``max_in_flight`` commits of this
engine are in flight at a time (``MAX_IN_FLIGHT``, 2, unless set: ``GroupCommit.max_in_flight``):

- fewer in flight: the wake is committed at once, alone, through ``Store.commit_wake`` (a lone
  run pays no wait for a batch to fill, and one after another every wake is still its own
  single-statement commit);
- all slots busy: the wake queues. When a commit in flight returns, its thread hands the queue
  (up to ``batch_size`` wakes) to the first thread waiting in it, which commits them all with
  ``Store.commit_wakes`` (one round trip, one transaction) while the next batch forms.

Two commits in flight, not one: the server works on one while the other's reply travels and
the client builds the next, so a 2-core machine keeps both cores busy. ``max_in_flight`` can be
changed on a running engine (``instance.engine.group_commit.max_in_flight = n``, e.g. by
benchmarks/throughput.py ``--commits-in-flight``): it is not a setting, because measurements
with 2, 4 and 8 showed no gain on 2 cores (docs/benchmarks.md#group-commit).

Each wake is still fenced by its own run's lease token (the store checks each one); a wake that
is refused gets its own exception, and the others commit. An error of the whole call (the
database unavailable, the connection lost mid-commit) goes to every wake of that batch, each
of which is then retried on its own by its drive (``Drives._drive_failed``).
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Sequence

from ..store.base import Store, Wake, WakeResult

__all__ = ["GroupCommit"]

#: Commits of one engine in flight at once (each alone or a batch).
MAX_IN_FLIGHT = 2

#: Telemetry of a group commit: ``{"wakes": n, "duration": ns}``.
BATCH_EVENT = ("continuum", "wake", "batch")


class _Waiter:
    """One wake waiting in the queue, and what became of it."""

    __slots__ = ("batch", "done", "error", "result", "wake")

    def __init__(self, wake: Wake) -> None:
        self.wake = wake
        self.done = _OneShot()
        self.result: WakeResult | None = None
        self.error: BaseException | None = None
        #: Set for the waiter that is to lead the next batch (its own wake first).
        self.batch: list[_Waiter] | None = None


class _OneShot:
    """Set once, waited for once: a bare lock, held until ``set``. ``threading.Event`` builds a
    condition and a lock per wait; every queued wake waits for one, so this is on the hot path."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()

    def set(self) -> None:
        self._lock.release()

    def wait(self) -> None:
        self._lock.acquire()


class GroupCommit:
    """``commit(wake)``: as ``Store.commit_wake``, from any thread, sharing commits."""

    def __init__(
        self,
        store: Store,
        batch_size: int,
        emit: Callable[[tuple[str, ...], dict[str, int]], None] | None = None,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        # The store's methods are looked up at each call (a wrapped store method is honoured).
        self._commit_one: Callable[[Wake], WakeResult] = lambda wake: store.commit_wake(wake)
        self._commit_many: Callable[[Sequence[Wake]], list[WakeResult | Exception]] = (
            lambda wakes: store.commit_wakes(wakes))
        self._batch_size = max(1, batch_size)
        self._emit = emit
        self._lock = threading.Lock()
        self._queue: list[_Waiter] = []
        self._max_in_flight = _positive(max_in_flight)
        self._in_flight = 0  # commits of this engine in flight (alone or batches)

    @property
    def max_in_flight(self) -> int:
        """Commits of this engine in flight at once (each alone or a batch)."""
        return self._max_in_flight

    @max_in_flight.setter
    def max_in_flight(self, value: int) -> None:
        # Under the lock: a commit deciding whether to lead reads it there. Lowered, the
        # commits already in flight finish and no new one leads until fewer are in flight;
        # raised, the next wake leads at once and the queue is handed on as commits return.
        checked = _positive(value)
        with self._lock:
            self._max_in_flight = checked

    def commit(self, wake: Wake) -> WakeResult:
        if self._batch_size == 1:
            return self._commit_one(wake)
        with self._lock:
            lead = self._in_flight < self._max_in_flight
            if lead:
                self._in_flight += 1
            else:
                waiter = _Waiter(wake)
                self._queue.append(waiter)
        if lead:
            try:
                return self._commit_one(wake)
            finally:
                self._hand_off()
        waiter.done.wait()
        batch, waiter.batch = waiter.batch, None  # (the batch holds this waiter: no cycle left)
        if batch is not None:
            try:
                self._run(batch)
            finally:
                self._hand_off()
        if waiter.error is not None:
            raise waiter.error
        assert waiter.result is not None
        return waiter.result

    def _hand_off(self) -> None:
        """(the thread whose commit just returned) The queue to its first waiter, or a slot freed."""
        with self._lock:
            if not self._queue:
                self._in_flight -= 1
                return
            batch = self._queue[:self._batch_size]
            del self._queue[:self._batch_size]
        leader = batch[0]
        leader.batch = batch
        leader.done.set()

    def _run(self, batch: list[_Waiter]) -> None:
        """(the leader's thread) Commit ``batch`` and tell each of its other waiters."""
        t0 = time.perf_counter_ns()
        try:
            if len(batch) == 1:
                batch[0].result = self._commit_one(batch[0].wake)
            else:
                outcomes = self._commit_many([w.wake for w in batch])
                for w, outcome in zip(batch, outcomes, strict=True):
                    if isinstance(outcome, BaseException):
                        w.error = outcome
                    else:
                        w.result = outcome
        except BaseException as exc:
            for i, w in enumerate(batch):
                # Each thread raises its own copy: one exception object raised in several
                # threads at once would mix their tracebacks.
                w.error = exc if i == 0 else _copy(exc)
        finally:
            for w in batch[1:]:
                w.done.set()
        if self._emit is not None and len(batch) > 1:
            self._emit(BATCH_EVENT, {"wakes": len(batch), "duration": time.perf_counter_ns() - t0})


def _positive(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"max_in_flight must be a whole number of at least 1, not {value!r}")
    return value


def _copy(exc: BaseException) -> BaseException:
    try:
        return copy.copy(exc)
    except Exception:
        return exc
