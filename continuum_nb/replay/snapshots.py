"""Snapshots: a compacted prefix of a run's journal (opt-in with ``snapshot_threshold``).

A snapshot keeps, for every event of the prefix, only what replay needs to match and answer the
workflow's commands (kind, target, ordinal, results, timer/signal bookkeeping) and drops the rest
(activity arguments, task ids, ...). Replay indexes it directly (no Event per step) and validates
every step exactly like the full journal: a snapshot is a faster way to load history, never a
way to skip checking it. A snapshot taken on another version of the code is ignored (full
replay), and one larger than ``snapshot_max_size_bytes`` is not stored.

Format 2 (written) is columnar: per event code, the events' seqs and one column per field, so
that a long run of similar steps costs a few JSON values per field instead of a list per event
(a smaller jsonb row, cheaper for the server to send and for us to parse). Integer columns that
follow arithmetic runs are stored as runs; ordinals as their difference from "one more than the
previous command with the same target" (zero in any journal the engine wrote, but kept exactly);
scheduled/started seqs relative to their event's seq. Values (results, errors, signal payloads,
side-effect values) are stored as they are. Format 1 (one list per event) is still read.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from ..store.base import Event, Snapshot
from ..store.payloads import dumps
from .journal import Answer, JournalIndex
from .replayer import Replayer

__all__ = ["FORMAT", "CompactSnapshot", "UnreadableSnapshot", "build_snapshot", "decode", "expand", "replayer_from"]

FORMAT = 2
#: Format 3 is format 2 plus ``V``: the events of the composing commands (patched, workflow_log,
#: compensations, cancellations) kept verbatim; written only when the prefix has any, so an
#: engine that cannot read them replays the whole journal instead.
FORMAT_VERBATIM = 3
READABLE_FORMATS = (1, 2, 3)


class UnreadableSnapshot(ValueError):
    """The snapshot's format is unknown to this engine (the caller should replay the journal)."""


# Event code -> (event type, payload keys in stored order). Format 1 stores each event as
# [seq, code, *values in this order]; format 2 stores one column per key.
_FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "S": ("activity_scheduled", ("activity", "ordinal", "idempotency_key")),
    "C": ("activity_completed", ("scheduled_seq", "result", "attempts", "idempotency_hit")),
    "F": ("activity_failed", ("scheduled_seq", "error", "attempts", "activity")),
    "T": ("timer_started", ("ordinal", "fire_at", "timer_id", "duration_s")),
    "X": ("timer_fired", ("started_seq", "fire_at", "timeout_s", "signal")),
    "W": ("signal_awaited", ("name", "ordinal", "timeout_at", "timer_id", "timeout_s")),
    "R": ("signal_received", ("name", "ordinal", "payload", "awaited_seq", "signal_id")),
    "E": ("side_effect", ("kind", "ordinal", "value")),
}
_CODE_OF = {event_type: code for code, (event_type, _) in _FIELDS.items()}
# How format 2 stores a column: interned name, ordinal, seq relative to the event's, int runs.
_NAME = {("S", "activity"), ("F", "activity"), ("W", "name"), ("R", "name"), ("E", "kind")}
_ORDINAL = {("S", "ordinal"), ("T", "ordinal"), ("W", "ordinal"), ("E", "ordinal")}
_RELATIVE = {("C", "scheduled_seq"), ("F", "scheduled_seq"), ("X", "started_seq")}
_INTS = {("C", "attempts"), ("C", "idempotency_hit"), ("F", "attempts"), ("R", "ordinal"), ("R", "awaited_seq")}
_SPARSE = {("S", "idempotency_key")}  # None once the activity's outcome is journaled
# (kind, target-field) of the codes whose events are command starts (R: only without awaited_seq)
_IDENTITY = {"S": ("activity", "activity"), "T": ("timer", None), "W": ("signal", "name"),
             "E": ("side_effect", "kind"), "R": ("signal", "name")}


