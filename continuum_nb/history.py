"""Recorded histories: a run's journal exported as JSON, and replayed offline against the code.

``cn.export_history(run_id)`` writes what a run did (its input, its journal, how it ended) as a
JSON-ready dict; ``cn.testing.replay(workflow, history)`` drives the current code against it
without any store — nothing can be written — and says how the code ends on it: ``completed``,
``failed``, ``suspended`` (it waits on something the journal never answered) or ``continued``
(it replayed the whole journal and asks for new work past its end), or raises
``cn.DriftError`` naming the seq, the expected (journal) and the actual (code) command. A CI
job keeps production histories and fails on drift.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .api import _record, _run_uuid
from .definitions.registry import resolve_for_run
from .definitions.workflow import WorkflowDef
from .engine.instance import Instance, resolve
from .errors import ConfigurationError, DriftError, WorkflowNotFound
from .replay import Blocked, Completed, Drifted, Replayer
from .replay.live import Offline
from .store.base import Event
from .store.payloads import check_json

__all__ = ["HISTORY_FORMAT", "export_history", "load_history", "replay_history", "replay_run"]

#: The ``format`` of an exported history; a history without one (tests/replay's) is read alike.
HISTORY_FORMAT = "continuum-history/1"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def export_history(run_id: Any, *, instance: Instance | str | None = None) -> dict[str, Any]:
    """The run's history as a JSON-ready dict (``json.dumps`` it to keep it): the workflow, its
    version, the input, the state and outcome, and every journal event (seq, type, payload)."""
    inst = resolve(instance)
    rid = _run_uuid(run_id)
    rec = _record(inst, rid)
    journal = inst.store.load_journal(rid)
    return {
        "format": HISTORY_FORMAT,
        "run_id": str(rec.id),
        "workflow": rec.workflow,
        "version_hash": rec.version_hash,
        "state": rec.state,
        "input": rec.input,
        "result": rec.result,
        "error": rec.error,
        "started_at": _iso(rec.started_at),
        "completed_at": _iso(rec.completed_at),
        "journal": [
            {"seq": e.seq, "event_type": e.event_type, "payload": e.payload, "inserted_at": _iso(e.inserted_at)}
            for e in journal
        ],
    }


def load_history(history: dict[str, Any] | str | Path) -> dict[str, Any]:
    """A history given as a dict, as JSON text, or as the path of a JSON file, checked."""
    if isinstance(history, Path) or (isinstance(history, str) and not history.lstrip().startswith("{")):
        path = Path(history)
        if not path.is_file():
            raise ConfigurationError(f"no history file at {str(path)!r}; pass a dict, JSON text or the path of a JSON file")
        history = path.read_text(encoding="utf-8")
    if isinstance(history, str):
        try:
            history = json.loads(history)
        except ValueError as exc:
            raise ConfigurationError(f"the history is not valid JSON ({exc}); export one with cn.export_history") from None
    if not isinstance(history, dict):
        raise ConfigurationError(f"a history is a JSON object as cn.export_history writes it, not {type(history).__name__}")
    journal = history.get("journal", history.get("events"))
    if not isinstance(history.get("workflow"), str) or not isinstance(journal, list):
        raise ConfigurationError("a history needs 'workflow' (a name) and 'journal' (a list of events), as cn.export_history writes it")
    for i, e in enumerate(journal):
        if not (isinstance(e, dict) and isinstance(e.get("seq"), int) and isinstance(e.get("event_type"), str)
                and isinstance(e.get("payload"), dict)):
            raise ConfigurationError(f"event #{i} of the history needs seq (int), event_type (str) and payload (object)")
    return history


def history_events(history: dict[str, Any]) -> list[Event]:
    journal = history.get("journal", history.get("events")) or []
    return [Event(e["seq"], e["event_type"], e["payload"],
                  datetime.fromisoformat(e["inserted_at"]) if e.get("inserted_at") else None) for e in journal]


def coroutine_factory(fn: Callable[..., Coroutine[Any, Any, Any]], inp: Any) -> Callable[[], Any]:
    """A new coroutine of the workflow called with a run's input (as the engine calls it)."""

    def factory() -> Any:
        if isinstance(inp, dict):
            return fn(**inp)
        if inp is None:
            return fn()
        return fn(inp)

    return factory


