"""``cn.start_many``: many runs in one transaction, run by the engines, idempotent with run ids,
all or nothing on bad input; on every store."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

import continuum_nb as cn
from tests.engine.helpers import define, eventually


async def square(n: int) -> int:
    return n * n


async def waits(n: int) -> Any:
    return await cn.signal("go")


def _count(inst: cn.Instance, workflow: str) -> int:
    return len(cn.runs(workflow=workflow, limit=10_000, instance=inst))


def test_start_many_starts_every_run_and_engines_finish_them(make_instance: Any) -> None:
    inst = make_instance()
    wf = define(inst, square)
    runs = cn.start_many(wf, [{"n": i} for i in range(250)], instance=inst)
    assert len(runs) == 250 and len({r.id for r in runs}) == 250
    assert not any(r.existing for r in runs)
    # the handles come back in the order of the inputs
    results = [r.wait(timeout=60) for r in runs]
    assert results == [i * i for i in range(250)]
    assert _count(inst, "square") == 250
    assert {cn.get_run(r.id, instance=inst).state for r in runs} == {"completed"}


def test_start_many_with_run_ids_is_idempotent(make_instance: Any) -> None:
    inst = make_instance()
    wf = define(inst, waits)
    ids = [str(uuid.uuid4()) for _ in range(30)]
    first = cn.start_many(wf, [{"n": i} for i in range(20)], run_ids=ids[:20], instance=inst)
    assert [r.id for r in first] == ids[:20] and not any(r.existing for r in first)
    # a retried call that overlaps: the first 20 exist, only 10 are new
    again = cn.start_many(wf, [{"n": i} for i in range(30)], run_ids=ids, instance=inst)
    assert [r.id for r in again] == ids
    assert [r.existing for r in again] == [True] * 20 + [False] * 10
    eventually(lambda: _count(inst, "waits") == 30, what="30 runs")
    eventually(lambda: all(cn.get_run(i, instance=inst).state == "suspended"
                           and cn.events(i, instance=inst) for i in ids), what="every run waiting")
    assert cn.signal(ids[25], "go", "ok", instance=inst) == "delivered"
    assert cn.wait(ids[25], timeout=30, instance=inst) == "ok"
    for i in ids:
        if i != ids[25]:
            cn.cancel(i, instance=inst)


def test_start_many_refuses_bad_input_and_starts_nothing(make_instance: Any) -> None:
    inst = make_instance()
    wf = define(inst, square)
    other = define(inst, waits)
    with pytest.raises(TypeError, match="input 2 is a list"):
        cn.start_many(wf, [{"n": 1}, {"n": 2}, [3]], instance=inst)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="input 1 of cn.start_many is not JSON"):
        cn.start_many(wf, [{"n": 1}, {"n": float("nan")}], instance=inst)
    with pytest.raises(ValueError, match="2 run_ids for 3 inputs"):
        cn.start_many(wf, [{"n": 1}] * 3, run_ids=[str(uuid.uuid4()) for _ in range(2)], instance=inst)
    dup = str(uuid.uuid4())
    with pytest.raises(ValueError, match=f"run id {dup} is given twice"):
        cn.start_many(wf, [{"n": 1}] * 2, run_ids=[dup, dup], instance=inst)
    with pytest.raises(cn.RunNotFound, match="is not a run id"):
        cn.start_many(wf, [{"n": 1}], run_ids=["nope"], instance=inst)
    with pytest.raises(cn.WorkflowNotFound):
        cn.start_many("no_such_workflow", [{"n": 1}], instance=inst)
    assert _count(inst, "square") == 0
    # an id that names a run of another workflow: refused, and nothing of the call is written
    taken = cn.start(other, {"n": 0}, instance=inst)
    fresh = [str(uuid.uuid4()) for _ in range(3)]
    with pytest.raises(ValueError, match=f"run {taken.id} already exists as a run of workflow 'waits'"):
        cn.start_many(wf, [{"n": i} for i in range(4)], run_ids=[*fresh, taken.id], instance=inst)
    assert _count(inst, "square") == 0
    assert all(cn.get_run(taken.id, instance=inst).workflow == "waits" for _ in range(1))
    assert cn.start_many(wf, [], instance=inst) == []
    cn.cancel(taken.id, instance=inst)


def test_runs_started_by_a_client_are_run_by_a_worker(make_instance: Any) -> None:
    worker = make_instance()
    define(worker, square)
    worker.save_version(worker.find_workflow("square"))
    worker.start_engine()
    client = make_instance(run_engine=False)
    runs = cn.start_many("square", [{"n": i} for i in range(40)], attributes={"batch": "b1"}, instance=client)
    assert [cn.wait(r.id, timeout=60, instance=client) for r in runs] == [i * i for i in range(40)]
    tagged = cn.list_runs(attributes={"batch": "b1"}, limit=100, instance=client)
    assert {r.id for r in tagged.runs} == {r.id for r in runs}
