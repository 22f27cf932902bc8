"""Drift: what replay decides when the workflow's code no longer matches its journal.

Command identity is effect kind + target + ordinal among equal targets (never a line number).
A mismatch aborts the workflow's code with ``DriftSignal`` and is reported with both sides: the
journal's command (``expected``) and what the code asked for (``actual``). Nothing is appended;
the caller marks the run ``drifted`` (``resume`` retries it once the code is fixed).
"""

from __future__ import annotations

from typing import Any

from ..store.base import Event
from .journal import identity_of

__all__ = ["DriftSignal", "drift_report", "end_message", "mismatch_message", "not_awaitable", "waiting_message"]


class DriftSignal(BaseException):
    """Raised inside workflow code to abort it on drift (BaseException: ``except Exception`` in
    workflow code cannot swallow it)."""


def drift_report(message: str, position: int, expected: Event | None, actual: dict[str, Any]) -> dict[str, Any]:
    """The error recorded on a drifted run: the message, the cursor, and both sides."""
    exp = None
    if expected is not None:
        kind, target = identity_of(expected)
        exp = {
            "kind": kind,
            "target": target,
            "ordinal": expected.payload.get("ordinal"),
            "event_type": expected.event_type,
            "seq": expected.seq,
        }
    return {
        "type": "drift",
        "message": message,
        "position": position,
        "seq": expected.seq if expected is not None else None,
        "expected": exp,
        "actual": actual,
    }


def mismatch_message(actual: tuple[str, str, int], journal: tuple[str, str, int | None, int]) -> str:
    """The code asks for another command than the journal's at the cursor."""
    kind, target, ordinal = actual
    ek, et, eo, seq = journal
    return (f"the workflow now asks for {kind} {target!r} (#{ordinal}) where the journal has "
            f"{ek} {et!r} (#{eo}, seq {seq})")


def waiting_message(kind: str, target: str, ordinal: int, next_event: Event) -> str:
    """The code waits on a command the journal never resolved, yet the journal goes on."""
    return (f"the workflow now waits on {kind} {target!r} (#{ordinal}) that has no outcome yet, but "
            f"the journal goes on with {next_event.event_type} (seq {next_event.seq})")


def end_message(what: str, remaining: int, next_event: Event) -> str:
    """The code returned or raised, yet the journal holds more commands."""
    return (f"the workflow {what} but the journal has {remaining} more command(s), "
            f"starting with {next_event.event_type} (seq {next_event.seq})")


def not_awaitable(workflow: str, awaited: Any) -> TypeError:
    """The workflow awaited something that is not a continuum awaitable (raised into it)."""
    return TypeError(
        f"workflow {workflow!r} awaited {awaited!r}, which is not a continuum awaitable; "
        "inside a workflow await only activities, cn.signal(), cn.timer(), cn.gather() and cn.first() "
        "(asyncio and other libraries cannot be awaited: move that code into an @cn.activity)"
    )