def workflow_of(workflow: Any) -> tuple[str, Callable[..., Any]]:
    """(name, async function) of an ``@cn.workflow`` or a plain ``async def``."""
    if isinstance(workflow, WorkflowDef):
        return workflow.name, workflow.fn
    if callable(workflow):
        return getattr(workflow, "__name__", "workflow"), workflow
    raise ConfigurationError(f"replay needs an @cn.workflow (or an async def), not {type(workflow).__name__}")


def offline_clock(history: dict[str, Any]) -> datetime:
    """The clock of an offline replay: the run's start (engine clock), so that nothing the
    journal left pending (a timer, a signal's timeout) counts as due: offline, the run waits on
    it, as it did when the history was taken. (``inserted_at`` is the database's clock, which a
    test's virtual clock does not move: it says nothing of when timers are due.)"""
    if history.get("started_at"):
        return datetime.fromisoformat(history["started_at"])
    return datetime.min.replace(tzinfo=timezone.utc)


def _drift(run_id: str | None, message: str, *, seq: int | None, expected: Any, actual: Any) -> DriftError:
    error = {"type": "drift", "message": message, "seq": seq, "expected": expected, "actual": actual}
    return DriftError(f"drift: {message}", run_id=run_id, error=error)


def replay_history(workflow: Any, history: dict[str, Any] | str | Path) -> str:
    """Replay a recorded history against ``workflow``'s current code, offline and read-only.

    Returns ``"completed"``, ``"failed"``, ``"suspended"`` or ``"continued"``; raises
    ``cn.DriftError`` (``.seq``, ``.expected``, ``.actual``) when the code no longer matches the
    journal, or ends otherwise than the recorded run did (another result, failed where it
    completed, more work after it ended)."""
    data = load_history(history)
    name, fn = workflow_of(workflow)
    if data["workflow"] != name:
        raise ConfigurationError(
            f"this history is of workflow {data['workflow']!r}, not {name!r}; replay it against {data['workflow']!r}")
    events = history_events(data)
    run_id = data.get("run_id")
    rep = Replayer(str(run_id or "offline"), name, coroutine_factory(fn, data.get("input")), events)
    outcome = rep.advance(Offline(offline_clock(data)))
    recorded = data.get("state")
    if isinstance(outcome, Drifted):
        err = outcome.error
        raise DriftError(f"drift: {err.get('message')}", run_id=run_id, error=err)
    if isinstance(outcome, Completed):
        check_json(outcome.result, "result of the replayed workflow")
        if recorded == "completed" and outcome.result != data.get("result"):
            raise _drift(run_id, f"the workflow now returns {outcome.result!r:.200} where the run returned "
                         f"{data.get('result')!r:.200}", seq=None, expected=data.get("result"), actual=outcome.result)
        if recorded in ("failed", "cancelled"):
            raise _drift(run_id, f"the workflow now completes where the run ended {recorded}",
                         seq=None, expected=recorded, actual="completed")
        return "completed"
    if not isinstance(outcome, Blocked):  # Failed: the code raised
        if recorded == "completed":
            raise _drift(run_id, f"the workflow now fails ({outcome.error.get('type')}: "
                         f"{outcome.error.get('message')}) where the run completed",
                         seq=None, expected="completed", actual=outcome.error)
        return "failed"
    new = rep.batch.events
    if recorded in ("completed", "failed"):
        first = new[0] if new else None
        raise _drift(
            run_id, f"the run {recorded}, but the workflow now goes on"
            + (f" with {first.event_type} {json.dumps(first.payload, default=str)[:200]}" if first else " waiting"),
            seq=first.seq if first else None, expected=recorded,
            actual=None if first is None else {"event_type": first.event_type, "payload": first.payload})
    return "continued" if new else "suspended"


def replay_run(run_id: Any, *, workflow: Any = None, instance: Instance | str | None = None) -> str:
    """Replay a stored run's history against ``workflow`` (default: the code this process has
    for the run's version, else the stored ``%%workflow`` cell, else the newest version here),
    reading only; as :func:`replay_history`."""
    inst = resolve(instance)
    history = export_history(run_id, instance=inst)
    if workflow is None:
        workflow, _exact = resolve_for_run(inst.registries, inst.store, history["workflow"],
                                           history["version_hash"], inst.config.allow_stored_code)
        if workflow is None:
            raise WorkflowNotFound(
                f"workflow {history['workflow']!r} is not defined here nor stored; import the module that defines it")
    return replay_history(workflow, history)
