"""The format-1 snapshot encoder (one list per event), as it shipped before format 2: snapshots
already stored in that format must stay readable (tests only; the engine writes format 2)."""

from __future__ import annotations

from typing import Any

from continuum_nb.replay.snapshots import CompactSnapshot
from continuum_nb.store.base import Event


def build_v1(events: list[Event], version_hash: str = "v") -> CompactSnapshot:
    """The format-1 encoder (one list per event), as it shipped: old rows must stay readable."""
    names: list[str] = []

    def intern(name: str) -> int:
        if name not in names:
            names.append(name)
        return names.index(name)

    resolved = {int(e.payload["scheduled_seq"]) for e in events
                if e.event_type in ("activity_completed", "activity_failed")}
    steps: list[list[Any]] = []
    for e in events:
        p, t, s = e.payload, e.event_type, e.seq
        if t == "activity_scheduled":
            steps.append([s, "S", intern(p["activity"]), p.get("ordinal"),
                          None if s in resolved else p.get("idempotency_key")])
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
    through = events[-1].seq if events else 0
    return CompactSnapshot(through, {"format": 1, "version_hash": version_hash, "names": names, "steps": steps})
