"""The journal as replay reads it: the command identity of each event, what answers a command,
and ``JournalIndex``, the index the replayer matches commands against. Pure data; no I/O."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..errors import ActivityFailed, ChildFailed, SignalTimeout
from ..store.base import Event

__all__ = [
    "START_TYPES",
    "CANCELLED",
    "CHILD_RESOLUTIONS",
    "Answer",
    "JournalIndex",
    "StartsBySeq",
    "answer_of",
    "child_failure",
    "identity_of",
    "is_start",
    "outcome_of",
    "resolved_seq",
]

START_TYPES = frozenset({"activity_scheduled", "timer_started", "signal_awaited", "side_effect", "patched",
                         "compensation_scheduled", "child_started", "run_continued_as_new"})
#: The resolutions of a child_started (``started_seq``).
CHILD_RESOLUTIONS = frozenset({"child_completed", "child_failed", "child_cancelled"})
#: Starts that answer themselves (no resolution event ever names them).
_SELF_ANSWERED = frozenset({"side_effect", "signal_received", "patched", "run_continued_as_new"})
#: Resolutions that end a start without an outcome (``cn.first``'s losers): type -> seq field.
CANCELLED = {"activity_cancelled": "scheduled_seq", "timer_cancelled": "started_seq",
             "signal_cancelled": "awaited_seq"}


def identity_of(ev: Event) -> tuple[str, str]:
    """(kind, target) of a command-start event."""
    p = ev.payload
    t = ev.event_type
    if t == "activity_scheduled":
        return ("activity", p["activity"])
    if t == "timer_started":
        return ("timer", "timer")
    if t in ("signal_awaited", "signal_received"):
        return ("signal", p["name"])
    if t == "side_effect":
        return ("side_effect", p["kind"])
    if t == "patched":
        return ("patched", p["name"])
    if t == "compensation_scheduled":
        return ("compensation", p["activity"])
    if t == "child_started":  # (definitions/children.child_target)
        return ("child", p["workflow"] if p.get("run_id") is None else f"{p['workflow']}/{p['run_id']}")
    if t == "run_continued_as_new":
        return ("continue_as_new", p["workflow"])
    raise ValueError(f"{t} is not a command-start event")


def is_start(ev: Event) -> bool:
    return ev.event_type in START_TYPES or (
        ev.event_type == "signal_received" and ev.payload.get("awaited_seq") is None
    )


def resolved_seq(ev: Event) -> int | None:
    p = ev.payload
    if ev.event_type in ("activity_completed", "activity_failed", "compensation_completed", "compensation_failed"):
        return int(p["scheduled_seq"])
    if ev.event_type in CANCELLED:
        return int(p[CANCELLED[ev.event_type]])
    if ev.event_type == "timer_fired" or ev.event_type in CHILD_RESOLUTIONS:
        return int(p["started_seq"])
    if ev.event_type == "signal_received" and p.get("awaited_seq") is not None:
        return int(p["awaited_seq"])
    return None


# What replay answers a command with, per start seq: (event type, data) where data is the
# activity result, the failed activity's payload (activity, attempts, error), a timer_fired's
# timeout_s, a received signal's payload, or a side effect's value. A pair instead of the Event
# so that a snapshot can be indexed without building one Event (and payload dict) per step.
Answer = tuple[str, Any]
_MISSING: Any = object()


def outcome_of(kind: str, target: str, answer: Answer) -> tuple[Any, BaseException | None]:
    """(value, exception) a command's await returns / raises, given its journaled answer."""
    t, d = answer
    if t == "activity_completed" or t == "signal_received" or t == "compensation_completed" or t == "patched":
        return d, None
    if t == "activity_failed" or t == "compensation_failed":
        err = d.get("error") or {}
        what = "activity" if t == "activity_failed" else "compensation"
        return None, ActivityFailed(
            f"{what} {d.get('activity')!r} failed after {d.get('attempts')} attempt(s): "
            f"{err.get('type', 'error')}: {err.get('message', '')}",
            activity=d.get("activity"),
            error_type=err.get("type"),
            attempts=d.get("attempts"),
        )
    if t == "timer_fired" and kind == "signal":
        return None, SignalTimeout(f"signal {target!r} did not arrive within {d}s")
    if t == "child_completed":
        return d, None
    if t == "child_failed" or (t == "child_cancelled" and d.get("reason") != "first"):
        return None, child_failure(answer)
    return None, None


def child_failure(answer: Answer) -> ChildFailed:
    """The ``cn.ChildFailed`` a child_failed / child_cancelled answer raises in the parent."""
    t, p = answer
    wf, rid = p.get("workflow"), p.get("child_run_id")
    if t == "child_cancelled":
        return ChildFailed(f"child workflow {wf!r} ({rid}) was cancelled", child_run_id=rid, workflow=wf,
                           state="cancelled")
    err = p.get("error") or {}
    state = p.get("state") or "failed"
    if state == "refused":
        return ChildFailed(f"child workflow {wf!r} was not started: {err.get('message', '')}",
                           child_run_id=None, workflow=wf, state="refused", error=err)
    return ChildFailed(f"child workflow {wf!r} ({rid}) failed: {err.get('type', 'error')}: {err.get('message', '')}",
                       child_run_id=rid, workflow=wf, state="failed", error=err)


