"""Helpers of the engine contract tests (tests/engine), imported by name.

``eventually`` (wait for a condition, with a deadline), ``types`` and ``journal`` (a run's events),
``suspended_on`` (a run is suspended and its last event is this one), ``define`` (register a
workflow in one instance only), ``Recorder`` (the telemetry events seen), and the activities and
the workflow that several test files share: ``flaky``, ``double``, ``async_inc``, ``charge``,
``approval``. tests/integration/test_snapshots.py uses some of them too.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import continuum_nb as cn
from continuum_nb import telemetry
from continuum_nb.workflow import WorkflowDef


def eventually(cond: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Wait for ``cond()`` to be truthy, with a deadline (never a fixed sleep)."""
    end = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def through_backoff(inst: cn.Instance, clock: Any, run: cn.Run, step: float = 0.02) -> None:
    """Wait for the run to end while moving the virtual clock in steps as short as these tests'
    retry backoffs: a backoff runs on the engine clock, like a timer."""

    def ended() -> bool:
        if cn.api.get_run(run.id, instance=inst).state in ("completed", "failed", "cancelled", "drifted"):
            return True
        clock.advance(step)
        return False

    eventually(ended, what=f"run {run.id} to end through its retries")


def types(inst: cn.Instance, run: cn.Run) -> list[str]:
    return [e.event_type for e in cn.api.events(run.id, instance=inst)]


def journal(inst: cn.Instance, run: cn.Run) -> list[Any]:
    return cn.api.events(run.id, instance=inst)


def suspended_on(inst: cn.Instance, run: cn.Run, event_type: str) -> bool:
    info = cn.api.get_run(run.id, instance=inst)
    evs = journal(inst, run)
    return info.state == "suspended" and bool(evs) and evs[-1].event_type == event_type


def define(inst: cn.Instance, fn: Any, name: str | None = None) -> WorkflowDef:
    """Register ``fn`` in this instance only (tests must not leak definitions into others)."""
    wf = WorkflowDef(fn, name=name or fn.__name__)
    inst.registry.register(wf)
    return wf


class Recorder:
    def __init__(self, *events: tuple[str, ...]) -> None:
        self.id = f"rec-{uuid.uuid4().hex[:8]}"
        self.seen: list[tuple[tuple[str, ...], dict[str, Any], dict[str, Any]]] = []
        self._lock = threading.Lock()
        telemetry.attach(self.id, list(events), self)

    def __call__(self, event: tuple[str, ...], meas: dict[str, Any], meta: dict[str, Any]) -> None:
        with self._lock:
            self.seen.append((event, meas, meta))

    def names(self) -> list[tuple[str, ...]]:
        with self._lock:
            return [e for e, _, _ in self.seen]

    def close(self) -> None:
        telemetry.detach(self.id)


# ------------------------------------------------------------------------------------------------
# shared activities and workflows (the activity names are part of the assertions)
# ------------------------------------------------------------------------------------------------


_flaky_calls: dict[str, int] = {}


@cn.activity(name="cases.flaky", retry=cn.Retry(max_attempts=3, backoff="constant", base=cn.seconds(0.01)))
def flaky(key: str, fail_times: int) -> dict[str, Any]:
    n = _flaky_calls.get(key, 0) + 1
    _flaky_calls[key] = n
    if n <= fail_times:
        raise RuntimeError(f"attempt {n} fails")
    return {"key": key, "attempt": n}


@cn.activity(name="cases.double")
def double(x: int) -> int:
    return 2 * x


@cn.activity(name="cases.async_inc")
async def async_inc(x: int) -> int:
    return x + 1


_charges: list[str] = []


@cn.activity(name="cases.charge", idempotency_key=lambda order_id, cents: f"charge:{order_id}")
def charge(order_id: str, cents: int) -> dict[str, Any]:
    _charges.append(order_id)
    return {"order_id": order_id, "cents": cents, "n": len(_charges)}


async def approval(wait_first: float) -> Any:
    await cn.timer(cn.seconds(wait_first))
    try:
        return await cn.signal("approve", timeout=cn.hours(1))
    except cn.SignalTimeout:
        return "expired"
