"""The workflows whose recorded histories live in this folder (``record.py`` re-records them).

``trip`` journals every event type: an activity that completes and one that fails (caught), a
timer, a signal received and a signal wait that times out, and side effects (``cn.now``,
``cn.uuid4``). ``trip_v0`` is an older version of ``trip`` (it books the hotel first): its
recorded history must be rejected as drift by the current ``trip``.
"""

from __future__ import annotations

from typing import Any

import continuum_nb as cn


@cn.activity(name="histories.book")
def book(what: str, city: str) -> str:
    return f"{what} in {city}"


@cn.activity(name="histories.pay")
def pay(cents: int) -> dict[str, Any]:
    if cents > 100_000:
        raise ValueError(f"{cents} is over the card limit")
    return {"paid": cents}


async def trip(city: str, cents: int) -> dict[str, Any]:
    flight = await book("flight", city)
    try:
        payment = await pay(cents * 1000)
    except cn.ActivityFailed:
        payment = await pay(cents)
    ref = str(cn.uuid4())
    booked_at = cn.now().isoformat()
    await cn.timer(cn.hours(1))
    approval = await cn.signal("approve", timeout=cn.days(1))
    try:
        extra = await cn.signal("upgrade", timeout=cn.hours(2))
    except cn.SignalTimeout:
        extra = None
    hotel = await book("hotel", city)
    return {"flight": flight, "hotel": hotel, "payment": payment, "approval": approval, "extra": extra,
            "has_ref": len(ref) == 36, "booked": bool(booked_at)}


async def trip_v0(city: str, cents: int) -> dict[str, Any]:
    hotel = await book("hotel", city)
    flight = await book("flight", city)
    payment = await pay(cents)
    return {"flight": flight, "hotel": hotel, "payment": payment}


async def family_kid(city: str) -> str:
    """A child of ``family``: one activity."""
    return await book("room", city)


async def family(cities: list[str]) -> dict[str, Any]:
    """A parent: a child awaited at once, children in one gather, a handle awaited later, and a
    child of an unknown workflow (refused, caught)."""
    first = await cn.child("family_kid", {"city": cities[0]})
    handle = await cn.start_child("family_kid", {"city": cities[1]}, run_id="later")
    both = await cn.gather(*(cn.child("family_kid", {"city": c}) for c in cities[2:4]))
    try:
        await cn.child("no_such_kid", {})
    except cn.ChildFailed as exc:
        refused = exc.state
    return {"first": first, "later": await handle, "both": both, "refused": refused}


async def family_without_a_child(cities: list[str]) -> dict[str, Any]:
    """``family`` with its first child removed: its recorded history must be rejected as drift."""
    handle = await cn.start_child("family_kid", {"city": cities[1]}, run_id="later")
    both = await cn.gather(*(cn.child("family_kid", {"city": c}) for c in cities[2:4]))
    return {"later": await handle, "both": both}


# --- a chain of runs: cn.continue_as_new (record_chain.py) ---------------------------------------
@cn.activity(name="histories.bill")
def bill(customer: str, cycle: int) -> dict[str, Any]:
    return {"customer": customer, "cycle": cycle, "cents": 990}


async def subscription(customer: str, cycle: int = 1, billed: int = 0) -> dict[str, Any]:
    """Bills a cycle, sleeps a month, and continues as new until its third cycle."""
    receipt = await bill(customer, cycle)
    await cn.timer(cn.days(30))
    billed += receipt["cents"]
    if cycle >= 3:
        return {"customer": customer, "cycles": cycle, "billed": billed}
    cn.continue_as_new({"customer": customer, "cycle": cycle + 1, "billed": billed})
