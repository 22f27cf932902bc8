"""Runs claimed together get their journals read with the batch (``Store.load_journals``, one
round trip) instead of one read per first wake; a journal the batch does not carry (too long,
longer than the snapshot threshold, a failed read) is loaded the usual way, and every run ends
exactly as it would have."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

import continuum_nb as cn
from continuum_nb.engine import dispatcher
from continuum_nb.engine.clock import VirtualClock
from tests.engine.helpers import define, eventually, types


async def napper(n: int) -> int:
    """``n`` side effects, then a timer an hour long: a journal of n + 1 events while it waits."""
    for i in range(n):
        cn.side_effect(lambda i=i: i)
    await cn.timer(cn.hours(1))
    return n


class Reads:
    """Which runs' journals and snapshots the store was asked for, call by call."""

    def __init__(self, store: Any, *, fail_batches: bool = False) -> None:
        self.one: list[uuid.UUID] = []
        self.batches: list[set[uuid.UUID]] = []
        self.snapshots: list[uuid.UUID] = []
        load_journal, load_journals, load_snapshot = store.load_journal, store.load_journals, store.load_snapshot

        def one(run_id: uuid.UUID, after_seq: int = 0) -> Any:
            self.one.append(run_id)
            return load_journal(run_id, after_seq)

        def batch(leases: dict[uuid.UUID, int], *args: Any) -> Any:
            if fail_batches:
                raise RuntimeError("the batch read failed")
            got = load_journals(leases, *args)
            self.batches.append(set(got))
            return got

        def snapshot(run_id: uuid.UUID) -> Any:
            self.snapshots.append(run_id)
            return load_snapshot(run_id)

        store.load_journal, store.load_journals, store.load_snapshot = one, batch, snapshot


def _waiting(inst: cn.Instance, runs: list[cn.Run]) -> Callable[[], bool]:
    """Every run journaled its timer and gave back its lease (release_after=0)."""

    def check() -> bool:
        for run in runs:
            row = inst.store.get_run(uuid.UUID(run.id))
            if row.state != "suspended" or row.lease_owner is not None or types(inst, run)[-1:] != ["timer_started"]:
                return False
        return True

    return check


def _start(inst: cn.Instance, name: str, count: int) -> list[cn.Run]:
    runs = cn.start_many(define(inst, napper, name), [{"n": i} for i in range(count)], instance=inst)
    eventually(_waiting(inst, runs), what="every run waiting on its timer, released")
    return runs


def test_a_claimed_batch_reads_its_journals_in_one_call(make_instance: Any, clock: VirtualClock) -> None:
    inst = make_instance(release_after=0)
    runs = _start(inst, "batch_journals", 6)
    reads = Reads(inst.store)
    clock.advance(cn.hours(2))  # every timer due at once: one claim takes them all
    assert [cn.wait(r.id, timeout=30, instance=inst) for r in runs] == list(range(6))
    ids = {uuid.UUID(r.id) for r in runs}
    assert reads.one == []  # no first wake read its journal alone
    assert set().union(*reads.batches) == ids
    for i, run in enumerate(runs):
        assert types(inst, run) == ["side_effect"] * i + ["timer_started", "timer_fired"]


def test_journals_the_batch_does_not_carry_are_loaded_alone(make_instance: Any, clock: VirtualClock,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatcher, "PREFETCH_MAX_EVENTS", 3)
    inst = make_instance(release_after=0)
    runs = _start(inst, "batch_journals_long", 6)  # journals of 1 to 6 events
    reads = Reads(inst.store)
    clock.advance(cn.hours(2))
    assert [cn.wait(r.id, timeout=30, instance=inst) for r in runs] == list(range(6))
    ids = [uuid.UUID(r.id) for r in runs]
    assert set().union(*reads.batches) == set(ids[:3])
    assert sorted(reads.one) == sorted(ids[3:])  # each loaded once, by its own wake


def test_with_snapshots_a_journal_past_the_threshold_loads_its_snapshot(make_instance: Any,
                                                                        clock: VirtualClock) -> None:
    """A run whose journal reached the threshold has a snapshot (its first wake took it): its wake
    loads that and the events after it. Shorter journals come with the batch and replay whole."""
    inst = make_instance(release_after=0, snapshot_threshold=3)
    runs = _start(inst, "batch_journals_snapshots", 6)  # journals of 1 to 6 events
    ids = [uuid.UUID(r.id) for r in runs]
    assert [inst.store.load_snapshot(i) is not None for i in ids] == [False, False, True, True, True, True]
    reads = Reads(inst.store)
    clock.advance(cn.hours(2))
    assert [cn.wait(r.id, timeout=30, instance=inst) for r in runs] == list(range(6))
    assert set().union(*reads.batches) == set(ids[:2])
    assert sorted(reads.snapshots) == sorted(ids[2:])
    assert sorted(reads.one) == sorted(ids[2:])  # the events after each snapshot
    for i, run in enumerate(runs):
        assert types(inst, run) == ["side_effect"] * i + ["timer_started", "timer_fired"]


def test_a_failed_batch_read_leaves_each_wake_to_load_its_own(make_instance: Any, clock: VirtualClock) -> None:
    inst = make_instance(release_after=0)
    runs = _start(inst, "batch_journals_failed", 4)
    reads = Reads(inst.store, fail_batches=True)
    clock.advance(cn.hours(2))
    assert [cn.wait(r.id, timeout=30, instance=inst) for r in runs] == list(range(4))
    assert sorted(reads.one) == sorted(uuid.UUID(r.id) for r in runs)
