"""Engine behaviour (tests/engine_cases.py) on the in-memory store: fast, no database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import continuum_nb as cn
from continuum_nb.engine.clock import VirtualClock
from continuum_nb.store.memory import MemoryStore
from tests.engine_cases import *  # noqa: F403 - the shared cases


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def make_instance(clock: VirtualClock) -> Iterator[Any]:
    store = MemoryStore()
    made: list[cn.Instance] = []

    def make(**settings: Any) -> cn.Instance:
        settings.setdefault("poll_interval", 0.05)
        settings.setdefault("lease_ttl", 5.0)
        inst = cn.Instance(f"mem-{uuid.uuid4().hex[:8]}", database_url="postgresql://unused@/memory",
                           store=store, clock=clock, **settings)
        made.append(inst)
        return inst

    yield make
    for inst in made:
        inst.stop()
        inst._store = None  # the shared memory store needs no closing
        inst.close()


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
