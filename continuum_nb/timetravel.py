"""``cn.replay(run_id, upto=N)``: a run's state after its event N, without writing anything.

The workflow's code is replayed offline against the first N events of the run's journal (no
store is handed to it: nothing can be written) and stopped where it waits: the commands it
issued so far, the command it issues next (what the run did after event N, or would do with
this code), and the local variables of the workflow's frame while it is suspended — Python
keeps a suspended coroutine's frame; a finished one has none.
"""

from __future__ import annotations

import json
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from .definitions.registry import resolve_for_run
from .engine.instance import Instance, resolve
from .errors import ConfigurationError, WorkflowNotFound
from .history import export_history, history_events, offline_clock, workflow_of
from .replay import Blocked, Completed, Drifted, Replayer
from .replay.journal import identity_of, is_start
from .replay.live import Offline

__all__ = ["RunState", "replay"]


@dataclass
class RunState:
    """What ``cn.replay`` shows: the run's state after event ``upto``."""

    run_id: str
    workflow: str
    upto: int
    #: ``suspended`` (waits after event ``upto``), ``continued`` (issues new commands),
    #: ``completed``/``failed`` (the code ends there), ``drifted`` (the code does not replay).
    outcome: str
    #: The commands issued up to event ``upto``: ``{"seq", "kind", "target", "event_type"}``.
    commands: list[dict[str, Any]] = field(default_factory=list)
    #: The first command past event ``upto`` (``{"seq", "event_type", "payload"}``), if any.
    next_command: dict[str, Any] | None = None
    #: The run's own event after ``upto`` in its journal (what happened next), if any.
    next_event: dict[str, Any] | None = None
    #: The workflow frame's local variables (JSON values as they are, others as their repr).
    locals: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    error: Any = None

    def __repr__(self) -> str:
        lines = [f"run {self.run_id} ({self.workflow}) after event {self.upto}: {self.outcome}"]
        for c in self.commands:
            lines.append(f"  {c['seq']:>4}  {c['event_type']:<20} {c['kind']} {c['target']}")
        for label, n in (("next command", self.next_command), ("next event", self.next_event)):
            if n is not None:
                lines.append(f"  {label}: {n['seq']} {n['event_type']} {json.dumps(n['payload'], default=str)[:120]}")
        if self.locals:
            lines.append("  locals: " + ", ".join(f"{k}={v!r:.60}" for k, v in self.locals.items()))
        if self.error is not None:
            lines.append(f"  error: {self.error.get('message') if isinstance(self.error, dict) else self.error}")
        return "\n".join(lines)


def _plain(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def _frame_locals(coro: Coroutine[Any, Any, Any] | None) -> dict[str, Any]:
    frame = getattr(coro, "cr_frame", None)
    if frame is None:
        return {}
    return {k: _plain(v) for k, v in frame.f_locals.items() if not k.startswith("__")}


def replay(run_id: Any, upto: int | None = None, *, workflow: Any = None,
           instance: Instance | str | None = None) -> RunState:
    """The run's state after event ``upto`` (default: its last), replayed offline on
    ``workflow`` (default: the run's own version, defined here or stored). Writes nothing."""
    if upto is not None and (isinstance(upto, bool) or not isinstance(upto, int)):
        raise ConfigurationError(f"upto must be an event number (an int >= 0), not {upto!r}")
    if upto is not None and upto < 0:
        raise ConfigurationError(f"upto must be 0 or more (0: before the first event), not {upto}")
    inst = resolve(instance)
    history = export_history(run_id, instance=inst)
    events = history_events(history)
    last = events[-1].seq if events else 0
    upto = last if upto is None else upto
    if upto > last:
        raise ConfigurationError(f"upto {upto} is past the end of run {history['run_id']}: its last event is seq {last}")
    if workflow is None:
        workflow, _exact = resolve_for_run(inst.registries, inst.store, history["workflow"],
                                           history["version_hash"], inst.config.allow_stored_code)
        if workflow is None:
            raise WorkflowNotFound(f"workflow {history['workflow']!r} is not defined here nor stored; define it first")
    name, fn = workflow_of(workflow)
    inp = history.get("input")
    made: list[Coroutine[Any, Any, Any]] = []

    def factory() -> Any:
        coro = fn(**inp) if isinstance(inp, dict) else fn() if inp is None else fn(inp)
        made.append(coro)
        return coro

    prefix = [e for e in events if e.seq <= upto]
    rep = Replayer(history["run_id"], name, factory, prefix)
    outcome = rep.advance(Offline(offline_clock(history)))
    state = RunState(history["run_id"], name, upto, "suspended")
    state.commands = [
        {"seq": e.seq, "event_type": e.event_type, "kind": identity_of(e)[0], "target": identity_of(e)[1]}
        for e in prefix if is_start(e)
    ]
    if rep.batch.events:
        first = rep.batch.events[0]
        state.next_command = {"seq": first.seq, "event_type": first.event_type, "payload": first.payload}
    else:  # the code waits: what the run did next is the journal's next command
        following = next((e for e in events if e.seq > upto and is_start(e)), None)
        if following is not None:
            state.next_command = {"seq": following.seq, "event_type": following.event_type,
                                  "payload": following.payload}
    after = next((e for e in events if e.seq > upto), None)
    if after is not None:
        state.next_event = {"seq": after.seq, "event_type": after.event_type, "payload": after.payload}
    state.locals = _frame_locals(made[-1] if made else None)
    if isinstance(outcome, Drifted):
        state.outcome, state.error = "drifted", outcome.error
    elif isinstance(outcome, Completed):
        state.outcome, state.result = "completed", outcome.result
    elif isinstance(outcome, Blocked):
        state.outcome = "continued" if rep.batch.events else "suspended"
    else:
        state.outcome, state.error = "failed", outcome.error
    return state
