"""Poison is contained: whatever a workflow or activity body does, only that attempt or run
fails, with its error recorded, and the engine goes on serving (docs/semantics.md)."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

import continuum_nb as cn
from continuum_nb.definitions.workflow import source_hash
from continuum_nb.engine.clock import VirtualClock
from tests.engine.helpers import define, double, through_backoff

_ONCE = cn.Retry(max_attempts=2, backoff="constant", base=cn.seconds(0.01))


class _Custom(BaseException):
    pass


_calls: dict[str, int] = {}


def _count(key: str) -> None:
    _calls[key] = _calls.get(key, 0) + 1


@cn.activity(name="poison.exits", retry=_ONCE)
def exits(key: str, how: str) -> None:
    _count(key)
    if how == "exit":
        sys.exit(3)
    if how == "interrupt":
        raise KeyboardInterrupt("from an activity")
    raise _Custom("a BaseException of its own")


@cn.activity(name="poison.exits_async", retry=_ONCE)
async def exits_async(key: str) -> None:
    _count(key)
    sys.exit(4)


@cn.activity(name="poison.exits_timed", retry=_ONCE, timeout=cn.seconds(30))
def exits_timed(key: str) -> None:
    _count(key)
    raise KeyboardInterrupt("on the activity pool")


@cn.activity(name="poison.nul_result", retry=_ONCE)
def nul_result(key: str) -> str:
    _count(key)
    return "a\x00b"


@cn.activity(name="poison.nul_error")
def nul_error() -> None:
    raise RuntimeError("x\x00y\ud800")


@cn.activity(name="poison.once")
def fails_once(key: str) -> str:
    _count(key)
    raise RuntimeError("no retry= given")


_keyless: list[int] = []


@cn.activity(name="poison.keyless", idempotency_key=lambda n: None)
def keyless(n: int) -> int:
    _keyless.append(n)
    return n


def _failure(inst: cn.Instance, wf: Any) -> dict[str, Any]:
    run = cn.start(wf, instance=inst)
    with pytest.raises(cn.RunFailed) as info:
        cn.wait(run.id, timeout=30, instance=inst)
    assert cn.api.get_run(run.id, instance=inst).state == "failed"
    return info.value.error


def _still_serves(inst: cn.Instance) -> None:
    async def healthy() -> int:
        return await double(21)

    assert cn.wait(cn.start(define(inst, healthy), instance=inst).id, timeout=30, instance=inst) == 42


@pytest.mark.parametrize("how", ["exit", "interrupt", "custom"])
def test_an_activity_that_exits_fails_its_attempts_not_the_engine(make_instance: Any, clock: VirtualClock, how: str) -> None:
    inst = make_instance()
    key = f"{how}-{uuid.uuid4().hex[:6]}"

    async def calls_it() -> Any:
        try:
            await exits(key, how)
        except cn.ActivityFailed as exc:
            return [exc.error_type, exc.attempts]
        return "not raised"

    run = cn.start(define(inst, calls_it), instance=inst)
    expected = {"exit": "builtins.SystemExit", "interrupt": "builtins.KeyboardInterrupt",
                "custom": f"{__name__}._Custom"}[how]
    through_backoff(inst, clock, run)
    assert cn.wait(run.id, timeout=30, instance=inst) == [expected, 2]
    assert _calls[key] == 2  # max_attempts ended it
    _still_serves(inst)


@pytest.mark.parametrize("activity", [exits_async, exits_timed], ids=["async", "timeout"])
def test_an_activity_that_exits_on_the_activity_pool_fails_its_attempts(make_instance: Any, clock: VirtualClock, activity: Any) -> None:
    inst = make_instance()
    key = f"pool-{uuid.uuid4().hex[:6]}"

    async def calls_it() -> Any:
        try:
            await activity(key)
        except cn.ActivityFailed as exc:
            return exc.error_type
        return "not raised"

    run = cn.start(define(inst, calls_it), instance=inst)
    through_backoff(inst, clock, run)
    assert cn.wait(run.id, timeout=30, instance=inst) in ("builtins.SystemExit", "builtins.KeyboardInterrupt")
    assert _calls[key] == 2
    _still_serves(inst)


def test_an_activity_result_that_cannot_be_stored_fails_the_attempt(make_instance: Any, clock: VirtualClock) -> None:
    inst = make_instance()
    key = f"nul-{uuid.uuid4().hex[:6]}"

    async def calls_it() -> Any:
        try:
            return await nul_result(key)
        except cn.ActivityFailed as exc:
            return [exc.error_type, exc.attempts]

    run = cn.start(define(inst, calls_it), instance=inst)
    through_backoff(inst, clock, run)
    assert cn.wait(run.id, timeout=30, instance=inst) == ["builtins.ValueError", 2]
    assert _calls[key] == 2


def test_an_error_message_that_cannot_be_stored_is_recorded_escaped(make_instance: Any) -> None:
    inst = make_instance()

    async def calls_it() -> None:
        await nul_error()

    error = _failure(inst, define(inst, calls_it))
    assert "x\\x00y\\ud800" in error["message"]


@pytest.mark.parametrize("where", ["first wake", "after a step"])
@pytest.mark.parametrize("exc", [SystemExit(2), KeyboardInterrupt(), _Custom("own"), ValueError("nul \x00 here")],
                         ids=["SystemExit", "KeyboardInterrupt", "custom", "nul-message"])
def test_a_workflow_that_raises_anything_fails_with_its_error(
    make_instance: Any, where: str, exc: BaseException
) -> None:
    inst = make_instance()

    async def rude() -> None:
        if where == "after a step":
            await double(1)
        raise exc

    error = _failure(inst, define(inst, rude))
    assert error["type"].endswith(type(exc).__qualname__)
    _still_serves(inst)


def test_a_timer_of_nan_seconds_is_refused_in_the_workflow(make_instance: Any) -> None:
    inst = make_instance()

    async def nan_timer() -> None:
        await cn.timer(float("nan"))

    error = _failure(inst, define(inst, nan_timer))
    assert error["type"] == "builtins.ValueError" and "timer duration" in error["message"]


def test_without_retry_an_activity_is_attempted_once(make_instance: Any) -> None:
    inst = make_instance()
    key = f"once-{uuid.uuid4().hex[:6]}"

    async def calls_it() -> Any:
        try:
            await fails_once(key)
        except cn.ActivityFailed as exc:
            return exc.attempts

    assert cn.wait(cn.start(define(inst, calls_it), instance=inst).id, timeout=30, instance=inst) == 1
    assert _calls[key] == 1


def test_an_idempotency_key_of_none_opts_out(make_instance: Any) -> None:
    inst = make_instance()
    n = len(_keyless)

    async def twice() -> list[int]:
        return [await keyless(5), await keyless(5)]

    assert cn.wait(cn.start(define(inst, twice), instance=inst).id, timeout=30, instance=inst) == [5, 5]
    assert _keyless[n:] == [5, 5]  # no stored result answered the second call


def test_a_wake_that_keeps_failing_is_parked_with_the_reason(make_instance: Any) -> None:
    """A failure outside the workflow (here: the store refuses every commit of this run's wakes
    after the first) is retried a bounded number of times, then the run is parked, visibly."""
    inst = make_instance(poll_interval=0.01)

    async def two_steps() -> int:
        await cn.signal("go")
        return 1

    run = cn.start(define(inst, two_steps), instance=inst)
    rid = uuid.UUID(run.id)
    store = inst.store
    real = store.commit_wake
    attempts: list[int] = []

    def refusing(wake: Any) -> Any:
        if wake.run_id == rid:
            attempts.append(1)
            raise RuntimeError("the store refused this run's wake")
        return real(wake)

    store.commit_wake = refusing  # type: ignore[method-assign]
    try:
        cn.signal(run.id, "go", None, instance=inst)
        with pytest.raises(cn.DriftError) as info:
            cn.wait(run.id, timeout=60, instance=inst)
    finally:
        store.commit_wake = real  # type: ignore[method-assign]
    assert info.value.error["type"] == "wake_failed"
    assert "the store refused this run's wake" in info.value.error["message"]
    assert len(attempts) == 5
    assert cn.api.get_run(run.id, instance=inst).state == "drifted"
    cn.resume(run.id, instance=inst)  # the cause is gone: it goes on
    assert cn.wait(run.id, timeout=30, instance=inst) == 1


def test_a_tampered_stored_cell_never_runs(make_instance: Any, tmp_path: Path) -> None:
    """A stored %%workflow source that no longer hashes to its version is refused before any of
    it runs; the run it blocks is parked as drifted with the reason, and the engine goes on."""
    client = make_instance(run_engine=False)
    marker = tmp_path / "ran"
    name = f"tampered_{uuid.uuid4().hex[:6]}"
    honest = f"import continuum_nb as cn\n\n@cn.workflow\nasync def {name}():\n    return 1\n"
    version = source_hash(honest)
    evil = f"open({str(marker)!r}, 'w').write('x')\nraise SystemExit(1)\n" + honest
    client.store.save_version(name, version, evil, "cell")
    run = cn.start(name, instance=client)  # inserted for whichever engine can run it
    worker = make_instance(allow_stored_code=True)
    worker.start_engine()
    with pytest.raises(cn.DriftError) as info:
        cn.wait(run.id, timeout=30, instance=worker)
    assert info.value.error["type"] == "stored_code_refused"
    assert "the row was altered" in info.value.error["message"]
    assert not marker.exists()
    _still_serves(worker)
