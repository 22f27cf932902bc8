"""cn.fork: a new run from the first N events of another, on the newest code, linked both ways;
never re-running an activity whose completion lies inside the copied prefix. Every store."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

import continuum_nb as cn
from continuum_nb.forks import fork_links
from tests.engine.helpers import define, journal, types

_calls: dict[str, list[str]] = {}
_broken: set[str] = set()


def _log(key: str, step: str) -> None:
    _calls.setdefault(key, []).append(step)


@cn.activity(name="fork.step_a")
def step_a(key: str) -> str:
    _log(key, "a")
    return "a"


@cn.activity(name="fork.step_b")
def step_b(key: str) -> str:
    _log(key, "b")
    if key in _broken:
        raise RuntimeError("b is broken")
    return "b"


@cn.activity(name="fork.step_c")
def step_c(key: str) -> str:
    _log(key, "c")
    return "c"


async def three_steps(key: str) -> str:
    return await step_a(key) + await step_b(key) + await step_c(key)


def _finished(inst: cn.Instance, key: str) -> cn.Run:
    run = cn.start(define(inst, three_steps), {"key": key}, instance=inst)
    assert cn.wait(run.id, timeout=30, instance=inst) == "abc"
    return run


# the journal: 1 scheduled a, 2 completed a, 3 scheduled b, 4 completed b, 5 scheduled c, 6 completed c
RERUN = {0: "abc", 1: "abc", 2: "bc", 3: "bc", 4: "c", 5: "c", 6: ""}


@pytest.mark.parametrize("at", sorted(RERUN))
def test_a_fork_at_every_position_reruns_only_what_the_prefix_did_not_complete(make_instance: Any, at: int) -> None:
    inst = make_instance()
    key = uuid.uuid4().hex
    run = _finished(inst, key)
    assert len(journal(inst, run)) == 6
    _calls[key] = []
    forked = cn.fork(run.id, at_seq=at, instance=inst)
    assert forked.id != run.id
    assert cn.wait(forked.id, timeout=30, instance=inst) == "abc"
    assert "".join(_calls[key]) == RERUN[at]
    assert types(inst, forked) == types(inst, run)
    links = fork_links(forked.id, instance=inst)
    assert (links.forked_from_run_id, links.forked_at_seq) == (uuid.UUID(run.id), at)
    assert fork_links(run.id, instance=inst).forks == [(uuid.UUID(forked.id), at)]


def test_the_copied_prefix_has_new_task_ids_and_the_same_outcomes(make_instance: Any) -> None:
    inst = make_instance()
    key = uuid.uuid4().hex
    run = _finished(inst, key)
    forked = cn.fork(run.id, at_seq=4, instance=inst)
    cn.wait(forked.id, timeout=30, instance=inst)
    old, new = journal(inst, run), journal(inst, forked)
    for a, b in zip(old[:4], new[:4], strict=True):
        assert (a.seq, a.event_type) == (b.seq, b.event_type)
        if a.event_type == "activity_scheduled":
            assert a.payload["task_id"] != b.payload["task_id"]
        else:
            assert a.payload == b.payload


def test_a_failed_run_is_fixed_by_a_fork_from_the_failed_step(make_instance: Any) -> None:
    inst = make_instance()
    key = uuid.uuid4().hex
    _broken.add(key)
    run = cn.start(define(inst, three_steps), {"key": key}, instance=inst)
    with pytest.raises(cn.RunFailed, match="b is broken"):
        cn.wait(run.id, timeout=30, instance=inst)
    assert [e.event_type for e in journal(inst, run)][-1] == "activity_failed"
    _broken.discard(key)  # the fix
    _calls[key] = []
    forked = cn.fork(run.id, at_seq=3, instance=inst)  # keep a and b's schedule; drop its failure
    assert cn.wait(forked.id, timeout=30, instance=inst) == "abc"
    assert _calls[key] == ["b", "c"]
    assert cn.get_run(run.id, instance=inst).state == "failed"  # the original is untouched


async def two_steps_then_shout(key: str) -> str:
    # the newest version of ``three_steps``: same first two steps, another ending
    return (await step_a(key) + await step_b(key)).upper()


def test_a_fork_runs_on_the_newest_version(make_instance: Any) -> None:
    inst = make_instance()
    key = uuid.uuid4().hex
    run = _finished(inst, key)
    define(inst, two_steps_then_shout, name="three_steps")
    forked = cn.fork(run.id, at_seq=4, instance=inst)
    assert cn.wait(forked.id, timeout=30, instance=inst) == "AB"
    original = cn.fork(run.id, at_seq=4, version="original", instance=inst)
    assert cn.wait(original.id, timeout=30, instance=inst) == "abc"


@pytest.mark.parametrize("at,message", [
    (7, "fork point 7 is past the end of run .*: its last event is seq 6; pick 0 to 6"),
    (-1, "at_seq must be 0 or more"),
    ("3", "at_seq must be an event number"),
])
def test_a_bad_fork_point_is_one_clear_line(make_instance: Any, at: Any, message: str) -> None:
    inst = make_instance()
    run = _finished(inst, uuid.uuid4().hex)
    with pytest.raises(cn.ConfigurationError, match=message) as info:
        cn.fork(run.id, at_seq=at, instance=inst)
    assert "\n" not in str(info.value)


def test_forking_an_unknown_run_or_version_is_refused(make_instance: Any) -> None:
    inst = make_instance()
    with pytest.raises(cn.RunNotFound):
        cn.fork(str(uuid.uuid4()), at_seq=0, instance=inst)
    run = _finished(inst, uuid.uuid4().hex)
    with pytest.raises(cn.WorkflowNotFound, match="has no version 'feedfacefeed'"):
        cn.fork(run.id, at_seq=1, version="feedfacefeed00", instance=inst)