@dataclass(frozen=True)
class CompactSnapshot:
    through_seq: int
    payload: dict[str, Any]

    @property
    def size_bytes(self) -> int:
        return len(dumps(self.payload).encode("utf-8"))


# --- integer columns ---------------------------------------------------------------------------
def _all_ints(values: list[Any]) -> bool:
    return set(map(type, values)) == {int}  # (exactly int: a bool is not packed as one)


def _pack_ints(values: list[Any]) -> Any:
    """Arithmetic runs ``{"ap": [first, step, count, ...]}`` when that is shorter, else the list."""
    if len(values) <= 3 or not _all_ints(values):  # (a run takes three values)
        return values
    n = len(values)
    steps = list(map(operator.sub, values[1:], values[:-1]))
    if not steps or steps.count(steps[0]) == len(steps):  # one run: the usual case, found in C
        return {"ap": [values[0], steps[0] if steps else 0, n]}
    runs: list[int] = []
    i = 0
    while i < n:
        j, step = i + 1, 0
        if j < n:
            step = steps[i]
            while j < n and steps[j - 1] == step:
                j += 1
        runs += (values[i], step, j - i)
        i = j
    return {"ap": runs} if len(runs) < n else values


def _ints(col: Any) -> list[Any]:
    if isinstance(col, list):
        return col
    ap = col["ap"]
    out: list[int] = []
    for k in range(0, len(ap), 3):
        first, step, count = ap[k], ap[k + 1], ap[k + 2]
        out.extend(range(first, first + step * count, step) if step else itertools.repeat(first, count))
    return out


def _column(values: list[Any], n: int, code: str, key: str) -> list[Any]:
    if len(values) != n:
        raise ValueError(f"snapshot column {code}.{key} has {len(values)} values for {n} events")
    return values


def _expected_ordinals(targets: list[Any]) -> list[int]:
    """0, 1, 2, ... per target, in order: the ordinal the engine gives each command."""
    if len(set(targets)) <= 1:
        return list(range(len(targets)))
    seen: dict[Any, int] = {}
    out = []
    for t in targets:
        n = seen.get(t, 0)
        seen[t] = n + 1
        out.append(n)
    return out


# --- building ------------------------------------------------------------------------------------
def build_snapshot(run_id: UUID, version_hash: str, events: list[Event]) -> CompactSnapshot:
    """Compact ``events`` (a journal prefix in seq order)."""
    by_code: dict[str, list[Event]] = {}
    verbatim: list[list[Any]] = []
    for e in events:
        code = _CODE_OF.get(e.event_type)
        if code is None:
            verbatim.append([e.seq, e.event_type, e.payload])
            continue
        by_code.setdefault(code, []).append(e)
    resolved = {int(e.payload["scheduled_seq"]) for code in ("C", "F") for e in by_code.get(code, ())}
    seqs = {code: [e.seq for e in evs] for code, evs in by_code.items()}
    # one column per payload key (column-wise: one comprehension per key, not one list per event)
    columns_of = {code: [[e.payload.get(k) for e in evs] for k in _FIELDS[code][1]] for code, evs in by_code.items()}
    if "S" in columns_of:  # the idempotency key is only needed while the outcome is not journaled
        columns_of["S"][2] = [None if s in resolved else k for s, k in zip(seqs["S"], columns_of["S"][2], strict=True)]
    if "C" in columns_of:
        columns_of["C"][3] = [bool(v) for v in columns_of["C"][3]]
    if "F" in columns_of:
        columns_of["F"][3] = ["" if v is None else v for v in columns_of["F"][3]]

    names: list[str] = []
    index: dict[str, int] = {}

    def intern(name: Any) -> int:
        if name not in index:
            index[name] = len(names)
            names.append(name)
        return index[name]

    payload: dict[str, Any] = {"format": FORMAT, "version_hash": version_hash, "names": names}
    for code, (_, keys) in _FIELDS.items():  # (interning in a fixed order: names[0] is an activity)
        if code not in columns_of:
            continue
        code_seqs = seqs[code]
        columns: dict[str, Any] = {"seq": _pack_ints(code_seqs)}
        for key, col in zip(keys, columns_of[code], strict=True):
            if (code, key) in _NAME:
                columns[key] = _pack_ints([intern(v) for v in col])
            elif (code, key) in _ORDINAL and _all_ints(col):
                targets = columns_of[code][0] if code != "T" else [None] * len(col)
                columns[key] = {"ord": _pack_ints(list(map(operator.sub, col, _expected_ordinals(targets))))}
            elif (code, key) in _RELATIVE and _all_ints(col):
                columns[key] = {"rel": _pack_ints(list(map(operator.sub, code_seqs, col)))}
            elif (code, key) in _INTS:
                columns[key] = _pack_ints([int(v) if type(v) is bool else v for v in col])
            elif (code, key) in _SPARSE and sum(v is not None for v in col) * 2 < len(col):
                columns[key] = {"at": [[i, v] for i, v in enumerate(col) if v is not None]}
            else:
                columns[key] = col
        payload[code] = columns
    if verbatim:
        payload["format"], payload["V"] = FORMAT_VERBATIM, verbatim
    through = events[-1].seq if events else 0
    return CompactSnapshot(through, payload)