def answer_of(ev: Event) -> Answer:
    """The answer a resolution event (or a side_effect / signal_received start) stands for."""
    t, p = ev.event_type, ev.payload
    if t == "activity_completed" or t == "compensation_completed":
        return (t, p.get("result"))
    if t == "activity_failed" or t == "compensation_failed":
        return (t, p)
    if t == "patched":
        return (t, True)
    if t == "timer_fired":
        return (t, p.get("timeout_s"))
    if t == "signal_received":
        return (t, p.get("payload"))
    if t == "side_effect":
        return (t, p.get("value"))
    if t == "child_completed":
        return (t, p.get("result"))
    if t in CHILD_RESOLUTIONS:
        return (t, p)
    return (t, None)


class JournalIndex:
    """The journal as replay reads it: what the Replayer matches commands against.

    One entry per command start, in journal order, as parallel lists (kind, target, ordinal,
    seq, and the start Event, None until asked for when it came compacted from a snapshot), and
    the answers by start seq: the first resolution in journal order wins; a side_effect or an
    already-delivered signal_received answers itself. Completed activities (the bulk of any
    long journal) keep only their result in ``values``: no tuple or Event per step, which is
    what makes indexing a snapshot cheap (``snapshots.decode`` fills these lists directly).
    """

    def __init__(self) -> None:
        self.kinds: list[str] = []
        self.targets: list[str] = []
        self.ordinals: list[int | None] = []
        self.seqs: list[int] = []
        self.start_events: list[Event | None] = []
        self.values: dict[int, Any] = {}  # start seq -> result of its activity_completed
        self.answers: dict[int, Answer] = {}  # start seq -> any other answer
        # start seq -> seq of the event that resolved it (cn.first's winner is the earliest);
        # a snapshot's compacted prefix fills it only when asked for (``resolved_at_of``)
        self.resolved_at: dict[int, int] = {}
        self.resolved_at_of: Callable[[], dict[int, int]] | None = None
        # number of starts before a workflow_log -> how many logs the journal has there
        self.logs_at: dict[int, int] = {}
        self.last_seq = 0
        self.events: list[Event] = []  # the journal's Events (after the compacted prefix, if any)
        self.start_event_of: Callable[[int], Event] | None = None  # builds a compacted start
        self.prefix_events: Callable[[], list[Event]] | None = None  # builds the compacted prefix

    def add(self, ev: Event) -> None:
        """Index the next journal event."""
        self.events.append(ev)
        seq = ev.seq
        if seq > self.last_seq:
            self.last_seq = seq
        t = ev.event_type
        if t in START_TYPES or (t == "signal_received" and ev.payload.get("awaited_seq") is None):
            kind, target = identity_of(ev)
            self.kinds.append(kind)
            self.targets.append(target)
            self.ordinals.append(ev.payload.get("ordinal"))
            self.seqs.append(seq)
            self.start_events.append(ev)
            if t in _SELF_ANSWERED:
                # These answer themselves (whatever a stray resolution event claims).
                self.values.pop(seq, None)
                self.answers[seq] = answer_of(ev)
                self.resolved_at[seq] = seq
            return
        if t == "workflow_log":
            self.logs_at[len(self.seqs)] = self.logs_at.get(len(self.seqs), 0) + 1
            return
        rs = resolved_seq(ev)
        if rs is not None and rs not in self.values and rs not in self.answers:
            self.resolved_at[rs] = seq
            if t == "activity_completed":
                self.values[rs] = ev.payload.get("result")
            else:
                self.answers[rs] = answer_of(ev)

    def answer(self, seq: int) -> Answer | None:
        value = self.values.get(seq, _MISSING)
        if value is not _MISSING:
            return ("activity_completed", value)
        return self.answers.get(seq)

    def resolution_seq(self, start_seq: int) -> int | None:
        """The seq of the event that resolved a start (None: not resolved)."""
        if self.resolved_at_of is not None:
            self.resolved_at = {**self.resolved_at_of(), **self.resolved_at}
            self.resolved_at_of = None
        return self.resolved_at.get(start_seq)

    def start_event(self, i: int) -> Event:
        ev = self.start_events[i]
        if ev is None:
            assert self.start_event_of is not None
            ev = self.start_events[i] = self.start_event_of(i)
        return ev

    def all_events(self) -> list[Event]:
        """Every event; a snapshot's prefix is only expanded into Events when this is called."""
        if self.prefix_events is not None:
            self.events[:0] = self.prefix_events()
            self.prefix_events = None
        return self.events

    def unresolved_activities(self) -> list[int]:
        values, answers = self.values, self.answers
        return [
            seq for kind, seq in zip(self.kinds, self.seqs, strict=True)
            if (kind == "activity" or kind == "compensation") and seq not in values and seq not in answers
        ]


class StartsBySeq(Mapping[int, Event]):
    """``Replayer.start_by_seq``: start events by seq, built on first access (a replayer loaded
    from a snapshot has no Event for its compacted starts until someone asks for one)."""

    def __init__(self, index: JournalIndex) -> None:
        self._ix = index

    def __getitem__(self, seq: int) -> Event:
        seqs = self._ix.seqs
        i = bisect_left(seqs, seq)  # start seqs ascend in any journal; else the scan below
        if not (i < len(seqs) and seqs[i] == seq):
            if seq not in seqs:
                raise KeyError(seq)
            i = seqs.index(seq)
        return self._ix.start_event(i)

    def __iter__(self) -> Iterator[int]:
        return iter(list(self._ix.seqs))

    def __len__(self) -> int:
        return len(self._ix.seqs)
