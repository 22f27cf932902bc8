"""Composing workflows on every store: cn.first, gather(return_exceptions=), sagas, patches and
cn.log, each journaled, replayed from the journal by a second engine, and never duplicated."""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

import pytest

import continuum_nb as cn
from continuum_nb.engine.clock import VirtualClock
from tests.engine.helpers import define, eventually, journal, suspended_on, types

_calls: dict[str, int] = {}
_lock = threading.Lock()


def _count(name: str) -> int:
    with _lock:
        _calls[name] = _calls.get(name, 0) + 1
        return _calls[name]


@cn.activity(name="compose.step")
def step(tag: str) -> str:
    _count(f"step:{tag}")
    return f"did {tag}"


@cn.activity(name="compose.undo", retry=cn.Retry(max_attempts=1))
def undo(tag: str) -> str:
    _count(f"undo:{tag}")
    if tag.startswith("broken"):
        raise RuntimeError(f"cannot undo {tag}")
    return f"undid {tag}"


@cn.activity(name="compose.fails", retry=cn.Retry(max_attempts=1))
def fails(tag: str) -> str:
    raise ValueError(f"no {tag}")


# --- cn.first -----------------------------------------------------------------------------------
async def race_signal_timer(key: str) -> Any:
    index, value = await cn.first(cn.signal("go"), cn.timer(cn.hours(1)))
    return [index, value]


def test_first_signal_beats_timer_and_cancels_it(make_instance: Any, clock: VirtualClock) -> None:
    inst = make_instance()
    run = cn.start(define(inst, race_signal_timer), {"key": "a"}, instance=inst)
    eventually(lambda: suspended_on(inst, run, "timer_started"), what="both started")
    assert types(inst, run) == ["signal_awaited", "timer_started"]  # one commit, one suspension
    cn.signal(run.id, "go", {"ok": 1}, instance=inst)
    assert cn.wait(run.id, timeout=30, instance=inst) == [0, {"ok": 1}]
    evs = journal(inst, run)
    assert [e.event_type for e in evs] == ["signal_awaited", "timer_started", "signal_received", "timer_cancelled"]
    assert evs[-1].payload["started_seq"] == evs[1].seq


def test_first_timer_wins_and_the_signal_stays_in_the_mailbox(make_instance: Any, clock: VirtualClock) -> None:
    inst = make_instance()

    async def then_wait(key: str) -> Any:
        index, _ = await cn.first(cn.signal("go"), cn.timer(cn.minutes(5)))
        later = await cn.signal("go")
        return [index, later]

    run = cn.start(define(inst, then_wait), {"key": "b"}, instance=inst)
    eventually(lambda: suspended_on(inst, run, "timer_started"), what="both started")
    clock.advance(cn.minutes(6))
    eventually(lambda: "signal_cancelled" in types(inst, run), what="timer won")
    cn.signal(run.id, "go", "late", instance=inst)
    assert cn.wait(run.id, timeout=30, instance=inst) == [1, "late"]
    assert types(inst, run)[:4] == ["signal_awaited", "timer_started", "timer_fired", "signal_cancelled"]


def test_first_of_activities_returns_index_and_value(make_instance: Any) -> None:
    inst = make_instance()

    async def one_of(key: str) -> Any:
        return list(await cn.first(step(f"{key}-x"), step(f"{key}-y"), cancel_others=False))

    run = cn.start(define(inst, one_of), {"key": "c"}, instance=inst)
    index, value = cn.wait(run.id, timeout=30, instance=inst)
    assert value == f"did c-{'xy'[index]}"
    scheduled = [e for e in journal(inst, run) if e.event_type == "activity_scheduled"]
    assert len(scheduled) == 2 and "activity_cancelled" not in types(inst, run)


def test_first_of_nothing_and_of_an_awaited_value_are_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match=r"cn.first\(\) needs at least one awaitable"):
        cn.first()
    with pytest.raises(TypeError, match="cn.first argument 0 is 3"):
        cn.first(3)  # type: ignore[arg-type]


# --- gather(return_exceptions=) --------------------------------------------------------------------
def test_gather_return_exceptions_puts_the_failure_in_its_place(make_instance: Any) -> None:
    inst = make_instance()

    async def both(key: str) -> Any:
        ok, bad = await cn.gather(step(key), fails(key), return_exceptions=True)
        return [ok, type(bad).__name__, str(bad)]

    run = cn.start(define(inst, both), {"key": "g"}, instance=inst)
    ok, kind, message = cn.wait(run.id, timeout=30, instance=inst)
    assert (ok, kind) == ("did g", "ActivityFailed") and "no g" in message
    ts = types(inst, run)
    assert ts[:2] == ["activity_scheduled", "activity_scheduled"]  # both in the first commit