# --- reading ---------------------------------------------------------------------------------------
class _Columns:
    """A snapshot payload, decoded column by column on first use (replay needs only a few)."""

    def __init__(self, payload: dict[str, Any]) -> None:
        fmt = payload.get("format")
        if fmt not in READABLE_FORMATS:
            raise UnreadableSnapshot(f"unknown snapshot format {fmt!r}")
        self.names: list[str] = payload["names"]
        self._cache: dict[tuple[str, str], list[Any]] = {}
        self._raw: dict[str, dict[str, Any]] = {}
        self.seqs: dict[str, list[int]] = {}
        self.verbatim = [Event(int(v[0]), str(v[1]), v[2]) for v in payload.get("V", ())]
        if fmt == 1:
            self._read_v1(payload["steps"])
            return
        for code in _FIELDS:
            if code in payload:
                self._raw[code] = payload[code]
                self.seqs[code] = _ints(payload[code]["seq"])

    def _read_v1(self, steps: list[list[Any]]) -> None:
        by_code: dict[str, list[list[Any]]] = {}
        for step in steps:
            if step[1] not in _FIELDS:
                raise ValueError(f"unknown snapshot step {step[1]!r}")
            by_code.setdefault(step[1], []).append(step)
        for code, code_steps in by_code.items():
            self.seqs[code] = [s[0] for s in code_steps]
            for k, key in enumerate(_FIELDS[code][1]):
                col = [s[2 + k] for s in code_steps]
                if (code, key) in _NAME and code != "E":  # format 1 did not intern side-effect kinds
                    col = [self.names[v] for v in col]
                self._cache[(code, key)] = col

    def col(self, code: str, key: str) -> list[Any]:
        got = self._cache.get((code, key))
        if got is None:
            got = self._cache[(code, key)] = self._decode(code, key)
        return got

    def _decode(self, code: str, key: str) -> list[Any]:
        raw = self._raw[code][key]
        n = len(self.seqs[code])
        out: list[Any]
        if isinstance(raw, dict) and "ord" in raw:
            targets = self.col(code, _FIELDS[code][1][0]) if code != "T" else [None] * n
            deltas = _column(_ints(raw["ord"]), n, code, key)
            expected = _expected_ordinals(targets)
            out = expected if not any(deltas) else list(map(operator.add, deltas, expected))
        elif isinstance(raw, dict) and "rel" in raw:
            out = list(map(operator.sub, self.seqs[code], _column(_ints(raw["rel"]), n, code, key)))
        elif isinstance(raw, dict) and "at" in raw:
            out = [None] * n
            for i, v in raw["at"]:
                out[i] = v
        elif (code, key) in _NAME:
            out = list(map(self.names.__getitem__, _ints(raw)))
        else:
            out = _ints(raw)
            if (code, key) == ("C", "idempotency_hit"):
                out = [bool(v) for v in out]
        return _column(out, n, code, key)

    def event(self, code: str, j: int) -> Event:
        event_type, keys = _FIELDS[code]
        return _event(self.seqs[code][j], event_type, keys, [self.col(code, k)[j] for k in keys])

    def events(self) -> list[Event]:
        out = []
        for code, seqs in self.seqs.items():
            event_type, keys = _FIELDS[code]
            rows = zip(seqs, zip(*(self.col(code, k) for k in keys), strict=True), strict=True)
            out += [_event(seq, event_type, keys, values) for seq, values in rows]
        out += self.verbatim
        out.sort(key=lambda e: e.seq)
        return out


