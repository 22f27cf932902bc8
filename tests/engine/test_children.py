"""Child workflows on every store: cn.child and cn.start_child journaled in the parent, the child
run linked to it (parent_run_id, correlation_id), its end waking the parent, failures as
cn.ChildFailed, refused starts (unknown workflow, too deep), cancel propagation, gather/first."""

from __future__ import annotations

from typing import Any

import pytest

import continuum_nb as cn
from continuum_nb.engine.clock import VirtualClock
from tests.engine.helpers import define, eventually, journal, types


@cn.activity(name="kids.double")
def double(x: int) -> int:
    return 2 * x


async def kid(x: int) -> int:
    return await double(x)


async def kid_fails(x: int) -> int:
    raise ValueError(f"bad {x}")


async def kid_waits(x: int) -> Any:
    return await cn.signal("go")


def _runs(inst: cn.Instance, workflow: str) -> list[Any]:
    return cn.list_runs(workflow=workflow, instance=inst).runs


def test_child_result_comes_back_and_the_child_is_linked(make_instance: Any) -> None:
    inst = make_instance()
    kid_wf = define(inst, kid)

    async def parent(x: int) -> Any:
        a = await cn.child(kid_wf, {"x": x})
        b = await cn.child("kid", {"x": a})
        return [a, b]

    run = cn.start(define(inst, parent), {"x": 3}, instance=inst)
    assert cn.wait(run.id, timeout=30, instance=inst) == [6, 12]
    evs = journal(inst, run)
    assert [e.event_type for e in evs] == ["child_started", "child_completed", "child_started", "child_completed"]
    first, second = evs[0].payload, evs[2].payload
    assert (first["workflow"], first["ordinal"], second["ordinal"]) == ("kid", 0, 1)
    assert evs[1].payload == {"started_seq": 1, "workflow": "kid", "child_run_id": first["child_run_id"], "result": 6}
    kids = {r.id: r for r in _runs(inst, "kid")}
    assert set(kids) == {first["child_run_id"], second["child_run_id"]}
    for r in kids.values():
        assert r.state == "completed" and r.parent_run_id == run.id and r.correlation_id == run.id
    info = cn.get_run(run.id, instance=inst)
    assert info.parent_run_id is None and info.correlation_id is None


def test_grandchildren_share_the_root_as_correlation_id(make_instance: Any) -> None:
    inst = make_instance()
    define(inst, kid)

    async def middle(x: int) -> int:
        return await cn.child("kid", {"x": x})

    async def top(x: int) -> int:
        return await cn.child("middle", {"x": x})

    define(inst, middle)
    run = cn.start(define(inst, top), {"x": 5}, instance=inst)
    assert cn.wait(run.id, timeout=30, instance=inst) == 10
    (mid,) = _runs(inst, "middle")
    (leaf,) = _runs(inst, "kid")
    assert (mid.parent_run_id, mid.correlation_id) == (run.id, run.id)
    assert (leaf.parent_run_id, leaf.correlation_id) == (mid.id, run.id)


def test_start_child_returns_a_handle_awaited_later(make_instance: Any) -> None:
    inst = make_instance()
    define(inst, kid_waits)

    async def parent(x: int) -> Any:
        handle = await cn.start_child("kid_waits", {"x": x}, run_id="waiter")
        got = await double(x)
        return [got, await handle, handle.run_id]

    run = cn.start(define(inst, parent), {"x": 4}, instance=inst)
    (child,) = eventually(lambda: _runs(inst, "kid_waits"), what="the child run")
    eventually(lambda: types(inst, run)[-1:] == ["activity_completed"] and
               cn.get_run(run.id, instance=inst).state == "suspended", what="parent waits on the handle")
    cn.signal(child.id, "go", {"ok": True}, instance=inst)
    assert cn.wait(run.id, timeout=30, instance=inst) == [8, {"ok": True}, child.id]
    assert types(inst, run) == ["child_started", "activity_scheduled", "activity_completed", "child_completed"]
    assert journal(inst, run)[0].payload["run_id"] == "waiter"


