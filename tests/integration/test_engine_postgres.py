"""Engine behaviour (tests/engine_cases.py) on real PostgreSQL (both servers), plus what only a
real database can show: the signal/timeout race under the run lock, timers across restarts,
wait() woken by NOTIFY."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

import continuum_nb as cn
from continuum_nb.engine.clock import VirtualClock
from tests.engine_cases import *  # noqa: F403 - the shared cases
from tests.engine_cases import define, double, eventually, journal, suspended_on


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def make_instance(db_url: str, clock: VirtualClock) -> Iterator[Any]:
    made: list[cn.Instance] = []

    def make(clock_: VirtualClock | None = None, **settings: Any) -> cn.Instance:
        settings.setdefault("poll_interval", 0.2)
        settings.setdefault("lease_ttl", 5.0)
        inst = cn.Instance(f"pg-{uuid.uuid4().hex[:8]}", database_url=db_url, clock=clock_ or clock, **settings)
        made.append(inst)
        return inst

    yield make
    for inst in made:
        inst.close()


async def race(n: int) -> Any:
    try:
        return await cn.signal("go", timeout=cn.seconds(10))
    except cn.SignalTimeout:
        return "timeout"


def test_signal_versus_timeout_exactly_one_wins(make_instance: Any, clock: VirtualClock) -> None:
    inst = make_instance(release_after=3600)  # keep coroutines live: the race is in the wake
    wf = define(inst, race)
    runs = [cn.start(wf, {"n": i}, instance=inst) for i in range(300)]
    for run in runs:
        eventually(lambda run=run: suspended_on(inst, run, "signal_awaited"), what="await")
    accepted: set[str] = set()
    first_sent = threading.Event()

    def send_all() -> None:
        for r in runs:
            try:
                cn.signal(r.id, "go", r.id, instance=inst)
                accepted.add(r.id)
            except cn.RunNotActive:
                pass  # the timeout already won and the run finished: the send is refused, not lost
            first_sent.set()

    sender = threading.Thread(target=send_all)
    sender.start()
    assert first_sent.wait(30)
    clock.advance(cn.seconds(11))  # every timeout is due while the signals arrive
    sender.join()
    outcomes = {"signal": 0, "timeout": 0}
    for run in runs:
        result = cn.wait(run.id, timeout=60, instance=inst)
        evs = journal(inst, run)
        awaited = [e for e in evs if e.event_type == "signal_awaited"]
        resolutions = [e for e in evs if e.payload.get("awaited_seq") == awaited[0].seq
                       or e.payload.get("started_seq") == awaited[0].seq]
        assert len(resolutions) == 1, [e.event_type for e in evs]  # exactly one wins
        pending = inst.store.pending_signals(uuid.UUID(run.id), ["go"])
        if resolutions[0].event_type == "signal_received":
            assert result == run.id and pending == []
            outcomes["signal"] += 1
        else:
            assert result == "timeout"
            # a late signal that was accepted is kept in the mailbox, not lost
            assert [s.payload for s in pending] == ([run.id] if run.id in accepted else [])
            outcomes["timeout"] += 1
    assert sum(outcomes.values()) == 300
    assert accepted  # the race really had signals arriving


def test_timers_survive_an_engine_restart(make_instance: Any, clock: VirtualClock) -> None:
    first = make_instance()

    async def nap() -> str:
        await cn.timer(cn.hours(6))
        return "rested"

    run = cn.start(define(first, nap), instance=first)
    eventually(lambda: suspended_on(first, run, "timer_started"), what="timer")
    first.stop()
    later = VirtualClock(clock.now())
    second = make_instance(clock_=later)
    define(second, nap)
    later.advance(cn.hours(7))
    assert cn.wait(run.id, timeout=30, instance=second) == "rested"
    assert [e.event_type for e in journal(second, run)] == ["timer_started", "timer_fired"]


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
