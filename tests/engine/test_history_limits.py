"""Long histories are guarded (docs/settings.md, "Long histories"): a warning past
``history_warn_events``, a clear failure naming continue-as-new past ``history_max_events``, and
a single value over ``max_payload_bytes`` refused before it is journaled."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

import continuum_nb as cn
from tests.engine.helpers import Recorder, define, eventually, journal, suspended_on


async def grows(step: int) -> Any:
    # every round journals `step` side effects, then waits for the next signal
    rounds = 0
    while True:
        for _ in range(step):
            cn.random()
        rounds += 1
        await cn.signal("more")


async def big_side_effect(size: int) -> Any:
    value = cn.side_effect(lambda: "x" * size)
    return len(value)


def test_warning_then_a_clear_failure_that_names_continue_as_new(make_instance: Any) -> None:
    rec = Recorder(("continuum", "run", "history_warning"))
    try:
        inst = make_instance(history_warn_events=5, history_max_events=20)
        run = cn.start(define(inst, grows), {"step": 8}, instance=inst)
        eventually(lambda: suspended_on(inst, run, "signal_awaited"), what="the first wait")  # seq 9
        warned = [(m, meta) for e, m, meta in rec.seen if meta["run_id"] == run.id]
        assert len(warned) == 1 and warned[0][0]["events"] == 9  # the wake that crossed it
        assert warned[0][1]["warn_events"] == 5 and warned[0][1]["max_events"] == 20

        cn.signal(run.id, "more", instance=inst)  # seqs 10-19: still within the limit
        eventually(lambda: len(journal(inst, run)) == 19 and suspended_on(inst, run, "signal_awaited"),
                   what="the second wait")
        cn.signal(run.id, "more", instance=inst)  # would reach seq 29: over the limit
        eventually(lambda: cn.api.get_run(run.id, instance=inst).state == "failed", what="failure")
        info = cn.api.get_run(run.id, instance=inst)
        assert info.error["type"] == "history_limit"
        assert info.error["events"] == 29 and info.error["max_events"] == 20
        assert "history_max_events limit of 20" in info.error["message"]
        assert "continue as new" in info.error["message"]
        assert [e.seq for e in journal(inst, run)] == list(range(1, 20))  # nothing of that wake
        assert len([meta for _, _, meta in rec.seen if meta["run_id"] == run.id]) == 1  # warned once
        assert info.lease_owner is None
    finally:
        rec.close()


def test_a_run_under_the_warning_is_not_warned_about(make_instance: Any) -> None:
    rec = Recorder(("continuum", "run", "history_warning"))
    try:
        inst = make_instance(history_warn_events=50)
        run = cn.start(define(inst, grows), {"step": 8}, instance=inst)
        eventually(lambda: suspended_on(inst, run, "signal_awaited"), what="the first wait")
        assert [meta for _, _, meta in rec.seen if meta["run_id"] == run.id] == []
    finally:
        rec.close()


def test_an_oversized_value_of_a_run_fails_it_before_it_is_journaled(make_instance: Any) -> None:
    inst = make_instance(max_payload_bytes=1000)
    wf = define(inst, big_side_effect)
    run = cn.start(wf, {"size": 5000}, instance=inst)
    eventually(lambda: cn.api.get_run(run.id, instance=inst).state == "failed", what="failure")
    error = cn.api.get_run(run.id, instance=inst).error
    assert error["type"] == "builtins.ValueError"
    assert "side_effect event (side_effect) at seq 1" in error["message"]
    assert "is 5045 bytes as JSON, over the max_payload_bytes limit of 1000" in error["message"]
    assert journal(inst, run) == []
    small = cn.start(wf, {"size": 500}, instance=inst)  # under the limit: journaled as usual
    assert cn.wait(small.id, timeout=30, instance=inst) == 500


def test_an_oversized_input_or_signal_is_refused_to_the_caller(make_instance: Any) -> None:
    inst = make_instance(max_payload_bytes=1000)
    wf = define(inst, grows)
    before = len(cn.api.list_runs(instance=inst).runs)
    with pytest.raises(ValueError, match=r"^input of a run of 'grows' is 2\d\d\d bytes as JSON, over the "
                                         r"max_payload_bytes limit of 1000; keep large data outside the run"):
        cn.start(wf, {"step": 1, "padding": "p" * 2000}, instance=inst)
    assert len(cn.api.list_runs(instance=inst).runs) == before  # nothing written
    run = cn.start(wf, {"step": 1}, instance=inst)
    eventually(lambda: suspended_on(inst, run, "signal_awaited"), what="the first wait")
    with pytest.raises(ValueError, match=r"^payload of signal 'more' is 3002 bytes as JSON, over the max_payload_bytes"):
        cn.signal(run.id, "more", "s" * 3000, instance=inst)
    assert inst.store.pending_signals(uuid.UUID(run.id), ["more"]) == []
