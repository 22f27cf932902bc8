"""``cn.fork(run_id, at_seq=N)``: a new run whose journal is the first N events of another.

The copy keeps every outcome of the prefix — an activity completed inside it is never run
again, a signal received inside it is received again from the journal — and rewrites the ids
that name rows of the original (task and timer ids), so the two runs share nothing. What the
prefix left open is opened again for the fork: an activity scheduled without an outcome gets a
new task (it runs again), a timer or a signal's timeout not yet fired gets a new timer at the
same due time. The fork then runs on the chosen code (``version="newest"``: the newest
definition here, else the newest stored one; ``"original"``: the original's version; or a
version hash), replaying the prefix first: a fix is tried from where the run went wrong. A
prefix the chosen code does not replay drifts, as any run would.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from .api import Run, _record, _run_uuid
from .definitions.workflow import WorkflowDef
from .engine.instance import Instance, resolve
from .errors import ConfigurationError, WorkflowNotFound
from .store.base import Event, NewRun, NewTask, NewTimer
from .store.forks import ForkingStore, ForkLinks, NewFork

__all__ = ["fork", "fork_links", "fork_prefix"]


def fork_prefix(journal: list[Event], at_seq: int, now: datetime) -> tuple[list[Event], list[NewTask], list[NewTimer]]:
    """The first ``at_seq`` events with task and timer ids rewritten, and the tasks and timers
    that prefix leaves open (pure: no I/O)."""
    new_ids: dict[str, str] = {}

    def renamed(old: Any) -> Any:
        if old is None:
            return None
        return new_ids.setdefault(str(old), str(uuid.uuid4()))

    events: list[Event] = []
    for e in journal:
        if e.seq > at_seq:
            break
        payload = dict(e.payload)
        for key in ("task_id", "timer_id", "next_run_id"):  # (a continuation: the fork's own successor)
            if key in payload:
                payload[key] = renamed(payload[key])
        events.append(Event(e.seq, e.event_type, payload))
    resolved_tasks = {e.payload.get("scheduled_seq") for e in events
                      if e.event_type in ("activity_completed", "activity_failed")}
    fired = {e.payload.get("started_seq") for e in events if e.event_type == "timer_fired"}
    received = {e.payload.get("awaited_seq") for e in events if e.event_type == "signal_received"}
    tasks: list[NewTask] = []
    timers: list[NewTimer] = []
    for e in events:
        p = e.payload
        if e.event_type == "activity_scheduled" and e.seq not in resolved_tasks:
            tasks.append(NewTask(id=uuid.UUID(p["task_id"]), seq=e.seq, activity=p["activity"],
                                 args={"args": p.get("args", []), "kwargs": p.get("kwargs", {})},
                                 available_at=now, idempotency_key=p.get("idempotency_key")))
        elif e.event_type == "timer_started" and e.seq not in fired:
            timers.append(NewTimer(uuid.UUID(p["timer_id"]), e.seq, datetime.fromisoformat(p["fire_at"])))
        elif (e.event_type == "signal_awaited" and p.get("timer_id") and p.get("timeout_at")
              and e.seq not in fired and e.seq not in received):
            timers.append(NewTimer(uuid.UUID(p["timer_id"]), e.seq, datetime.fromisoformat(p["timeout_at"])))
    return events, tasks, timers


def _version(inst: Instance, name: str, original: str, version: str) -> tuple[WorkflowDef | None, str]:
    """(definition here or None, version hash) of the code the fork runs on."""
    if not isinstance(version, str) or not version:
        raise ConfigurationError(f"version must be 'newest', 'original' or a version hash, not {version!r}")
    if version == "newest":
        wf = inst.find_workflow(name)
        if wf is not None:
            return wf, wf.version_hash
        stored = inst.store.latest_version(name)
        if stored is None:
            raise WorkflowNotFound(f"no version of workflow {name!r} is defined here or stored; define it first")
        return None, stored[0]
    wanted = original if version == "original" else version
    for reg in inst.registries:
        wf = reg.get(name, wanted)
        if wf is not None:
            return wf, wanted
    if inst.store.get_version(name, wanted) is None:
        raise WorkflowNotFound(f"workflow {name!r} has no version {wanted[:12]!r} here or stored; "
                               "pass version='newest' or a known version hash")
    return None, wanted


def fork(run_id: Any, at_seq: int, *, version: str = "newest",
         instance: Instance | str | None = None) -> Run:
    """Start a new run from the first ``at_seq`` events of run ``run_id`` (0: from the start,
    with the same input), on the code ``version`` names; the new run's ``Run``. It is linked
    both ways: ``cn.forks.fork_links`` gives ``forked_from_run_id``/``forked_at_seq`` of a
    fork and the forks of a run."""
    if isinstance(at_seq, bool) or not isinstance(at_seq, int):
        raise ConfigurationError(f"at_seq must be an event number (an int >= 0), not {at_seq!r}")
    if at_seq < 0:
        raise ConfigurationError(f"at_seq must be 0 or more (0 forks from the start), not {at_seq}")
    inst = resolve(instance)
    rid = _run_uuid(run_id)
    rec = _record(inst, rid)
    journal = inst.store.load_journal(rid)
    last = journal[-1].seq if journal else 0
    if at_seq > last:
        raise ConfigurationError(
            f"fork point {at_seq} is past the end of run {rid}: its last event is seq {last}; pick 0 to {last}")
    wf, version_hash = _version(inst, rec.workflow, rec.version_hash, version)
    now = inst.clock.now()
    events, tasks, timers = fork_prefix(journal, at_seq, now)
    new = NewRun(id=uuid.uuid4(), workflow=rec.workflow, version_hash=version_hash, input=rec.input,
                 started_at=now, attributes=rec.attributes, retention=rec.retention)
    if wf is not None:
        inst.save_version(wf)
    store: ForkingStore = inst.store  # type: ignore[assignment]
    store.fork_run(NewFork(new, rid, at_seq, events, tasks, timers))
    inst.start_engine()  # when this process runs the workflow, it claims the fork now
    return Run(str(new.id), rec.workflow, inst.name)


def fork_links(run_id: Any, *, instance: Instance | str | None = None) -> ForkLinks:
    """Where a run was forked from (``forked_from_run_id``, ``forked_at_seq``) and the runs
    forked from it (``forks``: (run id, at seq), oldest first)."""
    inst = resolve(instance)
    rid = _run_uuid(run_id)
    _record(inst, rid)
    store: ForkingStore = inst.store  # type: ignore[assignment]
    return store.fork_links(rid)
