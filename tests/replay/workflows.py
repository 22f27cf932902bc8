"""Workflows whose recorded journals live beside this file (``*.json``).

``order`` is the version the journals were recorded with. The others are later edits of it:
``order_refactored`` changes lines and structure but not the effects (must replay), the rest
change the effects (must be rejected as drift).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import continuum_nb as cn

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)  # when the journals were recorded


class NothingLive:
    """Pure replay: no outcome, signal or clock beyond the journal is available."""

    def now(self) -> datetime:
        return NOW

    def task_outcome(self, seq: int) -> None:
        return None

    def signal(self, name: str, skip: set[int]) -> None:
        return None


@cn.activity(name="replay.charge")
def charge(order_id: str, cents: int) -> dict[str, Any]:
    return {"charged": cents, "order": order_id}


@cn.activity(name="replay.ship")
def ship(order_id: str) -> str:
    return f"shipped {order_id}"


@cn.activity(name="replay.notify")
def notify(order_id: str) -> str:
    return f"notified {order_id}"


async def order(order_id: str, cents: int) -> dict[str, Any]:
    receipt = await charge(order_id, cents)
    try:
        decision = await cn.signal("approve", timeout=cn.hours(24))
    except cn.SignalTimeout:
        return {"status": "expired", "receipt": receipt}
    await cn.timer(cn.minutes(5))
    a, b = await cn.gather(ship(order_id), notify(order_id))
    return {"status": "done", "receipt": receipt, "decision": decision, "id": str(cn.uuid4()),
            "at": cn.now().isoformat(), "ship": a, "note": b}


def _label(decision: Any) -> Any:
    return decision  # a pure helper: not an effect


async def order_refactored(order_id: str, cents: int) -> dict[str, Any]:
    # Same effects in the same order; lines moved, a helper added, names changed.
    total = int(cents)
    receipt = await charge(order_id, total)
    try:
        approval = _label(await cn.signal("approve", timeout=cn.hours(24)))
    except cn.SignalTimeout:
        return {"status": "expired", "receipt": receipt}
    await cn.timer(cn.minutes(5))
    shipped, noted = await cn.gather(ship(order_id), notify(order_id))
    ident = str(cn.uuid4())
    return {"status": "done", "receipt": receipt, "decision": approval, "id": ident,
            "at": cn.now().isoformat(), "ship": shipped, "note": noted}


async def order_notify_first(order_id: str, cents: int) -> dict[str, Any]:
    await notify(order_id)  # a new effect before the first recorded one: drift at seq 1
    return await order(order_id, cents)


async def order_clock_first(order_id: str, cents: int) -> dict[str, Any]:
    started = cn.now()  # a side effect where the journal has an activity: drift
    result = await order(order_id, cents)
    result["started"] = started.isoformat()
    return result


async def order_other_signal(order_id: str, cents: int) -> dict[str, Any]:
    receipt = await charge(order_id, cents)
    decision = await cn.signal("approval", timeout=cn.hours(24))  # renamed signal: drift
    return {"receipt": receipt, "decision": decision}


async def order_no_timer(order_id: str, cents: int) -> dict[str, Any]:
    receipt = await charge(order_id, cents)
    try:
        decision = await cn.signal("approve", timeout=cn.hours(24))
    except cn.SignalTimeout:
        return {"status": "expired", "receipt": receipt}
    a, b = await cn.gather(ship(order_id), notify(order_id))  # the timer was removed: drift
    return {"decision": decision, "ship": a, "note": b}


WORKFLOWS = {
    "order": order,
    "order_refactored": order_refactored,
    "order_notify_first": order_notify_first,
    "order_clock_first": order_clock_first,
    "order_other_signal": order_other_signal,
    "order_no_timer": order_no_timer,
}