def test_child_failure_is_catchable_as_child_failed(make_instance: Any) -> None:
    inst = make_instance()
    define(inst, kid_fails)

    async def parent(x: int) -> Any:
        try:
            await cn.child("kid_fails", {"x": x})
        except cn.ChildFailed as exc:
            return [exc.state, exc.workflow, exc.error["type"], "bad 7" in str(exc)]
        return "no error"

    run = cn.start(define(inst, parent), {"x": 7}, instance=inst)
    assert cn.wait(run.id, timeout=30, instance=inst) == ["failed", "kid_fails", "builtins.ValueError", True]
    assert types(inst, run) == ["child_started", "child_failed"]


def test_unknown_workflow_is_refused_in_the_parent_and_journaled(make_instance: Any) -> None:
    inst = make_instance()

    async def parent(x: int) -> Any:
        try:
            await cn.child("no_such_workflow", {"x": x})
        except cn.ChildFailed as exc:
            return [exc.state, str(exc)]
        return "started"

    run = cn.start(define(inst, parent), {"x": 1}, instance=inst)
    state, message = cn.wait(run.id, timeout=30, instance=inst)
    assert state == "refused"
    assert "'no_such_workflow' is not defined here" in message and "@cn.workflow" in message
    evs = journal(inst, run)
    assert [e.event_type for e in evs] == ["child_started", "child_failed"]
    assert evs[0].payload["child_run_id"] is None and evs[1].payload["state"] == "refused"
    assert _runs(inst, "no_such_workflow") == []


def test_depth_past_the_limit_is_refused(make_instance: Any) -> None:
    inst = make_instance(max_child_depth=2)

    async def nest(level: int) -> Any:
        if level == 0:
            return "bottom"
        try:
            return await cn.child("nest", {"level": level - 1})
        except cn.ChildFailed as exc:
            return f"refused at {level}: {exc.state}: {'max_child_depth=2' in str(exc)}"

    run = cn.start(define(inst, nest), {"level": 5}, instance=inst)
    assert cn.wait(run.id, timeout=30, instance=inst) == "refused at 3: refused: True"
    assert len(_runs(inst, "nest")) == 3  # the root and two levels of children


def test_non_json_input_raises_at_the_await_and_journals_nothing(make_instance: Any) -> None:
    inst = make_instance()
    define(inst, kid)

    async def parent(x: int) -> Any:
        try:
            await cn.child("kid", {"x": {1, 2}})
        except TypeError as exc:
            return str(exc)
        return "started"

    run = cn.start(define(inst, parent), {"x": 1}, instance=inst)
    assert "input of child workflow 'kid'" in cn.wait(run.id, timeout=30, instance=inst)
    assert types(inst, run) == []


def test_bad_arguments_fail_at_the_call() -> None:
    with pytest.raises(ValueError, match="on_parent_cancel=.*'cancel' or 'abandon'"):
        cn.child("kid", {}, on_parent_cancel="stop")
    with pytest.raises(TypeError, match="is a JSON object"):
        cn.child("kid", [1, 2])
    with pytest.raises(TypeError, match="takes a @cn.workflow"):
        cn.start_child(42, {})


def test_gather_starts_children_in_one_commit(make_instance: Any) -> None:
    inst = make_instance()
    define(inst, kid)

    async def parent(n: int) -> Any:
        return await cn.gather(*(cn.child("kid", {"x": i}) for i in range(n)), double(100))

    run = cn.start(define(inst, parent), {"n": 3}, instance=inst)
    assert cn.wait(run.id, timeout=30, instance=inst) == [0, 2, 4, 200]
    evs = types(inst, run)
    assert evs[:4] == ["child_started"] * 3 + ["activity_scheduled"]
    assert sorted(evs[4:]) == sorted(["child_completed"] * 3 + ["activity_completed"])


def test_first_cancels_the_losing_child(make_instance: Any, clock: VirtualClock) -> None:
    inst = make_instance()
    define(inst, kid_waits)

    async def parent(x: int) -> Any:
        return list(await cn.first(cn.child("kid_waits", {"x": x}), cn.timer(cn.minutes(5))))

    run = cn.start(define(inst, parent), {"x": 1}, instance=inst)
    (child,) = eventually(lambda: _runs(inst, "kid_waits"), what="the child run")
    eventually(lambda: cn.get_run(run.id, instance=inst).state == "suspended", what="parent suspended")
    clock.advance(cn.minutes(6))
    assert cn.wait(run.id, timeout=30, instance=inst) == [1, None]
    assert types(inst, run) == ["child_started", "timer_started", "timer_fired", "child_cancelled"]
    assert journal(inst, run)[-1].payload["reason"] == "first"
    assert eventually(lambda: cn.get_run(child.id, instance=inst).state == "cancelled", what="child cancelled")