def _event(seq: int, event_type: str, keys: tuple[str, ...], values: Any) -> Event:
    if event_type == "timer_fired":  # carries timeout_s/signal only when it timed a signal out
        p = {"started_seq": values[0], "fire_at": values[1]}
        if values[2] is not None:
            p["timeout_s"], p["signal"] = values[2], values[3]
        return Event(seq, event_type, p)
    return Event(seq, event_type, dict(zip(keys, values, strict=True)))


def decode(snapshot: Snapshot | CompactSnapshot) -> JournalIndex:
    """Index a snapshot for replay (starts in journal order, answers by start seq) without
    building an Event per step: those are built on demand (drift messages, the live tail)."""
    cols = _Columns(snapshot.payload)
    ix = JournalIndex()
    if cols.verbatim:  # composing commands: index every event in journal order (the plain way)
        for ev in cols.events():
            ix.add(ev)
        return ix
    # Command starts, per code: the code, positions within the code, and their seqs/targets/ordinals.
    groups: list[tuple[str, list[int], list[int], list[Any], list[Any]]] = []
    for code, (_, target_key) in _IDENTITY.items():
        if code not in cols.seqs:
            continue
        seqs = cols.seqs[code]
        targets = cols.col(code, target_key) if target_key else ["timer"] * len(seqs)
        ordinals = cols.col(code, "ordinal")
        positions = list(range(len(seqs)))
        if code == "R":  # only a signal already delivered at the await is a start
            positions = [j for j, a in enumerate(cols.col("R", "awaited_seq")) if a is None]
            seqs = [seqs[j] for j in positions]
            targets, ordinals = [targets[j] for j in positions], [ordinals[j] for j in positions]
        if positions:
            groups.append((code, positions, seqs, targets, ordinals))
    start_event_of: Callable[[int], Event]
    if len(groups) == 1:  # (copies: the index grows at the live tail, the columns must not)
        code, positions, seqs, targets, ordinals = groups[0]
        ix.seqs, ix.targets, ix.ordinals = list(seqs), list(targets), list(ordinals)
        ix.kinds = [_IDENTITY[code][0]] * len(seqs)
        start_event_of = lambda i: cols.event(code, positions[i])  # noqa: E731
    else:  # several kinds of command (or none): merge them in journal (seq) order
        merged = sorted(((s, code, j, t, o) for code, pos, *columns in groups
                         for j, s, t, o in zip(pos, *columns, strict=True)), key=lambda m: m[0])
        ix.seqs = [m[0] for m in merged]
        ix.kinds = [_IDENTITY[m[1]][0] for m in merged]
        ix.targets = [m[3] for m in merged]
        ix.ordinals = [m[4] for m in merged]
        start_event_of = lambda i: cols.event(merged[i][1], merged[i][2])  # noqa: E731
    ix.start_events = [None] * len(ix.seqs)
    ix.start_event_of = start_event_of
    ix.prefix_events = cols.events
    ix.last_seq = max((max(seqs) for seqs in cols.seqs.values() if seqs), default=0)
    _answers(cols, ix)
    ix.resolved_at_of = lambda: _resolved_at(cols)
    return ix


