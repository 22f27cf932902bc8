"""Telemetry: the lifecycle events, with their metadata; a broken handler does not break the
engine."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

import continuum_nb as cn
from continuum_nb import telemetry
from continuum_nb.engine.clock import VirtualClock
from tests.engine.helpers import Recorder, charge, define, double, eventually, flaky, suspended_on


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
        # the first attempt's backoff runs on the virtual clock: move it in short steps
        eventually(lambda: suspended_on(inst, run, "timer_started") or clock.advance(0.02) is None,
                   what="timer")
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


@pytest.mark.parametrize("failure", [RuntimeError("handler bug"), SystemExit(1)], ids=["error", "exit"])
def test_a_broken_telemetry_handler_does_not_break_the_engine(make_instance: Any, failure: BaseException) -> None:
    inst = make_instance()

    def broken(*_: Any) -> None:
        raise failure

    telemetry.attach("broken-handler", [("continuum", "run", "completed"), ("continuum", "activity", "started")], broken)
    try:
        async def simple() -> int:
            return await double(21)

        run = cn.start(define(inst, simple), instance=inst)
        assert cn.wait(run.id, timeout=30, instance=inst) == 42
    finally:
        telemetry.detach("broken-handler")
