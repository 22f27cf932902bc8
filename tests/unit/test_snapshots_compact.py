"""A snapshot replays exactly like the journal it compacts: for every split point of every
journal (recorded ones, and synthetic ones with every event type), replaying snapshot + rest
gives the same outcome, the same drift report, the same live-tail events and the same public
replayer state as replaying the full journal. Format 1 snapshots are still read; an unknown
format is refused with ``UnreadableSnapshot``. Pure logic, no I/O."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import continuum_nb as cn
from continuum_nb.replay import (
    Blocked,
    Completed,
    Drifted,
    Failed,
    LiveOutcome,
    Replayer,
    snapshots,
)
from continuum_nb.replay.snapshots import (
    CompactSnapshot,
    UnreadableSnapshot,
    build_snapshot,
    replayer_from,
)
from continuum_nb.store.base import Event, SignalRecord
from tests.replay.workflows import NOW, WORKFLOWS, NothingLive
from tests.snapshot_format1 import build_v1

REPLAY_DIR = Path(__file__).parent.parent / "replay"
RUN = uuid.UUID(int=7)


@cn.activity(name="compact.fetch")
def fetch(i: int) -> int:
    return i


@cn.activity(name="compact.store")
def store(i: int) -> int:
    return i


@cn.activity(name="compact.flaky")
def flaky(i: int) -> int:
    return i


async def mixed(rounds: int) -> Any:
    """Every event type: alternating activities (ordinals per target), failures caught, side
    effects, timers, gathers, a signal delivered at the await, one awaited, one timing out."""
    out: list[Any] = []
    for i in range(rounds):
        a = await fetch(i)
        out.append(await store(a))
        if i % 2 == 0:
            out.append(cn.now().isoformat())
        if i % 3 == 1:
            try:
                await flaky(i)
            except cn.ActivityFailed as exc:
                out.append(str(exc))
            await cn.timer(cn.minutes(5))
        if i % 4 == 3:
            out.append(await cn.gather(fetch(100 + i), store(100 + i)))
            try:
                await cn.gather(store(200 + i), flaky(200 + i))
            except cn.ActivityFailed as exc:
                out.append(str(exc))
    out.append(await cn.signal("early"))
    try:
        out.append(await cn.signal("never", timeout=cn.hours(1)))
    except cn.SignalTimeout as exc:
        out.append(str(exc))
    out.append(await cn.signal("late", timeout=cn.hours(100)))
    return out


async def mixed_changed(rounds: int) -> Any:
    """The same, except that round 2 stores before it fetches: drift in the middle."""
    for i in range(rounds):
        if i == 2:
            await store(i)
        await fetch(i)
    return None


class Live:
    """A deterministic engine stand-in: activities complete at once, the clock moves an hour per
    reading, signal "early" is waiting from the start, "late" arrives just after its await
    (unless ``deliver_late`` is off), "never" never arrives."""

    def __init__(self, deliver_late: bool = True) -> None:
        self.t = NOW
        self.deliver_late = deliver_late
        self.asked: dict[str, int] = {}

    def now(self) -> datetime:
        self.t += timedelta(hours=1)
        return self.t

    def task_outcome(self, seq: int) -> LiveOutcome | None:
        if seq % 7 == 0:  # some outcomes come from "elsewhere", some from this engine
            return LiveOutcome(state="completed", result={"seq": seq}, attempts=2, local=False)
        return LiveOutcome(state="completed", result=seq, local=True)

    def signal(self, name: str, skip: set[int]) -> SignalRecord | None:
        ids = {"early": 1, "late": 2}
        self.asked[name] = self.asked.get(name, 0) + 1
        if name not in ids or ids[name] in skip:
            return None
        if name == "late" and (not self.deliver_late or self.asked[name] == 1):
            return None  # not there at the await: signal_awaited, then received
        return SignalRecord(ids[name], RUN, name, {"signal": name})


def record(fn: Any, resolver: Live) -> tuple[list[Event], Any]:
    """Run ``fn`` live against ``resolver`` and return the journal it writes."""
    rep = Replayer("run", "wf", fn, [])
    events: list[Event] = []
    while True:
        # the activity name is only known once scheduled: flaky ones fail
        out = rep.advance(_FailFlaky(resolver, rep))
        events += rep.batch.events
        rep.reset_batch()
        if not isinstance(out, Blocked) or not resolver.deliver_late:
            return events, out


class _FailFlaky:
    def __init__(self, inner: Live, rep: Replayer) -> None:
        self.inner, self.rep = inner, rep

    def now(self) -> datetime:
        return self.inner.now()

    def task_outcome(self, seq: int) -> LiveOutcome | None:
        if self.rep.start_by_seq[seq].payload["activity"] == "compact.flaky":
            return LiveOutcome(state="failed", error={"type": "ValueError", "message": f"boom {seq}"}, attempts=3)
        return self.inner.task_outcome(seq)

    def signal(self, name: str, skip: set[int]) -> SignalRecord | None:
        return self.inner.signal(name, skip)


def mixed_journal() -> list[Event]:
    events, out = record(lambda: mixed(8), Live())
    assert isinstance(out, Completed), out
    return events


def stored(snap: CompactSnapshot) -> CompactSnapshot:
    """As read back from a jsonb column: a JSON round trip with the keys in another order."""
    def reorder(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: reorder(v[k]) for k in sorted(v, key=lambda k: (len(k), k))}
        if isinstance(v, list):
            return [reorder(x) for x in v]
        return v
    return CompactSnapshot(snap.through_seq, reorder(json.loads(json.dumps(snap.payload))))


def comparable(outcome: Any) -> Any:
    if isinstance(outcome, Failed):  # (the traceback text is not part of the comparison)
        return ("failed", outcome.error["type"], outcome.error["message"])
    return outcome


def live_events(events: list[Event]) -> list[tuple[int, str, dict[str, Any]]]:
    random = ("task_id", "timer_id")
    return [(e.seq, e.event_type, {k: v for k, v in e.payload.items() if k not in random}) for e in events]


def drive_both(fn: Any, events: list[Event], split: int, encode: Any, resolver: Any) -> None:
    """Replay ``events`` in full and as snapshot(events[:split]) + rest; everything must agree."""
    full = Replayer("run", "wf", fn, list(events))
    snap = stored(encode(events[:split]))
    from_snap = replayer_from("run", "wf", fn, snap, list(events))  # (rest filtered by seq)
    assert from_snap.replay_events == full.replay_events
    assert from_snap.last_seq == full.last_seq
    assert from_snap.unresolved_activities() == full.unresolved_activities()
    assert set(from_snap.start_by_seq) == set(full.start_by_seq)
    outcomes = [rep.advance(resolver()) for rep in (full, from_snap)]
    assert comparable(outcomes[1]) == comparable(outcomes[0])
    assert live_events(from_snap.batch.events) == live_events(full.batch.events)
    assert [(a.seq, a.activity) for a in from_snap.batch.activities] == [(a.seq, a.activity) for a in full.batch.activities]
    assert from_snap.batch.consumed_signals == full.batch.consumed_signals
    assert len(from_snap.batch.fired_timers) == len(full.batch.fired_timers)
    assert [s for s, _ in from_snap.batch.outcomes] == [s for s, _ in full.batch.outcomes]
    for seq in full.start_by_seq:
        a, b = full.start_by_seq[seq], from_snap.start_by_seq[seq]
        assert (a.seq, a.event_type) == (b.seq, b.event_type)
        same = {k: v for k, v in b.payload.items() if seq <= snap.through_seq or k not in ("task_id", "timer_id")}
        assert {k: a.payload.get(k) for k in same} == same  # the keys replay reads (live ones: random ids)
    assert [(e.seq, e.event_type) for e in from_snap.events] == [(e.seq, e.event_type) for e in full.events]


ENCODERS = {"format2": lambda evs: build_snapshot(RUN, "v", evs), "format1": build_v1}


def load(name: str) -> tuple[list[Event], dict[str, Any]]:
    data = json.loads((REPLAY_DIR / f"{name}.json").read_text())
    return [Event(e["seq"], e["event_type"], e["payload"]) for e in data["journal"]], data["input"]


RECORDED = [("order", j) for j in ("order_completed", "order_expired", "order_in_flight", "order_signal_first")] + [
    ("order_refactored", "order_completed"),
    ("order_notify_first", "order_completed"),
    ("order_clock_first", "order_completed"),
    ("order_other_signal", "order_completed"),
    ("order_no_timer", "order_completed"),
    ("order_notify_first", "order_in_flight"),
]


@pytest.mark.parametrize("encoding", sorted(ENCODERS))
@pytest.mark.parametrize("workflow,journal", RECORDED, ids=[f"{w}-{j}" for w, j in RECORDED])
def test_recorded_journals_replay_the_same_from_every_snapshot(workflow: str, journal: str, encoding: str) -> None:
    events, inputs = load(journal)
    fn = WORKFLOWS[workflow]
    for split in range(len(events) + 1):
        drive_both(lambda: fn(**inputs), events, split, ENCODERS[encoding], NothingLive)


@pytest.mark.parametrize("encoding", sorted(ENCODERS))
def test_every_event_type_replays_the_same_from_every_snapshot(encoding: str) -> None:
    events = mixed_journal()
    assert {e.event_type for e in events} == {
        "activity_scheduled", "activity_completed", "activity_failed", "timer_started", "timer_fired",
        "signal_awaited", "signal_received", "side_effect"}
    assert any(e.event_type == "signal_received" and e.payload["awaited_seq"] is None for e in events)
    assert any(e.event_type == "signal_received" and e.payload["awaited_seq"] is not None for e in events)
    assert any(e.event_type == "timer_fired" and e.payload.get("signal") == "never" for e in events)
    for split in range(0, len(events) + 1, 3):
        drive_both(lambda: mixed(8), events, split, ENCODERS[encoding], NothingLive)
        drive_both(lambda: mixed_changed(8), events, split, ENCODERS[encoding], NothingLive)


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.9, 1.0])
def test_live_tail_after_a_snapshot_continues_like_the_full_journal(cut: float) -> None:
    # A run interrupted part-way (and one with unresolved activities in the snapshot itself):
    # replayed, then continued live; both paths must record the same events.
    events = mixed_journal()
    prefix = events[: int(len(events) * cut)]
    unresolved = [e for e in prefix if not (e.event_type == "activity_completed" and e.seq > prefix[-1].seq - 6)]
    for journal in (prefix, unresolved):
        for split in range(0, len(journal) + 1, 5):
            drive_both(lambda: mixed(8), journal, split, ENCODERS["format2"], Live)


def test_compacted_ordinals_and_targets_are_still_checked() -> None:
    events = mixed_journal()
    snap = stored(build_snapshot(RUN, "v", events))
    snap.payload["names"][snap.payload["names"].index("compact.store")] = "compact.other"
    rep = replayer_from("run", "wf", lambda: mixed(8), snap, [])
    out = rep.advance(NothingLive())
    assert isinstance(out, Drifted) and "compact.other" in out.error["message"]
    assert out.error["expected"]["target"] == "compact.other" and out.error["actual"]["target"] == "compact.store"

    # An ordinal that differs from the journal the snapshot was built from is drift too.
    changed = [Event(e.seq, e.event_type, dict(e.payload)) for e in events]
    fetches = [e for e in changed if e.event_type == "activity_scheduled" and e.payload["activity"] == "compact.fetch"]
    fetches[3].payload["ordinal"] = 17
    rep = replayer_from("run", "wf", lambda: mixed(8), stored(build_snapshot(RUN, "v", changed)), [])
    out = rep.advance(NothingLive())
    assert isinstance(out, Drifted) and out.error["expected"]["ordinal"] == 17 and out.error["actual"]["ordinal"] == 3


def test_long_uniform_history_compacts_to_a_few_values_per_column() -> None:
    events: list[Event] = []
    for i in range(2000):
        events.append(Event(2 * i + 1, "activity_scheduled", {"activity": "compact.fetch", "ordinal": i,
                                                              "args": [i], "kwargs": {}, "idempotency_key": None}))
        events.append(Event(2 * i + 2, "activity_completed", {"activity": "compact.fetch", "scheduled_seq": 2 * i + 1,
                                                              "result": i * i, "attempts": 1, "idempotency_hit": False}))
    snap = build_snapshot(RUN, "v", events)
    s, c = snap.payload["S"], snap.payload["C"]
    assert s["seq"] == {"ap": [1, 2, 2000]} and s["ordinal"] == {"ord": {"ap": [0, 0, 2000]}}
    assert c["scheduled_seq"] == {"rel": {"ap": [1, 0, 2000]}} and c["result"] == [i * i for i in range(2000)]
    assert snapshots.expand(stored(snap)) == [
        Event(e.seq, e.event_type, {k: e.payload.get(k) for k in snapshots._FIELDS[snapshots._CODE_OF[e.event_type]][1]})
        for e in events
    ]


def test_unknown_format_is_refused_not_misread() -> None:
    events, _ = load("order_completed")
    snap = build_snapshot(RUN, "v", events)
    future = CompactSnapshot(snap.through_seq, {**snap.payload, "format": 99})
    with pytest.raises(UnreadableSnapshot):
        replayer_from("run", "wf", lambda: WORKFLOWS["order"]("o", 1), future, [])


@pytest.mark.parametrize("values", [
    [], [5], [1, 2], [1, 2, 3, 4], [0] * 10, list(range(10, 0, -1)), [1, 3, 5, 2, 2, 2, 2, 9, -4],
    [0, 5, 0, 5, 0, 5], [True, 1, 2, 3], [None, 1, 2, 3, 4], [1.0, 2.0, 3.0, 4.0],
])
def test_integer_columns_round_trip_exactly(values: list[Any]) -> None:
    packed = snapshots._pack_ints(list(values))
    back = snapshots._ints(json.loads(json.dumps(packed)))
    assert back == values and [type(v) for v in back] == [type(v) for v in values]
    if len(values) > 3 and all(type(v) is int for v in values) and len(set(values)) == 1:
        assert packed == {"ap": [values[0], 0, len(values)]}
