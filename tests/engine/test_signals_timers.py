"""Signals (sent before or after the await, timeouts, FIFO per name, never lost) and durable
timers on a virtual clock; on the real servers also the signal/timeout race under the run lock
and timers across an engine restart."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

import continuum_nb as cn
from continuum_nb.engine.clock import VirtualClock
from tests.engine.helpers import approval, define, eventually, journal, suspended_on, types


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


async def race(n: int) -> Any:
    try:
        return await cn.signal("go", timeout=cn.seconds(10))
    except cn.SignalTimeout:
        return "timeout"


@pytest.mark.stores("postgres")
def test_signal_versus_timeout_exactly_one_wins(make_instance: Any, clock: VirtualClock) -> None:
    inst = make_instance(release_after=3600)  # keep coroutines live: the race is in the wake
    wf = define(inst, race)
    runs = [cn.start(wf, {"n": i}, instance=inst) for i in range(300)]
    for run in runs:
        eventually(lambda run=run: suspended_on(inst, run, "signal_awaited"), what="await")
    accepted: set[str] = set()
    first_sent = threading.Event()

    def send_all() -> None:
        for r in runs:
            try:
                cn.signal(r.id, "go", r.id, instance=inst)
                accepted.add(r.id)
            except cn.RunNotActive:
                pass  # the timeout already won and the run finished: the send is refused, not lost
            first_sent.set()

    sender = threading.Thread(target=send_all)
    sender.start()
    assert first_sent.wait(30)
    clock.advance(cn.seconds(11))  # every timeout is due while the signals arrive
    sender.join()
    outcomes = {"signal": 0, "timeout": 0}
    for run in runs:
        result = cn.wait(run.id, timeout=60, instance=inst)
        evs = journal(inst, run)
        awaited = [e for e in evs if e.event_type == "signal_awaited"]
        resolutions = [e for e in evs if e.payload.get("awaited_seq") == awaited[0].seq
                       or e.payload.get("started_seq") == awaited[0].seq]
        assert len(resolutions) == 1, [e.event_type for e in evs]  # exactly one wins
        pending = inst.store.pending_signals(uuid.UUID(run.id), ["go"])
        if resolutions[0].event_type == "signal_received":
            assert result == run.id and pending == []
            outcomes["signal"] += 1
        else:
            assert result == "timeout"
            # a late signal that was accepted is kept in the mailbox, not lost
            assert [s.payload for s in pending] == ([run.id] if run.id in accepted else [])
            outcomes["timeout"] += 1
    assert sum(outcomes.values()) == 300
    assert accepted  # the race really had signals arriving


@pytest.mark.stores("postgres")
def test_timers_survive_an_engine_restart(make_instance: Any, clock: VirtualClock) -> None:
    first = make_instance()

    async def nap() -> str:
        await cn.timer(cn.hours(6))
        return "rested"

    run = cn.start(define(first, nap), instance=first)
    eventually(lambda: suspended_on(first, run, "timer_started"), what="timer")
    first.stop()
    later = VirtualClock(clock.now())
    second = make_instance(clock_=later)
    define(second, nap)
    later.advance(cn.hours(7))
    assert cn.wait(run.id, timeout=30, instance=second) == "rested"
    assert [e.event_type for e in journal(second, run)] == ["timer_started", "timer_fired"]
