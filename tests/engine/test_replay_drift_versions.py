"""Replay and versions: side effects return their journaled values on replay; a run continues
on a compatible new version, drifts on an incompatible one and resumes after the fix; upgrade()
only when the journal replays."""

from __future__ import annotations

from typing import Any

import pytest

import continuum_nb as cn
from continuum_nb.engine.clock import VirtualClock
from tests.engine.helpers import async_inc, define, double, eventually, journal, suspended_on, types


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
