"""Cancelling a run, and what is refused (writing nothing): unknown runs and workflows, input
and payloads that are not JSON, awaiting something that is not a continuum awaitable."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

import continuum_nb as cn
from tests.engine.helpers import approval, define, eventually, suspended_on


def test_cancel(make_instance: Any) -> None:
    inst = make_instance()
    run = cn.start(define(inst, approval), {"wait_first": 3600}, instance=inst)
    eventually(lambda: suspended_on(inst, run, "timer_started"), what="timer")
    cn.cancel(run.id, instance=inst)
    with pytest.raises(cn.RunCancelled):
        cn.wait(run.id, timeout=10, instance=inst)
    info = cn.api.get_run(run.id, instance=inst)
    assert info.state == "cancelled" and info.completed_at is not None
    assert inst.store.pending_timers(uuid.UUID(run.id)) == []
    with pytest.raises(cn.RunNotActive):
        cn.cancel(run.id, instance=inst)
    with pytest.raises(cn.RunNotActive):
        cn.signal(run.id, "approve", 1, instance=inst)


def test_unknown_runs_and_workflows(make_instance: Any) -> None:
    inst = make_instance()
    missing = str(uuid.uuid4())
    for call in (lambda: cn.signal(missing, "x", 1, instance=inst), lambda: cn.cancel(missing, instance=inst),
                 lambda: cn.wait(missing, timeout=1, instance=inst), lambda: cn.resume(missing, instance=inst)):
        with pytest.raises(cn.RunNotFound, match=missing):
            call()
    with pytest.raises(cn.RunNotFound, match="not a run id"):
        cn.wait("nope", instance=inst)
    with pytest.raises(cn.WorkflowNotFound, match="no_such_workflow"):
        cn.start("no_such_workflow", {}, instance=inst)


def test_non_json_input_and_payloads_write_nothing(make_instance: Any) -> None:
    inst = make_instance()

    async def takes(x: Any) -> Any:
        return await cn.signal("s")

    wf = define(inst, takes)
    with pytest.raises(TypeError, match=r"input of the run is not JSON: \['x'\]\[0\] is a builtins.set"):
        cn.start(wf, {"x": [{1, 2}]}, instance=inst)
    assert cn.runs(workflow="takes", instance=inst) == []
    run = cn.start(wf, {"x": 1}, instance=inst)
    with pytest.raises(TypeError, match="payload of signal 's' is not JSON"):
        cn.signal(run.id, "s", {"when": object()}, instance=inst)
    assert inst.store.pending_signals(uuid.UUID(run.id)) == []
    cn.cancel(run.id, instance=inst)


def test_awaiting_a_foreign_awaitable_fails_clearly(make_instance: Any) -> None:
    import asyncio

    inst = make_instance()

    async def sleeper() -> None:
        await asyncio.sleep(1)

    run = cn.start(define(inst, sleeper), instance=inst)
    with pytest.raises(cn.RunFailed, match="not a continuum awaitable"):
        cn.wait(run.id, timeout=30, instance=inst)
