"""cn.replay(run_id, upto=N): the run's state after event N, replayed offline, writing nothing:
the commands issued so far, the next command, the workflow frame's locals. Every store."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

import continuum_nb as cn
from tests.engine.helpers import define, journal


@cn.activity(name="travel.add")
def add(x: int, y: int) -> int:
    return x + y


async def sums(start: int) -> int:
    first = await add(start, 1)
    second = await add(first, 10)
    third = await add(second, 100)
    return third


def _run(inst: cn.Instance) -> cn.Run:
    run = cn.start(define(inst, sums), {"start": 1}, instance=inst)
    assert cn.wait(run.id, timeout=30, instance=inst) == 112
    return run


@pytest.mark.parametrize("upto,commands,known,next_seq", [
    (0, 0, {"start": 1}, 1),
    (1, 1, {"start": 1}, 3),                                # waits on the first add
    (2, 1, {"start": 1, "first": 2}, 3),                    # the next command: the second add
    (4, 2, {"start": 1, "first": 2, "second": 12}, 5),
    (5, 3, {"start": 1, "first": 2, "second": 12}, None),   # waits on the last add
])
def test_the_state_after_each_event(make_instance: Any, upto: int, commands: int, known: dict[str, int],
                                    next_seq: int | None) -> None:
    inst = make_instance()
    run = _run(inst)
    before = [(e.seq, e.event_type) for e in journal(inst, run)]
    state = cn.replay(run.id, upto=upto, instance=inst)
    assert state.upto == upto
    assert len(state.commands) == commands
    assert all(c["kind"] == "activity" and c["target"] == "travel.add" for c in state.commands)
    assert state.locals == {**state.locals, **known}
    assert "third" not in state.locals
    assert (state.next_command or {}).get("seq") == next_seq
    assert state.next_event["seq"] == upto + 1  # what the run did next
    assert state.outcome in ("suspended", "continued")
    assert [(e.seq, e.event_type) for e in journal(inst, run)] == before  # nothing written
    assert cn.get_run(run.id, instance=inst).state == "completed"
    assert f"after event {upto}" in repr(state)


def test_at_the_last_event_the_code_completes(make_instance: Any) -> None:
    inst = make_instance()
    run = _run(inst)
    state = cn.replay(run.id, instance=inst)
    assert (state.upto, state.outcome, state.result) == (6, "completed", 112)
    assert state.locals == {}  # a finished coroutine keeps no frame


def test_new_code_shows_what_it_would_do_next(make_instance: Any) -> None:
    inst = make_instance()
    run = _run(inst)

    async def sums_v2(start: int) -> int:
        first = await add(start, 1)
        return await add(first, 1000)

    state = cn.replay(run.id, upto=2, workflow=cn.workflow(name="sums")(sums_v2), instance=inst)
    assert state.outcome == "continued"
    assert state.next_command["event_type"] == "activity_scheduled"
    assert state.next_command["payload"]["args"] == [2, 1000]


@pytest.mark.parametrize("upto,message", [
    (-1, "upto must be 0 or more"),
    (7, "upto 7 is past the end of run .*: its last event is seq 6"),
    ("2", "upto must be an event number"),
])
def test_bad_upto_is_one_clear_line(make_instance: Any, upto: Any, message: str) -> None:
    inst = make_instance()
    run = _run(inst)
    with pytest.raises(cn.ConfigurationError, match=message) as info:
        cn.replay(run.id, upto=upto, instance=inst)
    assert "\n" not in str(info.value)


def test_an_unknown_run_is_refused(make_instance: Any) -> None:
    inst = make_instance()
    with pytest.raises(cn.RunNotFound):
        cn.replay(str(uuid.uuid4()), upto=0, instance=inst)
