"""Workflows of the composing commands whose recorded journals live beside this file
(``composing_*.json``, written by ``python -m tests.replay.record_composing``), and the later
edits of them that must replay (same effects) or be rejected as drift.

- ``expedite``: a patch, a replay-safe log line, and ``cn.first`` of a signal and a timer;
- ``trip``: a saga whose compensations run last in first out, one of them failing.
"""

from __future__ import annotations

from typing import Any

import continuum_nb as cn

from .workflows import charge, notify, ship


@cn.activity(name="replay.refund", retry=cn.Retry(max_attempts=1))
def refund(order_id: str) -> str:
    if order_id.startswith("broken"):
        raise RuntimeError(f"refund of {order_id} refused")
    return f"refunded {order_id}"


@cn.activity(name="replay.unship", retry=cn.Retry(max_attempts=1))
def unship(order_id: str) -> str:
    return f"unshipped {order_id}"


@cn.activity(name="replay.book", retry=cn.Retry(max_attempts=1))
def book(order_id: str) -> str:
    raise RuntimeError(f"no room for {order_id}")


async def expedite(order_id: str) -> dict[str, Any]:
    fast = cn.patched("expedite-v2")
    cn.log("expediting", order=order_id, fast=fast)
    index, value = await cn.first(cn.signal("approve"), cn.timer(cn.hours(1)))
    shipped = await ship(order_id) if index == 0 else None
    return {"fast": fast, "index": index, "value": value, "shipped": shipped}


async def expedite_refactored(order_id: str) -> dict[str, Any]:
    # Same effects; log lines added and moved (a log is never a command), names changed.
    cn.log("before the patch")
    fast = cn.patched("expedite-v2")
    cn.log("waiting", fast=fast)
    cn.log("for the approval or an hour")
    which, what = await cn.first(cn.signal("approve"), cn.timer(cn.hours(1)))
    return {"fast": fast, "index": which, "value": what, "shipped": await ship(order_id) if which == 0 else None}


async def expedite_swapped(order_id: str) -> dict[str, Any]:
    cn.patched("expedite-v2")
    index, value = await cn.first(cn.timer(cn.hours(1)), cn.signal("approve"))  # order changed: drift
    return {"index": index, "value": value}


async def expedite_patch_removed(order_id: str) -> dict[str, Any]:
    # The patch call removed (not deprecated) while runs with the marker exist: drift.
    index, value = await cn.first(cn.signal("approve"), cn.timer(cn.hours(1)))
    return {"index": index, "value": value}


async def expedite_patch_deprecated(order_id: str) -> dict[str, Any]:
    cn.deprecate_patch("expedite-v2")  # the old branch is gone: replays with or without the marker
    index, value = await cn.first(cn.signal("approve"), cn.timer(cn.hours(1)))
    shipped = await ship(order_id) if index == 0 else None
    return {"fast": True, "index": index, "value": value, "shipped": shipped}


async def trip(order_id: str) -> Any:
    saga = cn.saga()
    await charge(order_id, 100)
    saga.add(refund, f"broken-{order_id}")
    await ship(order_id)
    saga.add(unship, order_id)
    try:
        await book(order_id)
    except cn.ActivityFailed as exc:
        undone = await saga.compensate()
        return {"failed": str(exc), "undone": [u if isinstance(u, str) else type(u).__name__ for u in undone]}
    return "booked"


async def trip_extra_compensation(order_id: str) -> Any:
    saga = cn.saga()
    await charge(order_id, 100)
    saga.add(refund, f"broken-{order_id}")
    saga.add(notify, order_id)  # a compensation added before an existing step: drift on compensation
    await ship(order_id)
    saga.add(unship, order_id)
    try:
        await book(order_id)
    except cn.ActivityFailed:
        await saga.compensate()
    return "booked"


async def order_patched(order_id: str, cents: int) -> dict[str, Any]:
    """``order`` with a patch before its first step: histories recorded before it replay the
    old branch (no ``patched`` in them), new runs take the new one."""
    from .workflows import order

    if cn.patched("notify-first"):
        await notify(order_id)
    return await order(order_id, cents)


COMPOSING_WORKFLOWS = {
    "expedite": expedite,
    "expedite_refactored": expedite_refactored,
    "expedite_swapped": expedite_swapped,
    "expedite_patch_removed": expedite_patch_removed,
    "expedite_patch_deprecated": expedite_patch_deprecated,
    "trip": trip,
    "trip_extra_compensation": trip_extra_compensation,
    "order_patched": order_patched,
}
