"""cn.continue_as_new on every store: a loop that handles a signal and continues as new several
times, one chain (correlation_id, continued_from_run_id, a fresh journal per run), wait / signal
/ cancel on the first run's id following the chain, signals left in the mailbox moving to the
successor, version="newest", telemetry, and bad input refused in one line."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

import continuum_nb as cn
from continuum_nb.engine.clock import VirtualClock
from continuum_nb.workflow import WorkflowDef
from tests.engine.helpers import Recorder, define, eventually, types


def chain(inst: cn.Instance, first: str) -> list[uuid.UUID]:
    """The run ids of the chain that starts at ``first``, in order."""
    ids = [uuid.UUID(first)]
    while (nxt := inst.store.chain_links(ids[-1]).continued_to_run_id) is not None:  # type: ignore[attr-defined]
        ids.append(nxt)
    return ids


async def ticker(day: int, total: int = 0, until: int = 4) -> dict[str, Any]:
    """A signal a day: adds it up, continues as new each day until ``until``."""
    got = await cn.signal("tick")
    total += got
    if day >= until:
        return {"day": day, "total": total}
    cn.continue_as_new({"day": day + 1, "total": total, "until": until})


def chain_of_length(inst: cn.Instance, first: str, n: int) -> list[uuid.UUID] | None:
    ids = chain(inst, first)
    return ids if len(ids) == n else None


def suspended_on_tick(inst: cn.Instance, run_id: uuid.UUID) -> bool:
    info = cn.get_run(str(run_id), instance=inst)
    return info.state == "suspended" and types(inst, cn.Run(str(run_id), "", inst.name)) == ["signal_awaited"]


def test_a_loop_continues_as_new_each_day_and_wait_on_the_first_id_returns_the_last_result(
        make_instance: Any) -> None:
    inst = make_instance()
    first = cn.start(define(inst, ticker), {"day": 1}, attributes={"team": "ops"}, instance=inst)
    for day in range(1, 5):
        ids = eventually(lambda n=day: chain_of_length(inst, first.id, n), what=f"day {day}'s run")
        eventually(lambda c=ids[-1]: suspended_on_tick(inst, c), what=f"day {day} waiting")
        assert cn.signal(first.id, "tick", day, instance=inst) == "delivered"  # the first id: the current run
    assert cn.wait(first.id, timeout=30, instance=inst) == {"day": 4, "total": 10}
    ids = chain(inst, first.id)
    assert len(ids) == 4 and len(set(ids)) == 4
    for i, rid in enumerate(ids):
        info = cn.get_run(str(rid), instance=inst)
        links = inst.store.chain_links(rid)  # type: ignore[attr-defined]
        assert links.correlation_id == ids[0]  # one chain: the first run's id
        assert links.continued_from_run_id == (None if i == 0 else ids[i - 1])
        assert info.attributes == {"team": "ops"} and info.workflow == "ticker"
        evs = [e.event_type for e in cn.events(str(rid), instance=inst)]
        if i < 3:  # each run's journal is its own day only
            assert info.state == "completed" and info.result == {"continued": str(ids[i + 1])}
            assert evs == ["signal_awaited", "signal_received", "run_continued_as_new"]
            cont = cn.events(str(rid), instance=inst)[-1].payload
            assert cont["next_run_id"] == str(ids[i + 1]) and cont["version"] == "same"
            assert cont["input"] == {"day": i + 2, "total": sum(range(1, i + 2)), "until": 4}
        else:
            assert evs == ["signal_awaited", "signal_received"] and info.result == {"day": 4, "total": 10}
    assert cn.wait(first.id, timeout=5, instance=inst, follow_runs=False) == {"continued": str(ids[1])}


def test_signals_left_in_the_mailbox_move_to_the_successor(make_instance: Any) -> None:
    inst = make_instance()
    wf = define(inst, ticker)
    first = cn.start(wf, {"day": 1, "until": 3}, instance=inst)
    eventually(lambda: suspended_on_tick(inst, uuid.UUID(first.id)), what="the first day waiting")
    inst.stop()  # nobody runs it while the mailbox fills: three signals for three days
    for n in (1, 10, 100):
        cn.signal(first.id, "tick", n, instance=inst)
    runner = make_instance()
    runner.registry.register(wf)
    runner.start_engine()
    assert cn.wait(first.id, timeout=30, instance=runner) == {"day": 3, "total": 111}
    ids = chain(runner, first.id)
    assert len(ids) == 3
    got = [[e.payload["payload"] for e in cn.events(str(r), instance=runner) if e.event_type == "signal_received"]
           for r in ids]
    assert got == [[1], [10], [100]]  # each signal delivered once, in order, each to one run
    assert all(runner.store.pending_signals(r) == [] for r in ids)


def test_cancel_on_the_first_id_cancels_the_current_run(make_instance: Any) -> None:
    inst = make_instance()
    first = cn.start(define(inst, ticker), {"day": 1}, instance=inst)
    eventually(lambda: suspended_on_tick(inst, uuid.UUID(first.id)), what="day 1 waiting")
    cn.signal(first.id, "tick", 1, instance=inst)
    second = eventually(lambda: chain(inst, first.id)[1] if len(chain(inst, first.id)) == 2 else None,
                        what="the second run")
    eventually(lambda: suspended_on_tick(inst, second), what="day 2 waiting")
    cn.cancel(first.id, instance=inst)
    assert cn.get_run(str(second), instance=inst).state == "cancelled"
    assert cn.get_run(first.id, instance=inst).state == "completed"
    with pytest.raises(cn.RunCancelled, match=str(second)):
        cn.wait(first.id, timeout=30, instance=inst)
    with pytest.raises(cn.RunNotActive):
        cn.signal(first.id, "tick", 2, instance=inst)  # the whole chain has ended
    with pytest.raises(cn.RunNotActive):
        cn.cancel(first.id, instance=inst)


async def versioned_v1(n: int) -> Any:
    if n == 0:
        cn.continue_as_new({"n": 1}, version="newest")
    return {"version": 1, "n": n}


async def versioned_v2(n: int) -> Any:
    if n == 0:
        cn.continue_as_new({"n": 1}, version="newest")
    return {"version": 2, "n": n}


@pytest.mark.parametrize(("version", "expected"), [("newest", 2), ("same", 1)])
def test_version_newest_starts_the_newest_stored_version(make_instance: Any, version: str, expected: int) -> None:
    inst = make_instance()
    name = f"versioned_{version}_{uuid.uuid4().hex[:6]}"
    v1 = WorkflowDef(versioned_v1 if version == "newest" else _same(versioned_v1), name=name)
    v2 = WorkflowDef(versioned_v2, name=name)
    inst.save_version(v1)
    inst.save_version(v2)
    inst.registry.register(v1)
    inst.registry.register(v2)
    run = cn.start(v1, {"n": 0}, instance=inst)
    assert cn.wait(run.id, timeout=30, instance=inst) == {"version": expected, "n": 1}
    nxt = chain(inst, run.id)[1]
    assert cn.get_run(str(nxt), instance=inst).version_hash == (v2 if expected == 2 else v1).version_hash


def _same(fn: Any) -> Any:
    async def versioned_same(n: int) -> Any:
        if n == 0:
            cn.continue_as_new({"n": 1})  # version="same"
        return {"version": 1, "n": n}

    return versioned_same


def test_continued_as_new_is_announced_with_the_chain(make_instance: Any) -> None:
    inst = make_instance()
    rec = Recorder(("continuum", "run", "continued_as_new"))
    try:
        run = cn.start(define(inst, ticker), {"day": 1, "until": 2}, instance=inst)
        eventually(lambda: suspended_on_tick(inst, uuid.UUID(run.id)), what="day 1 waiting")
        cn.signal(run.id, "tick", 5, instance=inst)
        cn.signal(run.id, "tick", 0, instance=inst)  # in either run's mailbox: it reaches day 2
        assert cn.wait(run.id, timeout=30, instance=inst) == {"day": 2, "total": 5}
        nxt = chain(inst, run.id)[1]
        (_, _, meta), = rec.seen
        assert (meta["from_run_id"], meta["to_run_id"], meta["correlation_id"]) == (run.id, str(nxt), run.id)
    finally:
        rec.close()


async def bad_inputs(kind: str) -> Any:
    try:
        if kind == "not_json":
            cn.continue_as_new({"when": object()})
        elif kind == "not_a_dict":
            cn.continue_as_new([1, 2])  # type: ignore[arg-type]
        else:
            cn.continue_as_new({}, version="latest")
    except (TypeError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return "continued?"


@pytest.mark.parametrize(("kind", "message"), [
    ("not_json", "TypeError: input of cn.continue_as_new"),
    ("not_a_dict", "TypeError: the input of cn.continue_as_new is a JSON object"),
    ("bad_version", "ValueError: cn.continue_as_new(version=...) is 'same' or 'newest', not 'latest'"),
])
def test_bad_input_is_refused_in_the_workflow_in_one_line(make_instance: Any, kind: str, message: str) -> None:
    inst = make_instance()
    run = cn.start(define(inst, bad_inputs), {"kind": kind}, instance=inst)
    out = cn.wait(run.id, timeout=30, instance=inst)
    assert out.startswith(message) and "\n" not in out
    assert chain(inst, run.id) == [uuid.UUID(run.id)]  # nothing continued


def test_continue_as_new_outside_a_workflow_is_refused_in_one_line(clock: VirtualClock) -> None:
    with pytest.raises(RuntimeError, match=r"cn.continue_as_new\(\) only works inside a workflow") as err:
        cn.continue_as_new({"day": 2})
    assert "\n" not in str(err.value) and "cn.start(workflow, input)" in str(err.value)


@pytest.mark.stores("memory")
def test_the_magics_follow_the_chain_from_the_first_id(make_instance: Any) -> None:
    from IPython.testing import globalipapp
    from IPython.utils.capture import capture_output

    from continuum_nb.notebook.magics import MagicError

    inst = make_instance()
    first = cn.start(define(inst, ticker), {"day": 1, "until": 3}, instance=inst)
    globalipapp.start_ipython()
    shell = globalipapp.get_ipython()
    shell.run_line_magic("load_ext", "continuum_nb")
    try:
        eventually(lambda: suspended_on_tick(inst, uuid.UUID(first.id)), what="day 1 waiting")
        with capture_output():
            shell.run_line_magic("continuum", f"signal {first.id} tick 2 --instance {inst.name}")
        second = eventually(lambda: chain_of_length(inst, first.id, 2), what="day 2")[-1]
        eventually(lambda: suspended_on_tick(inst, second), what="day 2 waiting")
        with capture_output():
            shell.run_line_magic("continuum", f"signal {first.id} tick 3 --instance {inst.name}")
            third = eventually(lambda: chain_of_length(inst, first.id, 3), what="day 3")[-1]
            eventually(lambda: suspended_on_tick(inst, third), what="day 3 waiting")
            shell.run_line_magic("continuum", f"cancel {first.id} --instance {inst.name}")
        assert cn.get_run(str(third), instance=inst).state == "cancelled"
        with pytest.raises(MagicError, match=f"%continuum wait: run {third} was cancelled"):
            shell.run_line_magic("continuum", f"wait {first.id} --timeout 10 --instance {inst.name}")
    finally:
        shell.run_line_magic("unload_ext", "continuum_nb")


def test_wait_refuses_a_follow_runs_that_is_not_a_bool(make_instance: Any) -> None:
    inst = make_instance()
    with pytest.raises(TypeError, match="follow_runs must be True or False, not 'no'"):
        cn.api.wait(str(uuid.uuid4()), 1, instance=inst, follow_runs="no")  # type: ignore[arg-type]


def test_a_fork_of_a_run_that_continued_continues_into_a_successor_of_its_own(make_instance: Any) -> None:
    inst = make_instance()
    first = cn.start(define(inst, ticker), {"day": 1, "until": 2}, instance=inst)
    eventually(lambda: suspended_on_tick(inst, uuid.UUID(first.id)), what="day 1 waiting")
    cn.signal(first.id, "tick", 4, instance=inst)
    second = eventually(lambda: chain_of_length(inst, first.id, 2), what="day 2")[-1]
    fork = cn.fork(first.id, at_seq=3, instance=inst)  # the whole journal, its continuation included
    cn.signal(str(second), "tick", 1, instance=inst)
    assert cn.wait(first.id, timeout=30, instance=inst) == {"day": 2, "total": 5}
    forked_chain = eventually(lambda: chain_of_length(inst, fork.id, 2), what="the fork's successor")
    assert forked_chain[1] != second  # its own successor, not the original's
    cn.signal(fork.id, "tick", 10, instance=inst)  # to the fork's chain
    assert cn.wait(fork.id, timeout=30, instance=inst) == {"day": 2, "total": 14}
    assert chain(inst, first.id) == [uuid.UUID(first.id), second]


def test_a_signal_key_is_known_to_the_whole_chain(make_instance: Any) -> None:
    inst = make_instance()
    first = cn.start(define(inst, ticker), {"day": 1, "until": 3}, instance=inst)
    eventually(lambda: suspended_on_tick(inst, uuid.UUID(first.id)), what="day 1 waiting")
    assert cn.signal(first.id, "tick", 1, idempotency_key="k1", instance=inst) == "delivered"
    second = eventually(lambda: chain_of_length(inst, first.id, 2), what="day 2")[-1]
    eventually(lambda: suspended_on_tick(inst, second), what="day 2 waiting")
    assert cn.signal(first.id, "tick", 1, idempotency_key="k1", instance=inst) == "duplicate"
    assert cn.signal(first.id, "tick", 2, idempotency_key="k2", instance=inst) == "delivered"  # on day 2
    third = eventually(lambda: chain_of_length(inst, first.id, 3), what="day 3")[-1]
    eventually(lambda: suspended_on_tick(inst, third), what="day 3 waiting")
    for key in ("k1", "k2"):  # whichever run each key was first sent to
        assert cn.signal(first.id, "tick", 9, idempotency_key=key, instance=inst) == "duplicate"
        assert cn.signal(str(second), "tick", 9, idempotency_key=key, instance=inst) == "duplicate"
    cn.signal(first.id, "tick", 4, idempotency_key="k3", instance=inst)
    assert cn.wait(first.id, timeout=30, instance=inst) == {"day": 3, "total": 7}
