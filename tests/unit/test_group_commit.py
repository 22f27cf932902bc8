"""engine/group_commit.py: a lone wake commits at once and alone; wakes that arrive while a commit
is in flight are committed together by one call, each with its own outcome."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone

import pytest

from continuum_nb.engine.group_commit import BATCH_EVENT, GroupCommit
from continuum_nb.errors import DatabaseUnavailable, LeaseLost
from continuum_nb.store.base import Wake, WakeResult

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


def wake() -> Wake:
    return Wake(run_id=uuid.uuid4(), lease_token=1, now=T0, state="running")


class FakeStore:
    """Records every call; the first single commit blocks until released, so that others queue."""

    def __init__(self, refuse: set[uuid.UUID] | None = None, fail_batch: BaseException | None = None) -> None:
        self.calls: list[tuple[str, list[uuid.UUID]]] = []
        self.hold_first = threading.Event()
        self.first_started = threading.Event()
        self.refuse = refuse or set()
        self.fail_batch = fail_batch
        self._lock = threading.Lock()

    def commit_wake(self, w: Wake) -> WakeResult:
        with self._lock:
            first = not self.calls
            self.calls.append(("one", [w.run_id]))
        if first:
            self.first_started.set()
            assert self.hold_first.wait(10)
        if w.run_id in self.refuse:
            raise LeaseLost(f"run {w.run_id}: refused")
        return WakeResult(signal_pending=False)

    def commit_wakes(self, wakes: Sequence[Wake]) -> list[WakeResult | Exception]:
        with self._lock:
            self.calls.append(("many", [w.run_id for w in wakes]))
        if self.fail_batch is not None:
            raise self.fail_batch
        return [LeaseLost(f"run {w.run_id}: refused") if w.run_id in self.refuse else WakeResult(signal_pending=True)
                for w in wakes]


def queue_length(gc: GroupCommit) -> int:
    with gc._lock:
        return len(gc._queue)


def wait_until(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll a condition another thread brings about (the queue filling up)."""
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached"
        threading.Event().wait(0.005)


def test_a_lone_wake_commits_at_once_and_alone() -> None:
    store = FakeStore()
    store.hold_first.set()
    gc = GroupCommit(store, max_in_flight=1, batch_size=64)
    w = wake()
    assert gc.commit(w) == WakeResult(signal_pending=False)
    assert gc.commit(wake()).signal_pending is False
    assert [kind for kind, _ in store.calls] == ["one", "one"]


def run_concurrently(gc: GroupCommit, store: FakeStore, queued: list[Wake]) -> tuple[Future[WakeResult], list[Future[WakeResult]]]:
    """The first wake commits and blocks; ``queued`` arrive meanwhile; then it is released."""
    pool = ThreadPoolExecutor(len(queued) + 1)
    first = pool.submit(gc.commit, wake())
    assert store.first_started.wait(10)
    others = [pool.submit(gc.commit, w) for w in queued]
    wait_until(lambda: queue_length(gc) == len(queued))
    store.hold_first.set()
    pool.shutdown(wait=True)
    return first, others


def test_wakes_arriving_during_a_commit_share_the_next_one() -> None:
    store = FakeStore()
    emitted: list[tuple[tuple[str, ...], dict[str, int]]] = []
    gc = GroupCommit(store, 64, lambda e, m: emitted.append((e, m)), max_in_flight=1)
    queued = [wake() for _ in range(5)]
    first, others = run_concurrently(gc, store, queued)
    assert first.result() == WakeResult(signal_pending=False)
    assert [f.result() for f in others] == [WakeResult(signal_pending=True)] * 5
    assert store.calls[0][0] == "one"
    assert store.calls[1:] == [("many", [w.run_id for w in queued])]  # one call, in arrival order
    assert [(e, m["wakes"]) for e, m in emitted] == [(BATCH_EVENT, 5)]
    assert gc._in_flight == 0 and queue_length(gc) == 0


def test_the_batch_size_bounds_a_commit() -> None:
    store = FakeStore()
    gc = GroupCommit(store, max_in_flight=1, batch_size=2)
    queued = [wake() for _ in range(5)]
    _, others = run_concurrently(gc, store, queued)
    assert all(f.result().signal_pending for f in others[:4])
    ids = [w.run_id for w in queued]
    assert store.calls[1:] == [("many", ids[0:2]), ("many", ids[2:4]), ("one", ids[4:5])]


