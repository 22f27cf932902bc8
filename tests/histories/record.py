"""Re-record the histories in this folder from real runs (``cn.testing.environment()``):

    python -m tests.histories.record

``trip_completed.json`` (every event type), ``trip_in_flight.json`` (suspended on its signal),
``trip_v0_completed.json`` (an older version of ``trip``, recorded under the same name:
the current code must reject it as drift), and ``family_completed.json`` (a parent of child
workflows: ``child_*`` events).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import continuum_nb as cn
from continuum_nb.workflow import WorkflowDef

from .workflows import family, family_kid, trip, trip_v0

HERE = Path(__file__).parent
START = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


def _suspended_on(env: Any, run: cn.Run, event_type: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        evs = env.events(run)
        if env.get_run(run).state == "suspended" and evs and evs[-1].event_type == event_type:
            return
        time.sleep(0.01)
    raise TimeoutError(f"run {run.id} never waited on {event_type}")


def record() -> dict[str, dict[str, Any]]:
    out = {}
    with cn.testing.environment(start_at=START) as env:
        wf = WorkflowDef(trip, name="trip")
        env.instance.registry.register(wf)
        run = env.start(wf, {"city": "Lisbon", "cents": 500})
        _suspended_on(env, run, "signal_awaited")
        out["trip_in_flight"] = cn.export_history(run.id, instance=env.instance)
        env.signal(run, "approve", {"by": "ana"})
        env.wait(run)
        out["trip_completed"] = cn.export_history(run.id, instance=env.instance)
    with cn.testing.environment(start_at=START) as env:
        old = WorkflowDef(trip_v0, name="trip")
        env.instance.registry.register(old)
        run = env.start(old, {"city": "Porto", "cents": 300})
        env.wait(run)
        out["trip_v0_completed"] = cn.export_history(run.id, instance=env.instance)
    with cn.testing.environment(start_at=START) as env:
        env.instance.registry.register(WorkflowDef(family_kid, name="family_kid"))
        parent = WorkflowDef(family, name="family")
        env.instance.registry.register(parent)
        run = env.start(parent, {"cities": ["Lisbon", "Porto", "Faro", "Braga"]})
        env.wait(run)
        out["family_completed"] = cn.export_history(run.id, instance=env.instance)
    return out


def save(histories: dict[str, dict[str, Any]]) -> None:
    """Write each history to ``NAME.json`` in this folder."""
    for name, history in histories.items():
        (HERE / f"{name}.json").write_text(json.dumps(history, indent=1, sort_keys=True) + "\n")
        print(name, history["state"], len(history["journal"]), "events")


def main() -> None:
    save(record())


if __name__ == "__main__":
    main()
