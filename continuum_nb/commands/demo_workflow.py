"""The workflow ``continuum demo`` runs: an activity that fails once and then succeeds, a signal,
a durable timer and side effects, on whatever database the command resolved (the embedded one by
default). It prints the run's timeline from the journal."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

import continuum_nb as cn

_attempts: dict[str, int] = {}
_lock = threading.Lock()


@cn.activity(name="demo.reserve_stock", retry=cn.Retry(max_attempts=3, backoff="constant", base=cn.seconds(0.2)))
def reserve_stock(order_id: str, qty: int) -> dict[str, Any]:
    with _lock:
        _attempts[order_id] = _attempts.get(order_id, 0) + 1
        attempt = _attempts[order_id]
    if attempt == 1:
        raise ConnectionError("warehouse service busy (the first attempt always fails in the demo)")
    return {"order_id": order_id, "reserved": qty, "attempt": attempt}


@cn.activity(name="demo.send_receipt")
def send_receipt(order_id: str, approved_by: str) -> str:
    return f"receipt for {order_id} sent; approved by {approved_by}"


@cn.workflow(name="demo_order")
async def demo_order(order_id: str, qty: int) -> dict[str, Any]:
    placed_at = cn.now()
    reference = str(cn.uuid4())
    stock = await reserve_stock(order_id, qty)
    approval = await cn.signal("approve", timeout=cn.minutes(10))
    await cn.timer(cn.seconds(1))
    receipt = await send_receipt(order_id, approval["by"])
    return {"reference": reference, "placed_at": placed_at.isoformat(), "stock": stock, "receipt": receipt}


def _summary(event_type: str, p: dict[str, Any]) -> str:
    if event_type == "activity_scheduled":
        return f"{p['activity']}({', '.join(map(repr, p['args']))})"
    if event_type == "activity_completed":
        return f"{p['activity']} -> {p['result']!r} after {p['attempts']} attempt(s)"
    if event_type == "activity_failed":
        return f"{p['activity']} failed: {p['error']['message']}"
    if event_type == "signal_awaited":
        return f"waiting for signal {p['name']!r} (timeout {p['timeout_s']:g}s)"
    if event_type == "signal_received":
        return f"signal {p['name']!r} = {p['payload']!r}"
    if event_type == "timer_started":
        return f"durable timer for {p['duration_s']:g}s"
    if event_type == "timer_fired":
        return f"timer fired (started at seq {p['started_seq']})"
    if event_type == "side_effect":
        return f"{p['kind']}() = {p['value']!r}"
    return ""


def run_demo(database_url: str, out: Any = print) -> int:
    inst = cn.Instance("demo", database_url=database_url, poll_interval=0.1)
    try:
        order_id = f"A-{int(time.time()) % 100000}"
        run = cn.start(demo_order, {"order_id": order_id, "qty": 3}, instance=inst)
        out(f"started run {run.id} of workflow demo_order")
        deadline = time.monotonic() + 30
        while not any(e.event_type == "signal_awaited" for e in cn.api.events(run.id, instance=inst)):
            if time.monotonic() > deadline:
                raise TimeoutError("the demo run did not reach its signal wait in 30s")
            time.sleep(0.05)
        out("the run is suspended on signal 'approve'; sending it")
        cn.signal(run.id, "approve", {"by": "ana"}, instance=inst)
        result = cn.wait(run.id, timeout=60, instance=inst)
        events = cn.api.events(run.id, instance=inst)
        t0: datetime | None = events[0].inserted_at if events else None
        out("")
        out(f"timeline of run {run.id} (state: {cn.api.get_run(run.id, instance=inst).state})")
        out(f"{'seq':>3}  {'+ms':>6}  {'event':<19} detail")
        for e in events:
            ms = (e.inserted_at - t0).total_seconds() * 1000 if (t0 and e.inserted_at) else 0.0
            out(f"{e.seq:>3}  {ms:>6.0f}  {e.event_type:<19} {_summary(e.event_type, e.payload)}")
        out("")
        out(f"result: {result}")
        out("next: `continuum partitions list`, `continuum worker --help`, and notebooks/01_quickstart.ipynb")
        return 0
    finally:
        inst.close()