def test_a_refused_wake_fails_alone() -> None:
    queued = [wake() for _ in range(3)]
    store = FakeStore(refuse={queued[1].run_id})
    gc = GroupCommit(store, max_in_flight=1, batch_size=64)
    _, others = run_concurrently(gc, store, queued)
    assert others[0].result().signal_pending and others[2].result().signal_pending
    with pytest.raises(LeaseLost, match="refused"):
        others[1].result()


def test_an_error_of_the_whole_call_reaches_every_wake_of_the_batch() -> None:
    store = FakeStore(fail_batch=DatabaseUnavailable("the connection was lost"))
    gc = GroupCommit(store, max_in_flight=1, batch_size=64)
    first, others = run_concurrently(gc, store, [wake() for _ in range(3)])
    assert first.result() == WakeResult(signal_pending=False)
    errors = [f.exception() for f in others]
    assert all(isinstance(e, DatabaseUnavailable) for e in errors)
    assert len({id(e) for e in errors}) == 3  # each thread raises its own copy
    # and the next wake is not stuck behind the failed batch
    store.fail_batch = None
    assert gc.commit(wake()) == WakeResult(signal_pending=False)


def test_batch_size_one_never_batches() -> None:
    store = FakeStore()
    store.hold_first.set()
    gc = GroupCommit(store, max_in_flight=1, batch_size=1)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: gc.commit(wake()), range(20)))
    assert results == [WakeResult(signal_pending=False)] * 20
    assert {kind for kind, _ in store.calls} == {"one"}


def test_two_commits_may_be_in_flight_before_wakes_queue() -> None:
    store = FakeStore()
    second_started, hold_second = threading.Event(), threading.Event()
    real = store.commit_wake

    def commit_wake(w: Wake) -> WakeResult:
        if len(store.calls) == 1:  # the second single commit (the first is held by FakeStore)
            second_started.set()
            assert hold_second.wait(10)
        return real(w)

    store.commit_wake = commit_wake  # type: ignore[method-assign]
    gc = GroupCommit(store, batch_size=64, max_in_flight=2)
    pool = ThreadPoolExecutor(4)
    first = pool.submit(gc.commit, wake())
    assert store.first_started.wait(10)
    second = pool.submit(gc.commit, wake())  # a second slot: committed at once, alone
    assert second_started.wait(10)
    w3, w4 = wake(), wake()
    third, fourth = pool.submit(gc.commit, w3), pool.submit(gc.commit, w4)
    wait_until(lambda: queue_length(gc) == 2)
    store.hold_first.set()
    hold_second.set()
    pool.shutdown(wait=True)
    assert all(f.result() is not None for f in (first, second, third, fourth))
    # the two in flight alone, the two that queued behind them together (in whichever order
    # the calls finished)
    kinds = sorted(kind for kind, _ in store.calls)
    assert kinds == ["many", "one", "one"]
    assert [set(ids) for kind, ids in store.calls if kind == "many"] == [{w3.run_id, w4.run_id}]
    assert gc._in_flight == 0


def test_max_in_flight_can_be_raised_on_a_running_group_commit() -> None:
    """Set to 2 while one commit is held: the next wake leads a commit of its own at once
    instead of queueing behind the held one (as it does with the limit at 1)."""
    store = FakeStore()
    gc = GroupCommit(store, batch_size=64, max_in_flight=1)
    assert gc.max_in_flight == 1
    pool = ThreadPoolExecutor(2)
    first = pool.submit(gc.commit, wake())
    assert store.first_started.wait(10)
    gc.max_in_flight = 2
    second = gc.commit(wake())  # would block in the queue until the held commit returned
    assert second == WakeResult(signal_pending=False)
    assert queue_length(gc) == 0
    store.hold_first.set()
    pool.shutdown(wait=True)
    assert first.result() == WakeResult(signal_pending=False)
    assert [kind for kind, _ in store.calls] == ["one", "one"]
    assert gc.max_in_flight == 2 and gc._in_flight == 0


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_max_in_flight_is_a_whole_number_of_at_least_one(bad: object) -> None:
    with pytest.raises(ValueError, match="max_in_flight"):
        GroupCommit(FakeStore(), batch_size=64, max_in_flight=bad)  # type: ignore[arg-type]
    gc = GroupCommit(FakeStore(), batch_size=64)
    with pytest.raises(ValueError, match="max_in_flight"):
        gc.max_in_flight = bad  # type: ignore[assignment]
    assert gc.max_in_flight == 2
