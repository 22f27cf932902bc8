"""Re-record the journals in this folder from real runs (in-memory store, virtual clock):

    python -m tests.replay.record

Each scenario runs the ``order`` workflow to an end state (or leaves it in flight) and writes
``<scenario>.json`` with the input, the journal, the final state and result.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import continuum_nb as cn
from continuum_nb.engine.clock import VirtualClock
from continuum_nb.store.memory import MemoryStore
from continuum_nb.workflow import WorkflowDef

from .workflows import order

HERE = Path(__file__).parent
START = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


def _wait_state(inst: cn.Instance, run_id: str, states: set[str], deadline: float = 20.0) -> str:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        st = cn.api.get_run(run_id, instance=inst).state
        if st in states:
            events = cn.api.events(run_id, instance=inst)
            if st != "suspended" or (events and events[-1].event_type in ("signal_awaited", "timer_started")):
                return st
        time.sleep(0.02)
    raise TimeoutError(f"run {run_id} never reached {states}")


def record(scenario: str) -> dict[str, Any]:
    clock = VirtualClock(START)
    inst = cn.Instance(f"record-{scenario}", store=MemoryStore(), clock=clock, poll_interval=0.05,
                       database_url="postgresql://unused@/unused")
    wf = WorkflowDef(order, name="order", source="order", origin="module")
    inst.registry.register(wf)
    run = cn.start(wf, {"order_id": "A1", "cents": 500}, instance=inst, run_id="00000000-0000-4000-8000-000000000001")
    if scenario == "signal_first":
        cn.signal(run.id, "approve", {"by": "ana"}, instance=inst)
    _wait_state(inst, run.id, {"suspended"})
    if scenario == "completed":
        cn.signal(run.id, "approve", {"by": "ana"}, instance=inst)
    if scenario == "expired":
        clock.advance(cn.hours(25))
    if scenario in ("completed", "signal_first"):
        time.sleep(0.2)
        _wait_state(inst, run.id, {"suspended"})
        clock.advance(cn.minutes(6))
    if scenario != "in_flight":
        cn.wait(run.id, timeout=20, instance=inst)
    info = cn.api.get_run(run.id, instance=inst)
    events = cn.api.events(run.id, instance=inst)
    inst.close()
    return {
        "workflow": "order",
        "scenario": scenario,
        "input": info.input,
        "state": info.state,
        "result": info.result,
        "journal": [{"seq": e.seq, "event_type": e.event_type, "payload": e.payload} for e in events],
    }


def main() -> None:
    for scenario in ("completed", "signal_first", "expired", "in_flight"):
        data = record(scenario)
        (HERE / f"order_{scenario}.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        print(scenario, data["state"], len(data["journal"]), "events")


if __name__ == "__main__":
    main()
