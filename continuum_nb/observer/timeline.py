"""A run's journal as timed spans: what happened when, paired and named, in ms since the start.

Plain Python, no widgets and no database. The journal comes either as full events (``payload`` a
mapping) or as the slim rows of ``ObserverQueries.timeline_events`` (the payload keys the pairing
needs, already extracted by SQL); both read the same.

- **activity** spans run from ``activity_scheduled`` to its ``activity_completed`` /
  ``activity_failed`` (still open: to now, ``pending``; open when the run ended: ``abandoned``).
- **wait** spans: ``signal_awaited`` → ``signal_received`` (``awaited_seq``) or its timeout's
  ``timer_fired`` (``started_seq``), and ``timer_started`` → ``timer_fired``.
- **child** spans (kind ``activity``, lane ``child NAME``): ``child_started`` → its
  ``child_completed`` / ``child_failed`` / ``child_cancelled`` (``started_seq``); a failed or
  cancelled child is also an effect point.
- **effect** points: each ``side_effect``, and each ``activity_failed`` again (failures get a lane
  of their own so a failure among 10,000 successes is still seen), and a ``signal_received`` that
  found its signal already pending (no wait happened).

``lanes.timeline_view`` aggregates these spans for a window and a width in pixels.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["Span", "Spans", "journal_spans"]

# Keys under which an outcome event may name the seq of the activity_scheduled it answers
# (scheduled_seq is the documented one; the others are read for journals written before it).
_SCHEDULED_KEYS = ("scheduled_seq", "schedule_seq", "activity_seq", "for_seq")


@dataclass(slots=True)
class Span:
    kind: str            # "activity" | "wait" | "effect"
    lane: str            # activity name; "waits"; "side effects · failures"
    label: str           # what a bar says: "fetch", "timer", "signal 'approve'", "uuid4", "fetch failed"
    start: float         # ms since the run started
    end: float
    status: str          # completed/failed/pending/abandoned · waiting/received/timed out/fired · effect/failed
    seqs: list[int] = field(default_factory=list)   # the events this span is made of
    attempts: int = 1
    name: str = ""       # a signal wait's signal name


@dataclass
class Spans:
    t_end: float                          # ms from the start to the end (or now)
    spans: list[Span]
    events: int                           # how many events were read
    open_signals: list[str]               # names of signals the run waits for now

    @property
    def activities(self) -> int:
        return sum(1 for s in self.spans if s.kind == "activity")

    @property
    def waits(self) -> int:
        return sum(1 for s in self.spans if s.kind == "wait")


def _ms(t: datetime, t0: datetime) -> float:
    return round((t - t0).total_seconds() * 1000.0, 3)


def _reader(ev: Mapping[str, Any]) -> Mapping[str, Any]:
    payload = ev.get("payload")
    if payload is None:
        return ev            # a slim row: the keys are columns
    if not isinstance(payload, Mapping):
        return {"value": payload}
    return payload


def _text(p: Mapping[str, Any], *keys: str) -> str:
    for k in keys:
        v = p.get(k)
        if isinstance(v, str) and v:
            return v
    return ""


def _int(p: Mapping[str, Any], key: str) -> int | None:
    v = p.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _fields(ev: Mapping[str, Any], kind: str) -> tuple[str, int | None, int | None]:
    """(name, the seq a resolution answers, attempts) of a full event or a slim row."""
    if "payload" not in ev:    # ObserverQueries.timeline_events: already extracted by SQL
        ref, tried = ev.get("ref"), ev.get("attempts")
        return (ev.get("name") or "", ref if isinstance(ref, int) and not isinstance(ref, bool) else None,
                tried if isinstance(tried, int) and not isinstance(tried, bool) else None)
    p = _reader(ev)
    if kind.startswith("activity_"):
        ref = next((r for r in (_int(p, k) for k in _SCHEDULED_KEYS) if r is not None), None)
        return _text(p, "activity", "name"), ref, _int(p, "attempts") or _int(p, "attempt")
    if kind == "side_effect":
        return _text(p, "kind"), None, None
    if kind.startswith("child_"):
        return _text(p, "workflow"), _int(p, "started_seq"), None
    if kind == "signal_received":
        return _text(p, "name"), _int(p, "awaited_seq"), None
    if kind == "timer_fired":
        return "", _int(p, "started_seq"), None
    return _text(p, "name"), None, None


#: A child's end -> what its span and effect point say.
_CHILD_ENDS = {"child_completed": "completed", "child_failed": "failed", "child_cancelled": "cancelled"}

WAITS_LANE = "waits"
EFFECTS_LANE = "side effects · failures"


def journal_spans(
    events: Iterable[Mapping[str, Any]],
    *,
    started_at: datetime,
    now: datetime,
    completed_at: datetime | None = None,
    tasks: Iterable[Mapping[str, Any]] = (),
) -> Spans:
    """Pair a journal's events into spans (see the module docstring). An outcome names its
    scheduled event by ``scheduled_seq``; one without it (older rows) pairs with the oldest open
    activity of the same name."""
    attempts = {int(t["seq"]): int(t.get("attempt") or 1) for t in tasks if t.get("seq") is not None}
    t_end = max(_ms(completed_at or now, started_at), 0.0)
    spans: list[Span] = []
    open_acts: dict[int, Span] = {}
    open_waits: dict[int, Span] = {}
    count = 0

    for ev in events:
        count += 1
        seq = int(ev["seq"])
        kind = str(ev["event_type"])
        name, ref, tried = _fields(ev, kind)
        if "t_ms" in ev:
            t = round(float(ev["t_ms"]), 3)
        else:
            at = ev.get("inserted_at")
            t = _ms(at, started_at) if at is not None else t_end
        t_end = max(t_end, t)

        if kind == "activity_scheduled":
            name = name or "activity"
            span = Span("activity", name, name, t, t, "pending", [seq], attempts.get(seq, 1))
            spans.append(span)
            open_acts[seq] = span
        elif kind in ("activity_completed", "activity_failed"):
            target = open_acts.pop(ref, None) if ref is not None else None
            if target is None:
                same = [s for s in open_acts.values() if not name or s.lane == name]
                if same:
                    target = open_acts.pop(min(same, key=lambda s: s.seqs[0]).seqs[0])
            failed = kind == "activity_failed"
            if target is not None:
                target.end = t
                target.status = "failed" if failed else "completed"
                target.seqs.append(seq)
                if tried:
                    target.attempts = max(target.attempts, tried)
            if failed:
                who = name or (target.lane if target is not None else "activity")
                spans.append(Span("effect", EFFECTS_LANE, f"{who} failed", t, t, "failed", [seq]))
        elif kind in ("signal_awaited", "timer_started"):
            is_signal = kind == "signal_awaited"
            name = name if is_signal else ""
            label = (f"signal {name!r}" if name else "signal") if is_signal else "timer"
            span = Span("wait", WAITS_LANE, label, t, t, "waiting", [seq], name=name)
            spans.append(span)
            open_waits[seq] = span
        elif kind in ("signal_received", "timer_fired"):
            found = open_waits.pop(ref, None) if ref is not None else None
            if found is None and ref is None and kind == "timer_fired":
                # an old journal without started_seq: the oldest open timer
                timers = [s for s in open_waits.values() if s.label == "timer"]
                if timers:
                    found = open_waits.pop(min(timers, key=lambda s: s.seqs[0]).seqs[0])
            if found is not None:
                found.end = t
                found.seqs.append(seq)
                if kind == "signal_received":
                    found.status = "received"
                elif found.label != "timer":
                    found.status = "timed out"
                else:
                    found.status = "fired"
            elif kind == "signal_received":
                # already pending at the await: no wait happened, only the event
                spans.append(Span("effect", EFFECTS_LANE, f"signal {name!r} (was pending)" if name else "signal",
                                  t, t, "effect", [seq]))
        elif kind == "side_effect":
            spans.append(Span("effect", EFFECTS_LANE, name or "side effect", t, t, "effect", [seq]))
        elif kind == "child_started":
            label = f"child {name}" if name else "child"
            span = Span("activity", label, label, t, t, "pending", [seq])
            spans.append(span)
            open_acts[seq] = span
        elif kind in _CHILD_ENDS:
            target = open_acts.pop(ref, None) if ref is not None else None
            status = _CHILD_ENDS[kind]
            if target is not None:
                target.end, target.status = t, "completed" if status == "completed" else "failed"
                target.seqs.append(seq)
            if status != "completed":
                spans.append(Span("effect", EFFECTS_LANE, f"child {name} {status}", t, t, "failed", [seq]))

    finished = completed_at is not None
    open_signals: list[str] = []
    for span in (*open_acts.values(), *open_waits.values()):
        span.end = t_end
        if finished:
            span.status = "abandoned"   # the run ended (e.g. cancelled) with this still open
        elif span.kind == "wait" and span.name:
            open_signals.append(span.name)
    return Spans(t_end, spans, count, open_signals)
