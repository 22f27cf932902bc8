"""wait(): an outcome reached on this engine needs no read; on the real servers a waiter is
woken by NOTIFY (not a poll) and shares the instance's one LISTEN connection with the engine."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

import continuum_nb as cn
from tests.engine.helpers import define, double, eventually, suspended_on


def test_waiting_on_a_run_finished_here_needs_no_read(make_instance: Any) -> None:
    """This engine hands the outcome to local waiters, also to one that comes after the end."""
    inst = make_instance()
    reads = {"get_run": 0}
    store = inst.store
    original = store.get_run

    def counting(*a: Any, **k: Any) -> Any:
        reads["get_run"] += 1
        return original(*a, **k)

    store.get_run = counting  # type: ignore[method-assign]

    async def two_steps(x: int) -> int:
        return await double(await double(x))

    wf = define(inst, two_steps)
    for i in range(10):
        run = cn.start(wf, {"x": i}, instance=inst)
        assert cn.wait(run.id, timeout=30, instance=inst) == 4 * i
        assert cn.wait(run.id, timeout=30, instance=inst) == 4 * i  # after the end
    assert reads["get_run"] == 0


@pytest.mark.stores("postgres")
def test_wait_is_woken_by_notify_not_a_poll(make_instance: Any) -> None:
    worker = make_instance()
    client = make_instance(run_engine=False)

    async def gated() -> Any:
        return await cn.signal("open")

    wf = define(worker, gated)
    run = cn.start(wf, instance=worker)
    eventually(lambda: suspended_on(worker, run, "signal_awaited"), what="await")
    reads = {"n": 0}
    original = client.store.get_run

    def counting(*a: Any, **k: Any) -> Any:
        reads["n"] += 1
        return original(*a, **k)

    client.store.get_run = counting  # type: ignore[method-assign]
    result: dict[str, Any] = {}
    waiter = threading.Thread(target=lambda: result.update(v=cn.wait(run.id, timeout=60, instance=client)))
    waiter.start()
    eventually(lambda: reads["n"] >= 1, what="first read")
    cn.signal(run.id, "open", "now", instance=client)
    waiter.join(60)
    assert result == {"v": "now"}
    assert reads["n"] <= 3  # initial check + the notified re-check (a poll would read many times)


@pytest.mark.stores("postgres")
def test_the_engine_and_wait_share_one_listen_connection(make_instance: Any, admin_url: str) -> None:
    """Every NOTIFY wakes each listening backend and its thread: an instance keeps one."""
    inst = make_instance()

    async def one_step(x: int) -> int:
        return await double(x)

    wf = define(inst, one_step)
    run = cn.start(wf, {"x": 2}, instance=inst)
    assert cn.wait(run.id, timeout=30, instance=inst) == 4
    dbname = psycopg.conninfo.conninfo_to_dict(inst.conninfo)["dbname"]

    def listening() -> int:
        # the last statement of a listening connection is its last LISTEN (one per channel)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND query ILIKE 'LISTEN %%'", (dbname,)
            ).fetchone()
        return int(row[0]) if row else 0

    # the engine subscribes from its own thread; a connection closed meanwhile leaves
    # pg_stat_activity a moment later
    eventually(lambda: inst.engine.dispatcher.listening, what="engine subscribed")
    eventually(lambda: listening() == 1, what="one LISTEN connection")
    run = cn.start(wf, {"x": 3}, instance=inst)
    assert cn.wait(run.id, timeout=30, instance=inst) == 6
    assert listening() == 1
