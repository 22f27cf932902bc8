"""cn.testing.environment(): the virtual clock skips ahead over timers and retry backoffs by
itself, never over a signal's timeout while the test could still send the signal; stubs,
crash, expire_lease, fire_timers and the paranoid replay check. Every store: the in-memory
store, and each real server through ``environment(database_url=...)``."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import continuum_nb as cn
from continuum_nb.testing import Environment
from continuum_nb.workflow import WorkflowDef
from tests.engine.helpers import eventually

START = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
_calls: dict[str, int] = {}


def _count(key: str) -> int:
    _calls[key] = _calls.get(key, 0) + 1
    return _calls[key]


@cn.activity(name="env.flaky", retry=cn.Retry(max_attempts=5, base=cn.minutes(1), max_interval=cn.hours(1)))
def flaky(key: str, fail_times: int) -> int:
    n = _count(key)
    if n <= fail_times:
        raise ConnectionError(f"attempt {n} fails")
    return n


@cn.activity(name="env.picky", retry=cn.Retry(max_attempts=5, base=cn.seconds(1), non_retryable=(ValueError,)))
def picky(key: str, how: str) -> int:
    _count(key)
    if how == "value":
        raise ValueError("a bad order")
    if how == "declined":
        raise cn.NonRetryableError("card declined")
    raise ConnectionError("down")


@cn.activity(name="env.charge")
def charge(cents: int) -> str:
    return f"charged {cents} for real"


async def month_then_retries(key: str) -> dict[str, Any]:
    await cn.timer(cn.days(30))
    n = await flaky(key, 4)
    return {"attempts": n, "at": cn.now().isoformat()}


async def picky_flow(key: str, how: str) -> Any:
    try:
        return await picky(key, how)
    except cn.ActivityFailed as exc:
        return [exc.error_type, exc.attempts]


async def approval() -> Any:
    try:
        return await cn.signal("approve", timeout=cn.days(2))
    except cn.SignalTimeout:
        return "expired"


async def checkout(cents: int) -> str:
    return await charge(cents)


_bodies: dict[str, int] = {}


async def counted(key: str) -> str:
    _bodies[key] = _bodies.get(key, 0) + 1  # counts how often the code runs from the top
    await cn.timer(cn.hours(1))
    await cn.timer(cn.hours(1))
    return "done"


@pytest.fixture
def env(store_kind: str, request: pytest.FixtureRequest) -> Iterator[Environment]:
    url = None if store_kind == "memory" else request.getfixturevalue("db_url")
    e = cn.testing.environment(database_url=url, start_at=START)
    yield e
    e.close()


def define(env: Environment, fn: Any) -> WorkflowDef:
    wf = WorkflowDef(fn, name=fn.__name__)
    env.instance.registry.register(wf)
    return wf


def test_a_30_day_timer_and_5_attempts_complete_on_the_virtual_clock(env: Environment) -> None:
    key = uuid.uuid4().hex
    run = env.start(define(env, month_then_retries), {"key": key})
    result = env.wait(run, timeout=30)
    assert result["attempts"] == 5
    # 30 days, then backoffs of 1, 2, 4 and 8 minutes between the five attempts
    assert datetime.fromisoformat(result["at"]) >= START + timedelta(days=30, minutes=15)
    assert env.now() >= START + timedelta(days=30, minutes=15)
    done = [e for e in env.events(run) if e.event_type == "activity_completed"]
    assert done[0].payload["attempts"] == 5


@pytest.mark.parametrize("how,expected", [
    ("value", ["builtins.ValueError", 1]),                       # non_retryable=(ValueError,)
    ("declined", ["continuum_nb.errors.NonRetryableError", 1]),  # raised by the body
    ("down", ["builtins.ConnectionError", 5]),                   # retried to max_attempts
])
def test_non_retryable_errors_stop_the_retries(env: Environment, how: str, expected: list[Any]) -> None:
    key = uuid.uuid4().hex
    run = env.start(define(env, picky_flow), {"key": key, "how": how})
    assert env.wait(run, timeout=30) == expected
    assert _calls[key] == expected[1]


def test_a_backoff_waits_for_the_virtual_clock(store_kind: str, request: pytest.FixtureRequest) -> None:
    url = None if store_kind == "memory" else request.getfixturevalue("db_url")
    with cn.testing.environment(database_url=url, start_at=START, auto_skip=False) as env:
        key = uuid.uuid4().hex
        run = env.start(define(env, picky_flow), {"key": key, "how": "down"})
        store = env.instance.store
        rid = uuid.UUID(run.id)

        def backing_off() -> Any:
            tasks = store.open_tasks(rid)  # type: ignore[attr-defined]
            return tasks and tasks[0].state == "available" and tasks[0].attempt == 2 and tasks[0]

        task = eventually(backing_off, what="the first retry to be booked")
        # the next attempt is due one second later on the engine's (virtual) clock
        assert task.available_at == START + timedelta(seconds=1)
        assert _calls[key] == 1
        env.advance(cn.seconds(1))
        eventually(lambda: _calls.get(key) == 2, what="the second attempt")


def test_a_signal_timeout_is_not_skipped_while_the_test_can_still_signal(env: Environment) -> None:
    run = env.start(define(env, approval))
    eventually(lambda: env.get_run(run).state == "suspended"
               and env.events(run)[-1].event_type == "signal_awaited", what="the signal wait")
    env.signal(run, "approve", {"by": "ana"})
    assert env.wait(run) == {"by": "ana"}  # not "expired": the 2-day timeout was not skipped


def test_waiting_for_a_run_skips_its_signal_timeout(env: Environment) -> None:
    run = env.start(define(env, approval))
    assert env.wait(run) == "expired"
    assert env.now() >= START + timedelta(days=2)


def test_manual_advance_still_works(store_kind: str, request: pytest.FixtureRequest) -> None:
    url = None if store_kind == "memory" else request.getfixturevalue("db_url")
    with cn.testing.environment(database_url=url, start_at=START, auto_skip=False) as env:
        run = env.start(define(env, approval))
        eventually(lambda: env.events(run) and env.events(run)[-1].event_type == "signal_awaited", what="wait")
        env.advance(cn.days(2))
        assert env.wait(run) == "expired"


def test_fire_timers_fires_what_is_pending(store_kind: str, request: pytest.FixtureRequest) -> None:
    url = None if store_kind == "memory" else request.getfixturevalue("db_url")
    with cn.testing.environment(database_url=url, start_at=START, auto_skip=False) as env:
        run = env.start(define(env, approval))
        eventually(lambda: env.events(run) and env.events(run)[-1].event_type == "signal_awaited", what="wait")
        assert env.fire_timers() == 1
        assert env.wait(run) == "expired"
        assert env.fire_timers() == 0


@pytest.mark.stores("memory")
def test_a_stub_replaces_an_activity_body_until_the_environment_closes(env: Environment) -> None:
    wf = define(env, checkout)
    env.stub(charge, "stubbed")
    assert env.run(wf, {"cents": 5}) == "stubbed"
    env.stub("env.charge", lambda cents: f"fake {cents}")
    assert env.run(wf, {"cents": 7}) == "fake 7"
    env.stub(charge, cn.NonRetryableError("declined"))
    with pytest.raises(cn.RunFailed, match="declined"):
        env.run(wf, {"cents": 9})
    env.close()
    assert charge.fn(3) == "charged 3 for real"


@pytest.mark.stores("memory")
def test_stubbing_something_that_is_not_an_activity_is_one_line(env: Environment) -> None:
    with pytest.raises(cn.ConfigurationError, match="no activity named 'nope'"):
        env.stub("nope", 1)


@pytest.mark.stores("postgres")
def test_a_stub_is_refused_on_a_real_database(env: Environment) -> None:
    with pytest.raises(cn.ConfigurationError, match="refused on a real database") as info:
        env.stub(charge, "stubbed")
    assert "\n" not in str(info.value)
    assert charge.fn(1) == "charged 1 for real"


def test_crash_replays_the_run_from_its_journal(store_kind: str, request: pytest.FixtureRequest) -> None:
    url = None if store_kind == "memory" else request.getfixturevalue("db_url")
    with cn.testing.environment(database_url=url, start_at=START, auto_skip=False) as env:
        key = uuid.uuid4().hex
        run = env.start(define(env, counted), {"key": key})
        eventually(lambda: env.events(run) and env.events(run)[-1].event_type == "timer_started", what="timer")
        assert _bodies[key] == 1
        env.crash(run)
        eventually(lambda: _bodies[key] == 2, what="the replay after the crash")
        env.advance(cn.hours(1))
        eventually(lambda: len(env.events(run)) == 3, what="the second timer")
        env.advance(cn.hours(1))
        assert env.wait(run) == "done"
        assert [e.event_type for e in env.events(run)] == ["timer_started", "timer_fired"] * 2


_gates: dict[str, threading.Event] = {}


@cn.activity(name="env.gated")
def gated(key: str) -> str:
    _count(key)
    _gates[key].wait(20)
    return "through"


async def held_on_activity(key: str) -> str:
    _bodies[key] = _bodies.get(key, 0) + 1
    return await gated(key)


def test_an_expired_lease_is_taken_over_with_a_new_token(store_kind: str, request: pytest.FixtureRequest) -> None:
    url = None if store_kind == "memory" else request.getfixturevalue("db_url")
    with cn.testing.environment(database_url=url, start_at=START, auto_skip=False) as env:
        key = uuid.uuid4().hex
        _gates[key] = threading.Event()
        run = env.start(define(env, held_on_activity), {"key": key})
        rid = uuid.UUID(run.id)
        eventually(lambda: _calls.get(key) == 1, what="the attempt to start")
        token = env.instance.store.get_run(rid).lease_token
        assert token is not None  # held while its attempt runs
        env.expire_lease(run)
        assert env.instance.store.get_run(rid).lease_token != token  # taken over
        _gates[key].set()
        assert env.wait(run) == "through"
        assert _bodies[key] >= 2  # claimed anew and replayed from its journal
        # the old holder's commit was refused: the outcome is journaled once
        assert [e.event_type for e in env.events(run)] == ["activity_scheduled", "activity_completed"]
        # ...and it was not lost with that commit: written to its task row (the task's lease was
        # still the old holder's), it is what the new holder journaled; the body ran once
        assert _calls[key] == 1


_drifting = {"n": 0}


async def nondeterministic() -> int:
    _drifting["n"] += 1  # a value the journal does not hold: replay sees another one
    await cn.timer(cn.seconds(1))
    return _drifting["n"]


@pytest.mark.stores("memory")
def test_paranoid_replays_every_completed_run_and_compares_the_result() -> None:
    with cn.testing.environment(paranoid=True) as env:
        assert env.run(define(env, counted), {"key": uuid.uuid4().hex}) == "done"
        with pytest.raises(cn.DriftError, match="now returns"):
            env.run(define(env, nondeterministic))


@pytest.mark.stores("memory")
def test_paranoid_checks_at_close_the_runs_nobody_waited_for() -> None:
    env = cn.testing.environment(paranoid=True)
    run = env.start(define(env, nondeterministic))
    eventually(lambda: env.get_run(run).state == "completed", what="the run to complete")
    with pytest.raises(cn.DriftError, match="now returns"):
        env.close()
