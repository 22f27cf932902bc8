"""The live tail of child workflows: what ``cn.child`` / ``cn.start_child`` journal, and how a
child's end becomes the parent's ``child_completed`` / ``child_failed`` / ``child_cancelled``.

``child_started`` is the command start (kind ``child``, target the workflow name); the child's
run row is inserted with the same commit (``Batch.children``). A start the parent's engine
refuses (an unknown workflow, a depth past ``max_child_depth``) is journaled as
``child_started`` without a ``child_run_id`` followed at once by ``child_failed`` with
``state: "refused"``: the decision stands on every replay, wherever it runs.
"""

from __future__ import annotations

import uuid
from typing import Any

from ..definitions.children import ChildCommand, child_run_id
from ..store.base import Event
from ..store.payloads import check_json
from .journal import Answer, answer_of
from .outcomes import Batch, ChildOutcome, ChildTarget, Resolver, StartedChild

__all__ = ["CHILD_ENDS", "cancel_child", "resolve_child", "start_child"]

#: The resolutions of a child_started, by the child's end state.
CHILD_ENDS = {"completed": "child_completed", "failed": "child_failed", "cancelled": "child_cancelled"}


def start_child(cmd: ChildCommand, ordinal: int, parent_run_id: str, resolver: Resolver, batch: Batch,
                record: Any) -> Answer | None:
    """Journal ``child_started`` (and the child's run for the commit), or a refused start."""
    wf = cmd.workflow
    check_json(cmd.input, f"input of child workflow {wf!r}")  # raised at the await, nothing journaled
    ask = getattr(resolver, "child_target", None)
    if ask is None:  # an offline replay (time travel, a history): the child starts, nothing resolves it
        ask = _offline_target
    target = ask(wf)
    payload: dict[str, Any] = {
        "workflow": wf, "ordinal": ordinal, "child_run_id": None, "run_id": cmd.run_key,
        "input": cmd.input, "version_hash": target.version_hash or None, "on_parent_cancel": cmd.on_parent_cancel,
    }
    if target.refused is not None:
        ev = record("child_started", payload)
        failed = record("child_failed", {
            "started_seq": ev.seq, "workflow": wf, "child_run_id": None, "state": "refused",
            "error": {"type": "continuum_nb.errors.ChildFailed", "message": target.refused},
        })
        return answer_of(failed)
    rid = child_run_id(parent_run_id, wf, ordinal, cmd.run_key)
    payload["child_run_id"] = str(rid)
    ev = record("child_started", payload)
    if target.correlation_id:
        batch.children.append(StartedChild(
            rid, ev.seq, wf, target.version_hash, cmd.input, uuid.UUID(target.correlation_id),
            cmd.on_parent_cancel, target.retention_s,
        ))
    return None


def _offline_target(workflow: str) -> ChildTarget:
    """What a replay that writes nothing starts a child on: nothing to insert."""
    return ChildTarget()


def resolve_child(start: Event, resolver: Resolver, record: Any) -> Event | None:
    """Journal the child's end if it has ended (the parent reads it when woken), else None."""
    rid = start.payload.get("child_run_id")
    ask = getattr(resolver, "child_outcome", None)
    if rid is None or ask is None:
        return None
    out: ChildOutcome | None = ask(rid)
    if out is None:
        return None
    common = {"started_seq": start.seq, "workflow": start.payload["workflow"], "child_run_id": rid}
    if out.state == "completed":
        return record("child_completed", {**common, "result": out.result})
    if out.state == "cancelled":
        return record("child_cancelled", {**common, "reason": "cancelled"})
    return record("child_failed", {**common, "state": "failed", "error": out.error})


def cancel_child(start: Event, batch: Batch, record: Any) -> Event:
    """``cn.first`` no longer waits for this child: cancel its run (with the wake's commit)."""
    rid = start.payload.get("child_run_id")
    if rid is not None:
        batch.cancelled_children.append(uuid.UUID(rid))
    return record("child_cancelled", {"started_seq": start.seq, "workflow": start.payload["workflow"],
                                      "child_run_id": rid, "reason": "first"})
