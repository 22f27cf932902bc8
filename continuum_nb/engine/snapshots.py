"""Snapshots: a compacted prefix of a run's journal (opt-in with ``snapshot_threshold``).

A snapshot keeps, for every event of the prefix, only what replay needs to match and answer the
workflow's commands (kind, target, ordinal, results, timer/signal bookkeeping) and drops the rest
(activity arguments, task ids, ...). Targets are interned. Replay expands it back into events and
validates every step exactly like the full journal: a snapshot is a faster way to load history,
never a way to skip checking it. A snapshot taken on another version of the code is ignored
(full replay), and one larger than ``snapshot_max_size_bytes`` is not stored.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from .._json import dumps
from ..store.base import Event, Snapshot
from .replay import Replayer

__all__ = ["CompactSnapshot", "build_snapshot", "expand", "replayer_from"]

FORMAT = 1


@dataclass(frozen=True)
class CompactSnapshot:
    through_seq: int
    payload: dict[str, Any]

    @property
    def size_bytes(self) -> int:
        return len(dumps(self.payload).encode("utf-8"))


def build_snapshot(run_id: UUID, version_hash: str, events: list[Event]) -> CompactSnapshot:
    """Compact ``events`` (a journal prefix in seq order)."""
    names: list[str] = []
    index: dict[str, int] = {}

    def intern(name: str) -> int:
        if name not in index:
            index[name] = len(names)
            names.append(name)
        return index[name]

    resolved = {
        int(e.payload["scheduled_seq"]) for e in events if e.event_type in ("activity_completed", "activity_failed")
    }
    steps: list[list[Any]] = []
    for e in events:
        p, t, s = e.payload, e.event_type, e.seq
        if t == "activity_scheduled":
            # the idempotency key is only needed while the outcome is not journaled yet
            key = None if s in resolved else p.get("idempotency_key")
            steps.append([s, "S", intern(p["activity"]), p.get("ordinal"), key])
        elif t == "activity_completed":
            steps.append([s, "C", p["scheduled_seq"], p.get("result"), p.get("attempts"), bool(p.get("idempotency_hit"))])
        elif t == "activity_failed":
            steps.append([s, "F", p["scheduled_seq"], p.get("error"), p.get("attempts"), intern(p.get("activity", ""))])
        elif t == "timer_started":
            steps.append([s, "T", p.get("ordinal"), p["fire_at"], p["timer_id"], p.get("duration_s")])
        elif t == "timer_fired":
            steps.append([s, "X", p["started_seq"], p.get("fire_at"), p.get("timeout_s"), p.get("signal")])
        elif t == "signal_awaited":
            steps.append([s, "W", intern(p["name"]), p.get("ordinal"), p.get("timeout_at"), p.get("timer_id"),
                          p.get("timeout_s")])
        elif t == "signal_received":
            steps.append([s, "R", intern(p["name"]), p.get("ordinal"), p.get("payload"), p.get("awaited_seq"),
                          p.get("signal_id")])
        elif t == "side_effect":
            steps.append([s, "E", p["kind"], p.get("ordinal"), p.get("value")])
        else:  # pragma: no cover - the journal has exactly eight event types
            raise ValueError(f"unknown event type {t!r} in run {run_id}")
    through = events[-1].seq if events else 0
    return CompactSnapshot(through, {"format": FORMAT, "version_hash": version_hash, "names": names, "steps": steps})


def expand(snapshot: Snapshot | CompactSnapshot) -> list[Event]:
    """The events a snapshot stands for (with the payload keys replay reads)."""
    payload = snapshot.payload
    if payload.get("format") != FORMAT:
        raise ValueError(f"unknown snapshot format {payload.get('format')!r}")
    names: list[str] = payload["names"]
    out: list[Event] = []
    for step in payload["steps"]:
        s, code = step[0], step[1]
        if code == "S":
            out.append(Event(s, "activity_scheduled", {"activity": names[step[2]], "ordinal": step[3],
                                                      "idempotency_key": step[4]}))
        elif code == "C":
            out.append(Event(s, "activity_completed", {"scheduled_seq": step[2], "result": step[3],
                                                      "attempts": step[4], "idempotency_hit": step[5]}))
        elif code == "F":
            out.append(Event(s, "activity_failed", {"scheduled_seq": step[2], "error": step[3],
                                                   "attempts": step[4], "activity": names[step[5]]}))
        elif code == "T":
            out.append(Event(s, "timer_started", {"ordinal": step[2], "fire_at": step[3], "timer_id": step[4],
                                                 "duration_s": step[5]}))
        elif code == "X":
            p: dict[str, Any] = {"started_seq": step[2], "fire_at": step[3]}
            if step[4] is not None:
                p["timeout_s"] = step[4]
                p["signal"] = step[5]
            out.append(Event(s, "timer_fired", p))
        elif code == "W":
            out.append(Event(s, "signal_awaited", {"name": names[step[2]], "ordinal": step[3],
                                                  "timeout_at": step[4], "timer_id": step[5], "timeout_s": step[6]}))
        elif code == "R":
            out.append(Event(s, "signal_received", {"name": names[step[2]], "ordinal": step[3],
                                                   "payload": step[4], "awaited_seq": step[5], "signal_id": step[6]}))
        elif code == "E":
            out.append(Event(s, "side_effect", {"kind": step[2], "ordinal": step[3], "value": step[4]}))
        else:
            raise ValueError(f"unknown snapshot step {code!r}")
    return out


def replayer_from(
    run_id: str,
    workflow: str,
    factory: Callable[[], Coroutine[Any, Any, Any]],
    snapshot: Snapshot | CompactSnapshot,
    rest: list[Event],
) -> Replayer:
    """A replayer over the snapshot's prefix plus the events after it."""
    return Replayer(run_id, workflow, factory, expand(snapshot) + [e for e in rest if e.seq > snapshot.through_seq])