@pytest.mark.parametrize("policy", ["cancel", "abandon"])
def test_cancelling_a_parent_follows_on_parent_cancel(make_instance: Any, policy: str) -> None:
    inst = make_instance()
    define(inst, kid_waits)

    async def parent(x: int) -> Any:
        return await cn.child("kid_waits", {"x": x}, on_parent_cancel=policy)

    run = cn.start(define(inst, parent), {"x": 1}, instance=inst)
    (child,) = eventually(lambda: _runs(inst, "kid_waits"), what="the child run")
    eventually(lambda: cn.get_run(child.id, instance=inst).state == "suspended", what="child waits")
    cn.cancel(run.id, instance=inst)
    expected = "cancelled" if policy == "cancel" else "suspended"
    assert cn.get_run(child.id, instance=inst).state == expected
    if policy == "abandon":
        cn.signal(child.id, "go", 1, instance=inst)
        assert cn.wait(child.id, timeout=30, instance=inst) == 1


def test_a_child_cancelled_on_its_own_raises_in_the_parent(make_instance: Any) -> None:
    inst = make_instance()
    define(inst, kid_waits)

    async def parent(x: int) -> Any:
        try:
            return await cn.child("kid_waits", {"x": x})
        except cn.ChildFailed as exc:
            return exc.state

    run = cn.start(define(inst, parent), {"x": 1}, instance=inst)
    (child,) = eventually(lambda: _runs(inst, "kid_waits"), what="the child run")
    eventually(lambda: cn.get_run(child.id, instance=inst).state == "suspended", what="child waits")
    cn.cancel(child.id, instance=inst)
    assert cn.wait(run.id, timeout=30, instance=inst) == "cancelled"
    assert types(inst, run) == ["child_started", "child_cancelled"]


def test_a_parent_loaded_from_a_snapshot_replays_its_children(make_instance: Any) -> None:
    inst = make_instance(snapshot_threshold=2, release_after=0)
    define(inst, kid)

    async def parent(n: int) -> Any:
        out = []
        for i in range(n):
            out.append(await cn.child("kid", {"x": i}))
        return out

    run = cn.start(define(inst, parent), {"n": 4}, instance=inst)
    assert cn.wait(run.id, timeout=30, instance=inst) == [0, 2, 4, 6]
    assert inst.store.load_snapshot(__import__("uuid").UUID(run.id)) is not None
    assert types(inst, run) == ["child_started", "child_completed"] * 4
    assert len(_runs(inst, "kid")) == 4


async def with_child(order_id: str) -> Any:
    shipped = await cn.child("kid", {"x": 1})
    return [shipped, await cn.signal("go")]


async def child_removed(order_id: str) -> Any:
    return [2, await cn.signal("go")]


def test_a_run_in_flight_whose_child_was_removed_drifts_and_starts_nothing(make_instance: Any) -> None:
    old = make_instance()
    define(old, kid)
    run = cn.start(define(old, with_child, "family_flow"), {"order_id": "A"}, instance=old)
    eventually(lambda: types(old, run) == ["child_started", "child_completed", "signal_awaited"]
               and cn.get_run(run.id, instance=old).lease_owner is None, what="parent waits, released")
    old.stop()
    new = make_instance()
    define(new, kid)
    define(new, child_removed, "family_flow")
    cn.signal(run.id, "go", "yes", instance=new)
    with pytest.raises(cn.DriftError) as info:
        cn.wait(run.id, timeout=30, instance=new)
    assert info.value.expected["kind"] == "child" and info.value.expected["seq"] == 1
    assert info.value.actual["kind"] == "signal"
    assert types(new, run) == ["child_started", "child_completed", "signal_awaited"]  # nothing appended
    assert len(_runs(new, "kid")) == 1
