"""Retention counts from a run's end (``retention=`` of the workflow, else the instance's
``retention`` setting), and ``cn.prune`` deletes only ended runs past it — on every store."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

import continuum_nb as cn
from continuum_nb.workflow import WorkflowDef
from tests.engine.helpers import define, eventually, suspended_on


async def quick(n: int) -> int:
    return n


async def waits() -> Any:
    return await cn.signal("go")


def _define(inst: Any, fn: Any, retention: timedelta | None) -> WorkflowDef:
    wf = WorkflowDef(fn, name=f"{fn.__name__}_{uuid.uuid4().hex[:6]}", retention=retention)
    inst.registry.register(wf)
    return wf


def test_retention_until_is_set_when_the_run_ends(make_instance: Any, clock: Any) -> None:
    inst = make_instance()
    wf = _define(inst, waits, cn.days(30))
    run = cn.start(wf, instance=inst)
    eventually(lambda: suspended_on(inst, run, "signal_awaited"), what="suspended")
    assert cn.get_run(run.id, instance=inst).retention_until is None  # running: kept
    clock.advance(cn.hours(2))
    cn.signal(run.id, "go", "ok", instance=inst)
    assert cn.wait(run.id, timeout=30, instance=inst) == "ok"
    info = cn.get_run(run.id, instance=inst)
    assert info.completed_at == clock.now() and info.retention_until == info.completed_at + cn.days(30)
    # finished in its first wake; cancelled
    first = cn.start(_define(inst, quick, cn.days(1)), {"n": 1}, instance=inst)
    assert cn.wait(first.id, timeout=30, instance=inst) == 1
    info = cn.get_run(first.id, instance=inst)
    assert info.retention_until == info.completed_at + cn.days(1)
    other = cn.start(_define(inst, waits, cn.days(7)), instance=inst)
    cn.cancel(other.id, instance=inst)
    info = cn.get_run(other.id, instance=inst)
    assert info.retention_until == info.completed_at + cn.days(7)


def test_the_default_retention_applies_to_workflows_without_their_own(make_instance: Any) -> None:
    inst = make_instance(retention=cn.days(90))
    own = cn.start(_define(inst, quick, cn.days(2)), {"n": 1}, instance=inst)
    default = cn.start(define(inst, quick), {"n": 2}, instance=inst)
    plain = make_instance()  # no default: kept forever
    forever = cn.start(define(plain, quick, name="quick_plain"), {"n": 3}, instance=plain)
    for run, kept in ((own, cn.days(2)), (default, cn.days(90)), (forever, None)):
        cn.wait(run.id, timeout=30, instance=inst)
        info = cn.get_run(run.id, instance=inst)
        assert info.retention_until == (None if kept is None else info.completed_at + kept)


def test_prune_reports_then_deletes_only_ended_runs_past_retention(make_instance: Any, clock: Any) -> None:
    inst = make_instance()
    short, long_ = _define(inst, quick, cn.days(30)), _define(inst, quick, cn.days(60))
    expired = [cn.start(short, {"n": i}, idempotency_key=f"day-{i}", instance=inst) for i in range(3)]
    retained = cn.start(long_, {"n": 9}, instance=inst)
    forever = cn.start(define(inst, quick), {"n": 8}, instance=inst)
    for run in (*expired, retained, forever):
        cn.wait(run.id, timeout=30, instance=inst)
    running = cn.start(_define(inst, waits, cn.days(1)), instance=inst)
    eventually(lambda: suspended_on(inst, running, "signal_awaited"), what="suspended")
    assert cn.prune(instance=inst).runs == 0  # nothing has passed yet
    clock.advance(cn.days(31))
    report = cn.prune(instance=inst)
    assert (report.executed, report.runs, report.ingress_keys) == (False, 3, 0)
    assert len(cn.runs(limit=100, instance=inst)) == 6  # a report deletes nothing
    done = cn.prune(execute=True, batch_size=2, instance=inst)
    assert (done.executed, done.runs, done.batches) == (True, 3, 2)
    left = {r.id for r in cn.runs(limit=100, instance=inst)}
    assert left == {retained.id, forever.id, running.id}
    for run in expired:
        with pytest.raises(cn.RunNotFound):
            cn.get_run(run.id, instance=inst)
        assert inst.store.load_journal(uuid.UUID(run.id)) == []
    # the key outlives its run: a keyed start still finds it (and starts nothing) ...
    again = cn.start(short, {"n": 0}, idempotency_key="day-0", instance=inst)
    assert (again.id, again.existing) == (expired[0].id, True)
    # ... until the keys are dropped
    assert cn.prune(execute=True, drop_keys=True, instance=inst).ingress_keys == 3
    fresh = cn.start(short, {"n": 0}, idempotency_key="day-0", instance=inst)
    assert fresh.existing is False and fresh.id != expired[0].id
    assert cn.wait(fresh.id, timeout=30, instance=inst) == 0
    # the running run is never pruned, however long it waits
    clock.advance(cn.days(400))
    cn.prune(execute=True, instance=inst)
    assert cn.get_run(running.id, instance=inst).state == "suspended"
    assert {r.id for r in cn.runs(limit=100, instance=inst)} == {forever.id, running.id}
