"""Idempotent starts and signals (``idempotency_key=``), search attributes and ``cn.list_runs``,
on every store: what a caller sees, and that a start that finds its key runs no workflow code."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

import continuum_nb as cn
from continuum_nb.engine.clock import SystemClock
from tests.engine.helpers import define, eventually, suspended_on

_bodies: dict[str, int] = {}
_bodies_lock = threading.Lock()


async def counted(tag: str) -> Any:
    """Counts how often its body starts (a first wake, or a replay)."""
    with _bodies_lock:
        _bodies[tag] = _bodies.get(tag, 0) + 1
    return await cn.signal("go")


def test_a_keyed_start_returns_the_existing_run_and_runs_nothing(make_instance: Any) -> None:
    inst = make_instance()
    wf = define(inst, counted)
    tag = uuid.uuid4().hex
    first = cn.start(wf, {"tag": tag}, idempotency_key="2026-12-06", instance=inst)
    assert first.existing is False
    eventually(lambda: suspended_on(inst, first, "signal_awaited"), what="the first wake")
    again = cn.start(wf, {"tag": "other input"}, idempotency_key="2026-12-06", instance=inst)
    assert (again.id, again.existing) == (first.id, True)
    assert _bodies[tag] == 1 and _bodies.get("other input") is None
    assert [r.id for r in cn.runs(workflow="counted", instance=inst)] == [first.id]
    # another key, or no key, is another run
    assert cn.start(wf, {"tag": tag}, idempotency_key="2026-12-07", instance=inst).id != first.id
    # still the same run once it has finished
    assert cn.signal(first.id, "go", 1, instance=inst) == "delivered"
    assert cn.wait(first.id, timeout=30, instance=inst) == 1
    done = cn.start(wf, {"tag": tag}, idempotency_key="2026-12-06", instance=inst)
    assert (done.id, done.existing, done.state) == (first.id, True, "completed")


def test_concurrent_keyed_starts_run_one_first_wake(make_instance: Any) -> None:
    inst = make_instance()
    wf = define(inst, counted)
    tag = uuid.uuid4().hex
    got: list[cn.Run] = []
    barrier = threading.Barrier(8)

    def starter() -> None:
        barrier.wait()
        got.append(cn.start(wf, {"tag": tag}, idempotency_key="once", instance=inst))

    threads = [threading.Thread(target=starter) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(got) == 8 and len({r.id for r in got}) == 1
    assert sum(not r.existing for r in got) == 1
    eventually(lambda: suspended_on(inst, got[0], "signal_awaited"), what="the first wake")
    assert _bodies[tag] == 1  # the losers ran no workflow code
    assert len(cn.runs(workflow="counted", instance=inst)) == 1


def test_a_keyed_start_from_a_client_is_run_by_an_engine(make_instance: Any) -> None:
    worker = make_instance()
    define(worker, counted)
    client = make_instance(run_engine=False)
    tag = uuid.uuid4().hex
    worker.start_engine()
    # the client does not know the code: it starts by name, stored version or not
    worker.save_version(worker.find_workflow("counted"))
    run = cn.start("counted", {"tag": tag}, idempotency_key="k", attributes={"customer": "acme"}, instance=client)
    again = cn.start("counted", {"tag": tag}, idempotency_key="k", instance=client)
    assert (run.existing, again.existing, again.id) == (False, True, run.id)
    eventually(lambda: suspended_on(worker, run, "signal_awaited"), what="the worker's first wake")
    assert cn.get_run(run.id, instance=client).attributes == {"customer": "acme"}


def test_a_keyed_signal_is_delivered_once(make_instance: Any) -> None:
    inst = make_instance()

    async def collect() -> Any:
        return [await cn.signal("item"), await cn.signal("item")]

    run = cn.start(define(inst, collect), instance=inst)
    assert cn.signal(run.id, "item", "a", idempotency_key="msg-1", instance=inst) == "delivered"
    assert cn.signal(run.id, "item", "a again", idempotency_key="msg-1", instance=inst) == "duplicate"
    assert run.signal("item", "b", idempotency_key="msg-2") == "delivered"
    assert cn.wait(run.id, timeout=30, instance=inst) == ["a", "b"]
    assert cn.signal(run.id, "item", "late", idempotency_key="msg-1", instance=inst) == "duplicate"
    with pytest.raises(cn.RunNotActive):
        cn.signal(run.id, "item", "late", idempotency_key="msg-3", instance=inst)


def test_attributes_set_merged_and_listed(make_instance: Any) -> None:
    inst = make_instance()
    wf = define(inst, counted)
    a = cn.start(wf, {"tag": "a"}, attributes={"customer": "acme", "priority": 1}, instance=inst)
    b = cn.start(wf, {"tag": "b"}, instance=inst)
    assert cn.get_run(b.id, instance=inst).attributes == {}
    assert cn.set_attributes(b.id, {"customer": "globex"}, instance=inst) == {"customer": "globex"}
    assert cn.set_attributes(a.id, {"priority": 2, "vip": True}, instance=inst) == {
        "customer": "acme", "priority": 2, "vip": True}
    page = cn.list_runs(attributes={"customer": "acme"}, instance=inst)
    assert [r.id for r in page.runs] == [a.id] and page.next_cursor is None
    assert page.runs[0].attributes == {"customer": "acme", "priority": 2, "vip": True}
    assert [r.id for r in cn.list_runs(attributes={"vip": True, "priority": 2}, instance=inst).runs] == [a.id]
    assert cn.list_runs(attributes={"customer": "initech"}, instance=inst).runs == []
    with pytest.raises(cn.RunNotFound):
        cn.set_attributes(str(uuid.uuid4()), {"x": 1}, instance=inst)


def _page_through(inst: Any, limit: int, **filters: Any) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        page = cn.list_runs(limit=limit, cursor=cursor, instance=inst, **filters)
        assert len(page.runs) <= limit
        ids += [r.id for r in page.runs]
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


def test_list_runs_pages_newest_first_with_every_filter(make_instance: Any, clock: Any) -> None:
    inst = make_instance()
    wf = define(inst, counted)
    t0 = clock.now()
    made = []
    for i in range(7):
        if i % 3 == 0:
            clock.advance(timedelta(minutes=1))  # ties on started_at are broken by id
        made.append(cn.start(wf, {"tag": f"t{i}"}, attributes={"even": i % 2 == 0}, instance=inst))
    cn.cancel(made[0].id, instance=inst)
    runs = cn.runs(limit=100, instance=inst)
    assert _page_through(inst, 2) == [r.id for r in runs]  # same order as cn.runs, all of them
    assert len(set(_page_through(inst, 3))) == 7
    assert set(_page_through(inst, 2, attributes={"even": True})) == {made[i].id for i in (0, 2, 4, 6)}
    assert _page_through(inst, 2, state="cancelled") == [made[0].id]
    assert set(_page_through(inst, 1, workflow="counted", state="suspended")) == {r.id for r in made[1:]}
    minute = timedelta(minutes=1)
    assert set(_page_through(inst, 2, started_after=t0 + 2 * minute)) == {r.id for r in made[3:]}
    assert set(_page_through(inst, 2, started_before=t0 + 2 * minute)) == {r.id for r in made[:3]}
    both = _page_through(inst, 1, started_after=t0 + 2 * minute, started_before=t0 + 3 * minute)
    assert set(both) == {r.id for r in made[3:6]}
    assert cn.list_runs(workflow="nothing", instance=inst).runs == []


def test_a_cursor_is_refused_for_another_filter_and_when_malformed(make_instance: Any) -> None:
    inst = make_instance()
    wf = define(inst, counted)
    for i in range(3):
        cn.start(wf, {"tag": f"c{i}"}, attributes={"k": "v"}, instance=inst)
    page = cn.list_runs(limit=1, attributes={"k": "v"}, instance=inst)
    assert page.next_cursor is not None
    for other in ({}, {"attributes": {"k": "w"}}, {"attributes": {"k": "v"}, "state": "suspended"},
                  {"attributes": {"k": "v"}, "workflow": "counted"}):
        with pytest.raises(ValueError, match="made for another filter"):
            cn.list_runs(limit=1, cursor=page.next_cursor, instance=inst, **other)
    # the same filter (keys in another order) is fine
    assert len(cn.list_runs(limit=1, attributes={"k": "v"}, cursor=page.next_cursor, instance=inst).runs) == 1
    for bad in ("", "not a cursor", page.next_cursor[:-4], "e30", "x" * 5000):
        with pytest.raises(ValueError, match="malformed cursor"):
            cn.list_runs(limit=1, attributes={"k": "v"}, cursor=bad, instance=inst)
    with pytest.raises(TypeError, match="cursor must be None or the str"):
        cn.list_runs(cursor=b"abc", instance=inst)  # type: ignore[arg-type]


def test_paging_never_skips_or_repeats_while_runs_are_inserted(make_instance: Any) -> None:
    inst = make_instance(clock_=SystemClock())
    wf = define(inst, counted)
    before = {cn.start(wf, {"tag": f"p{i}"}, instance=inst).id for i in range(40)}
    stop = threading.Event()
    inserted: list[str] = []

    def insert() -> None:
        while not stop.is_set() and len(inserted) < 200:
            inserted.append(cn.start(wf, {"tag": "new"}, instance=inst).id)

    writer = threading.Thread(target=insert)
    writer.start()
    try:
        paged = _page_through(inst, 3)
    finally:
        stop.set()
        writer.join(60)
    assert len(paged) == len(set(paged)), "a run was listed twice"
    assert before <= set(paged), "a run that existed before paging began was skipped"
    assert set(paged) <= before | set(inserted)


def test_bad_input_is_refused_and_writes_nothing(make_instance: Any) -> None:
    inst = make_instance()
    wf = define(inst, counted)
    with pytest.raises(ValueError, match="unknown state 'done'"):
        cn.list_runs(state="done", instance=inst)
    for limit in (-1, 0, 10**9, 2.5, True):
        with pytest.raises(ValueError, match="limit must be an int"):
            cn.list_runs(limit=limit, instance=inst)
    with pytest.raises(ValueError, match="timezone-aware"):
        cn.list_runs(started_after=datetime(2026, 1, 1), instance=inst)
    with pytest.raises(TypeError, match="started_before must be None or a datetime"):
        cn.list_runs(started_before="2026-01-01", instance=inst)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a JSON scalar"):
        cn.list_runs(attributes={"k": [1]}, instance=inst)
    for call, error, match in (
        (lambda: cn.start(wf, {"tag": "x"}, idempotency_key="a\x00b", instance=inst), ValueError, "NUL"),
        (lambda: cn.start(wf, {"tag": "x"}, idempotency_key="", instance=inst), TypeError, "non-empty str"),
        (lambda: cn.start(wf, {"tag": "x"}, idempotency_key="k" * 401, instance=inst), ValueError, "limit is 400"),
        (lambda: cn.start(wf, {"tag": "x"}, attributes={"at": object()}, instance=inst), TypeError, "JSON scalar"),
        (lambda: cn.start(wf, {"tag": "x"}, attributes={"n": float("nan")}, instance=inst), TypeError, "NaN"),
        (lambda: cn.start(wf, {"tag": "x"}, attributes={1: "a"}, instance=inst), TypeError, "non-empty str"),
        (lambda: cn.start(wf, {"tag": "x"}, attributes=["a"], instance=inst), TypeError, "must be a dict"),
        (lambda: cn.start(wf, {"tag": "x"}, attributes={"t": "x" * 1001}, instance=inst), ValueError, "limit is 1000"),
    ):
        with pytest.raises(error, match=match):
            call()
    assert cn.runs(instance=inst) == []
    run = cn.start(wf, {"tag": "x"}, instance=inst)
    for call, error, match in (
        (lambda: cn.signal(run.id, "go", 1, idempotency_key="a\x00", instance=inst), ValueError, "NUL"),
        (lambda: cn.set_attributes(run.id, {"k": {"nested": 1}}, instance=inst), TypeError, "JSON scalar"),
        (lambda: cn.set_attributes(run.id, {"k\x00": 1}, instance=inst), ValueError, "NUL"),
    ):
        with pytest.raises(error, match=match):
            call()
    assert inst.store.pending_signals(uuid.UUID(run.id)) == []
    assert cn.get_run(run.id, instance=inst).attributes == {}
    for kwargs, error in (({"batch_size": 0}, ValueError), ({"batch_size": -5}, ValueError),
                          ({"execute": "yes"}, TypeError), ({"drop_keys": 1}, TypeError)):
        with pytest.raises(error):
            cn.prune(instance=inst, **kwargs)


def test_runs_page_to_pandas(make_instance: Any) -> None:
    pytest.importorskip("pandas")
    inst = make_instance()
    run = cn.start(define(inst, counted), {"tag": "df"}, attributes={"c": "acme"}, instance=inst)
    frame = cn.list_runs(instance=inst).to_pandas()
    assert list(frame["id"]) == [run.id] and frame["attributes"][0] == {"c": "acme"}
    assert "started_at" in frame.columns and frame["started_at"][0].tzinfo is not None
