"""Re-record the composing journals in this folder from real runs (in-memory store, virtual clock):

    python -m tests.replay.record_composing

``composing_expedite_signal``: the signal wins the ``cn.first``; ``composing_expedite_timer``: the
timer does; ``composing_trip``: a saga compensates after a failed step (one compensation fails).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import continuum_nb as cn
from continuum_nb.engine.clock import VirtualClock
from continuum_nb.store.memory import MemoryStore
from continuum_nb.workflow import WorkflowDef

from .composing import COMPOSING_WORKFLOWS
from .record import START

HERE = Path(__file__).parent


def _last_is(inst: cn.Instance, run_id: str, event_type: str, deadline: float = 20.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        events = cn.api.events(run_id, instance=inst)
        if events and events[-1].event_type == event_type:
            return
        time.sleep(0.02)
    raise TimeoutError(f"run {run_id} never journaled {event_type}")


def record(scenario: str, workflow: str, inp: dict[str, Any]) -> dict[str, Any]:
    clock = VirtualClock(START)
    inst = cn.Instance(f"record-{scenario}", store=MemoryStore(), clock=clock, poll_interval=0.05,
                       database_url="postgresql://unused@/unused")
    wf = WorkflowDef(COMPOSING_WORKFLOWS[workflow], name=workflow, source=workflow, origin="module")
    inst.registry.register(wf)
    run = cn.start(wf, inp, instance=inst, run_id="00000000-0000-4000-8000-000000000002")
    if workflow == "expedite":
        _last_is(inst, run.id, "timer_started")
        if scenario.endswith("signal"):
            cn.signal(run.id, "approve", {"by": "ana"}, instance=inst)
        else:
            clock.advance(cn.hours(2))
    cn.wait(run.id, timeout=20, instance=inst)
    info = cn.api.get_run(run.id, instance=inst)
    events = cn.api.events(run.id, instance=inst)
    inst.close()
    return {
        "workflow": workflow,
        "scenario": scenario,
        "input": info.input,
        "state": info.state,
        "result": info.result,
        "journal": [{"seq": e.seq, "event_type": e.event_type, "payload": e.payload} for e in events],
    }


def main() -> None:
    for scenario, workflow, inp in (
        ("composing_expedite_signal", "expedite", {"order_id": "E1"}),
        ("composing_expedite_timer", "expedite", {"order_id": "E2"}),
        ("composing_trip", "trip", {"order_id": "T1"}),
    ):
        data = record(scenario, workflow, inp)
        text = json.dumps(data, indent=1, sort_keys=True) + "\n"
        # tracebacks name files relative to the repository, not to wherever it was checked out
        text = text.replace(str(HERE.parent.parent) + "/", "")
        (HERE / f"{scenario}.json").write_text(text)
        print(scenario, data["state"], len(data["journal"]), "events")


if __name__ == "__main__":
    main()