def _resolved_at(cols: _Columns) -> dict[int, int]:
    """Start seq -> seq of its first resolution (``JournalIndex.resolved_at``), for ``cn.first``."""
    pairs: list[tuple[int, int]] = []
    for code, key in (("C", "scheduled_seq"), ("F", "scheduled_seq"), ("X", "started_seq"), ("R", "awaited_seq")):
        if code in cols.seqs:
            pairs += [(s, s if r is None else r) for s, r in zip(cols.seqs[code], cols.col(code, key), strict=True)]
    if "E" in cols.seqs:
        pairs += [(s, s) for s in cols.seqs["E"]]
    out: dict[int, int] = {}
    for seq, start in sorted(pairs):
        out.setdefault(start, seq)
    return out


def _answers(cols: _Columns, ix: JournalIndex) -> None:
    """Answers by start seq, by the rules of ``JournalIndex.add``: the first resolution in journal
    order wins, and a side effect or an already-delivered signal answers itself."""
    resolutions: list[tuple[list[int], list[Any], list[Answer]]] = []  # (event seqs, resolved seqs, answers)
    completed = None
    if "C" in cols.seqs:
        completed = (cols.seqs["C"], cols.col("C", "scheduled_seq"), cols.col("C", "result"))
    if "F" in cols.seqs:
        failed = [("activity_failed", {"activity": a, "attempts": n, "error": e}) for a, n, e in zip(
            cols.col("F", "activity"), cols.col("F", "attempts"), cols.col("F", "error"), strict=True)]
        resolutions.append((cols.seqs["F"], cols.col("F", "scheduled_seq"), failed))
    if "X" in cols.seqs:
        fired = [("timer_fired", t) for t in cols.col("X", "timeout_s")]
        resolutions.append((cols.seqs["X"], cols.col("X", "started_seq"), fired))
    own: list[tuple[int, Answer]] = []
    if "R" in cols.seqs:
        rows = zip(cols.seqs["R"], cols.col("R", "awaited_seq"), cols.col("R", "payload"), strict=True)
        received = [(s, a, ("signal_received", p)) for s, a, p in rows]
        own += [(s, ans) for s, a, ans in received if a is None]
        later = [r for r in received if r[1] is not None]
        resolutions.append(([r[0] for r in later], [r[1] for r in later], [r[2] for r in later]))
    if "E" in cols.seqs:
        own += [(s, ("side_effect", v)) for s, v in zip(cols.seqs["E"], cols.col("E", "value"), strict=True)]

    resolutions = [r for r in resolutions if r[0]]
    if completed is not None:
        ix.values = dict(zip(completed[1], completed[2], strict=True))
    if resolutions or len(ix.values) != len(completed[1] if completed else ()):
        # Other kinds too, or a seq resolved twice: replay them in journal order, first wins.
        ix.values = {}
        everything = [(s, r, ("activity_completed", v)) for s, r, v in zip(*completed, strict=True)] if completed else []
        everything += [(s, r, a) for seqs, rss, anss in resolutions for s, r, a in zip(seqs, rss, anss, strict=True)]
        for _, rs, (t, data) in sorted(everything, key=lambda e: e[0]):
            if rs not in ix.values and rs not in ix.answers:
                if t == "activity_completed":
                    ix.values[rs] = data
                else:
                    ix.answers[rs] = (t, data)
    for seq, ans in own:
        ix.values.pop(seq, None)
        ix.answers[seq] = ans


def expand(snapshot: Snapshot | CompactSnapshot) -> list[Event]:
    """The events a snapshot stands for (with the payload keys replay reads)."""
    return _Columns(snapshot.payload).events()


def replayer_from(
    run_id: str,
    workflow: str,
    factory: Callable[[], Coroutine[Any, Any, Any]],
    snapshot: Snapshot | CompactSnapshot,
    rest: list[Event],
) -> Replayer:
    """A replayer over the snapshot's prefix plus the events after it. Raises
    ``UnreadableSnapshot`` for a format this engine does not know."""
    return Replayer.from_index(run_id, workflow, factory, decode(snapshot),
                               [e for e in rest if e.seq > snapshot.through_seq])