# --- sagas -------------------------------------------------------------------------------------------
async def booking(key: str) -> Any:
    async with cn.saga() as saga:
        await step(f"{key}-flight")
        saga.add(undo, f"{key}-flight")
        await step(f"{key}-hotel")
        saga.add(undo, f"broken-{key}-hotel")
        await step(f"{key}-car")
        saga.add(undo, f"{key}-car")
        await fails(key)
    return "unreachable"


def test_saga_compensates_lifo_goes_on_after_a_failed_one_and_reraises(make_instance: Any) -> None:
    inst = make_instance()
    key = f"s1{uuid.uuid4().hex[:6]}"
    run = cn.start(define(inst, booking), {"key": key}, instance=inst)
    with pytest.raises(cn.RunFailed, match=f"no {key}"):
        cn.wait(run.id, timeout=30, instance=inst)
    comp = [(e.event_type, e.payload.get("activity"), (e.payload.get("args") or [None])[0])
            for e in journal(inst, run) if e.event_type.startswith("compensation_")]
    assert [c[0] for c in comp] == ["compensation_scheduled", "compensation_completed",
                                    "compensation_scheduled", "compensation_failed",
                                    "compensation_scheduled", "compensation_completed"]
    assert [c[2] for c in comp if c[0] == "compensation_scheduled"] == [f"{key}-car", f"broken-{key}-hotel", f"{key}-flight"]
    assert _calls[f"undo:{key}-car"] == 1 and _calls[f"undo:{key}-flight"] == 1


def test_saga_parallel_schedules_every_compensation_in_one_commit(make_instance: Any) -> None:
    inst = make_instance()

    async def parallel(key: str) -> Any:
        saga = cn.saga()
        for i in range(3):
            await step(f"{key}-{i}")
            saga.add(undo, f"{key}-{i}")
        results = await saga.compensate(parallel=True)
        again = await saga.compensate()  # nothing left: each compensation runs once
        return [results, again]

    run = cn.start(define(inst, parallel), {"key": "p"}, instance=inst)
    assert cn.wait(run.id, timeout=30, instance=inst) == [["undid p-2", "undid p-1", "undid p-0"], []]
    ts = types(inst, run)
    first = ts.index("compensation_scheduled")
    assert ts[first:first + 3] == ["compensation_scheduled"] * 3


def test_saga_add_refuses_what_is_not_an_activity() -> None:
    with pytest.raises(TypeError, match="saga.add takes an @cn.activity"):
        cn.saga().add(print, "x")


# --- patches ---------------------------------------------------------------------------------------
def test_patched_is_journaled_once_and_remembered(make_instance: Any) -> None:
    inst = make_instance()

    async def patched_flow(key: str) -> Any:
        first = cn.patched("fix-rounding")
        await step(key)
        return [first, cn.patched("fix-rounding")]

    run = cn.start(define(inst, patched_flow), {"key": "pt"}, instance=inst)
    assert cn.wait(run.id, timeout=30, instance=inst) == [True, True]
    assert types(inst, run) == ["patched", "activity_scheduled", "activity_completed"]
    assert journal(inst, run)[0].payload["name"] == "fix-rounding"


def test_a_run_recorded_before_the_patch_takes_the_old_branch(make_instance: Any, clock: VirtualClock) -> None:
    """Started on code without the patch, resumed by another engine on the patched code."""
    inst = make_instance()

    async def v1(key: str) -> Any:
        await step(f"{key}-a")
        await cn.timer(cn.minutes(5))
        return "v1"

    pre = f"pre{uuid.uuid4().hex[:6]}"
    run = cn.start(define(inst, v1, name="patching_flow"), {"key": pre}, instance=inst)
    eventually(lambda: suspended_on(inst, run, "timer_started"), what="timer")
    inst.stop()

    async def v2(key: str) -> Any:
        if cn.patched("extra-step"):
            await step(f"{key}-new")
        await step(f"{key}-a")
        await cn.timer(cn.minutes(5))
        return "new" if cn.patched("extra-step") else "old"

    other = make_instance()
    wf2 = define(other, v2, name="patching_flow")
    other.start_engine()
    clock.advance(cn.minutes(6))
    assert cn.wait(run.id, timeout=30, instance=other) == "old"
    assert "patched" not in types(other, run)
    assert _calls.get(f"step:{pre}-new") is None and _calls[f"step:{pre}-a"] == 1
    new = cn.start(wf2, {"key": "post"}, instance=other)
    eventually(lambda: suspended_on(other, new, "timer_started"), what="new run's timer")
    clock.advance(cn.minutes(6))
    assert cn.wait(new.id, timeout=30, instance=other) == "new"
    assert types(other, new)[:2] == ["patched", "activity_scheduled"]


# --- cn.log ------------------------------------------------------------------------------------------
def test_log_is_journaled_and_logged_once_despite_replays(make_instance: Any, clock: VirtualClock,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    inst = make_instance()

    async def chatty(key: str) -> Any:
        cn.log("starting", key=key)
        await cn.timer(cn.minutes(1))
        cn.log("after the timer", level="warning", n=2)
        await cn.timer(cn.minutes(1))
        return "done"

    caplog.set_level(logging.INFO, logger="continuum_nb.workflow")
    run = cn.start(define(inst, chatty), {"key": "lg"}, instance=inst)
    eventually(lambda: suspended_on(inst, run, "timer_started"), what="first timer")
    inst.stop()  # the next engine replays the first part from the journal
    other = make_instance()
    define(other, chatty)
    other.start_engine()
    clock.advance(cn.minutes(2))
    eventually(lambda: suspended_on(other, run, "timer_started") and types(other, run).count("timer_started") == 2,
               what="second timer")
    clock.advance(cn.minutes(2))
    assert cn.wait(run.id, timeout=30, instance=other) == "done"
    logs = [e.payload for e in journal(other, run) if e.event_type == "workflow_log"]
    assert logs == [{"message": "starting", "level": "info", "fields": {"key": "lg"}},
                    {"message": "after the timer", "level": "warning", "fields": {"n": 2}}]
    lines = [r.getMessage() for r in caplog.records if r.name == "continuum_nb.workflow" and str(run.id) in r.getMessage()]
    assert [line.rsplit("] ", 1)[1] for line in lines] == ["starting", "after the timer"]


# --- signal contracts ---------------------------------------------------------------------------------
async def contracted(key: str) -> Any:
    decision = await cn.signal("approve")
    return decision


def _contracted_def(inst: Any) -> Any:
    from continuum_nb.workflow import WorkflowDef

    wf = WorkflowDef(contracted, name="contracted", signals={"approve": {"by": str, "ok": bool}, "poke": None})
    inst.registry.register(wf)
    return wf


def test_signal_contract_refuses_before_the_mailbox_even_from_another_instance(make_instance: Any) -> None:
    inst = make_instance()
    run = cn.start(_contracted_def(inst), {"key": "k"}, instance=inst)
    eventually(lambda: suspended_on(inst, run, "signal_awaited"), what="await")
    sender = make_instance(run_engine=False)  # another instance (process) with the workflow defined
    _contracted_def(sender)
    with pytest.raises(ValueError, match="does not accept signal 'aprove'.*declares 'approve', 'poke'"):
        cn.signal(run.id, "aprove", {"by": "ana", "ok": True}, instance=sender)
    with pytest.raises(TypeError, match="field 'ok' must be bool, not str"):
        cn.signal(run.id, "approve", {"by": "ana", "ok": "yes"}, instance=sender)
    with pytest.raises(ValueError, match="field 'ok' is missing"):
        cn.signal(run.id, "approve", {"by": "ana"}, instance=sender)
    with pytest.raises(ValueError, match="field 'extra' is not declared"):
        cn.signal(run.id, "approve", {"by": "ana", "ok": True, "extra": 1}, instance=sender)
    with pytest.raises(TypeError, match="carries no payload"):
        cn.signal(run.id, "poke", {"x": 1}, instance=sender)
    assert inst.store.pending_signals(uuid.UUID(str(run.id))) == []  # nothing reached the mailbox
    assert types(inst, run) == ["signal_awaited"]  # nothing reached the run
    assert cn.signal(run.id, "approve", {"by": "ana", "ok": True}, instance=sender) == "delivered"
    assert cn.wait(run.id, timeout=30, instance=inst) == {"by": "ana", "ok": True}


def test_a_bad_contract_is_refused_when_defined() -> None:
    with pytest.raises(TypeError, match="signal 'approve' must map to None .* or a dict of field types"):
        cn.workflow(contracted, signals={"approve": str}, instance=None)
    with pytest.raises(TypeError, match="set.* is not a payload type"):
        cn.workflow(contracted, signals={"approve": {"by": set}})


# --- crash while compensating -----------------------------------------------------------------------------
_gates: dict[str, threading.Event] = {}


@cn.activity(name="compose.slow_undo", retry=cn.Retry(max_attempts=3))
def slow_undo(tag: str) -> str:
    gate = _gates.get(tag)
    if gate is not None:
        gate.wait(20)
    _count(f"slow_undo:{tag}")
    return f"undid {tag}"


async def compensating(key: str) -> Any:
    saga = cn.saga()
    for part in ("a", "b", "c"):
        await step(f"{key}-{part}")
        saga.add(slow_undo, f"{key}-{part}")
    return await saga.compensate()


def test_an_engine_lost_while_compensating_resumes_from_the_first_not_done(make_instance: Any) -> None:
    key = f"cr{uuid.uuid4().hex[:6]}"
    _gates[f"{key}-b"] = threading.Event()  # "c" is undone, then the engine is lost during "b"
    inst = make_instance(lease_ttl=1.0)
    run = cn.start(define(inst, compensating, name="compensating"), {"key": key}, instance=inst)
    eventually(lambda: types(inst, run).count("compensation_scheduled") == 2, what="second compensation")
    inst.stop(timeout=0.1)
    other = make_instance(lease_ttl=1.0)
    define(other, compensating, name="compensating")
    other.start_engine()
    _gates[f"{key}-b"].set()
    assert cn.wait(run.id, timeout=60, instance=other) == [f"undid {key}-c", f"undid {key}-b", f"undid {key}-a"]
    evs = journal(other, run)
    scheduled = [e for e in evs if e.event_type == "compensation_scheduled"]
    assert [e.payload["args"][0] for e in scheduled] == [f"{key}-c", f"{key}-b", f"{key}-a"]  # none twice
    done = [e.payload["scheduled_seq"] for e in evs if e.event_type == "compensation_completed"]
    assert sorted(done) == [e.seq for e in scheduled]  # each resolved exactly once
    assert _calls[f"slow_undo:{key}-c"] == 1 and _calls[f"slow_undo:{key}-a"] == 1  # the done one not redone
    assert _calls[f"slow_undo:{key}-b"] >= 1  # the one in flight: at least once (an activity's guarantee)


# --- drift on the engine ------------------------------------------------------------------------------------
async def race_v1(key: str) -> Any:
    index, value = await cn.first(cn.signal("go"), cn.timer(cn.hours(1)))
    return [index, value]


async def race_swapped(key: str) -> Any:
    index, value = await cn.first(cn.timer(cn.hours(1)), cn.signal("go"))  # the order inside first changed
    return [index, value]


def test_a_changed_order_inside_first_drifts_and_appends_nothing(make_instance: Any) -> None:
    inst = make_instance()
    run = cn.start(define(inst, race_v1, name="race"), {"key": "d"}, instance=inst)
    eventually(lambda: suspended_on(inst, run, "timer_started"), what="both started")
    eventually(lambda: cn.api.get_run(run.id, instance=inst).lease_owner is None, what="release")
    inst.stop()
    before = types(inst, run)
    bad = make_instance()
    define(bad, race_swapped, name="race")
    cn.signal(run.id, "go", "now", instance=bad)
    with pytest.raises(cn.DriftError) as info:
        cn.wait(run.id, timeout=30, instance=bad)
    err = info.value.error
    assert (err["expected"]["kind"], err["actual"]["kind"]) == ("signal", "timer")
    assert types(bad, run) == before


def test_first_decided_by_another_engine_after_a_stop_loses_and_duplicates_nothing(make_instance: Any,
                                                                                    clock: VirtualClock) -> None:
    inst = make_instance()
    run = cn.start(define(inst, race_v1, name="race2"), {"key": "x"}, instance=inst)
    eventually(lambda: suspended_on(inst, run, "timer_started"), what="both started")
    inst.stop()
    sender = make_instance(run_engine=False)
    cn.signal(run.id, "go", "first", instance=sender)
    cn.signal(run.id, "go", "second", instance=sender)
    clock.advance(cn.hours(2))  # the timer is due too: the signal, first in argument order, wins
    other = make_instance()
    define(other, race_v1, name="race2")
    other.start_engine()
    assert cn.wait(run.id, timeout=30, instance=other) == [0, "first"]
    ts = types(other, run)
    assert ts == ["signal_awaited", "timer_started", "signal_received", "timer_cancelled"]
    assert [s.payload for s in other.store.pending_signals(uuid.UUID(str(run.id)))] == ["second"]  # still in the mailbox
