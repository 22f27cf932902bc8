"""Snapshots of held runs (opt-in with ``snapshot_threshold``): when a wake crosses the
threshold, how a run's history is loaded from its newest snapshot, and taking one.

A snapshot is fenced by the run's lease like every other write, so it is saved while the wake
that crossed the threshold still holds the lease: a wake that would release its run (a long
wait) keeps the lease through its commit, saves the snapshot, then releases (``Runner``). That
is what makes "a snapshot after every wake that crosses the threshold" hold for the first wake
of a run too, and for the wake that leaves a run waiting for days.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ..replay import snapshots
from ..replay.replayer import Replayer
from ..store.base import Snapshot, Store
from ..telemetry import emit
from .held import HeldRun

__all__ = ["Compaction"]

log = logging.getLogger("continuum_nb.engine")


class Compaction:
    """The snapshot policy of one engine: ``threshold`` new events (None: never), at most
    ``max_size_bytes`` per snapshot."""

    def __init__(self, store: Store, threshold: int | None, max_size_bytes: int) -> None:
        self.store = store
        self.threshold = threshold
        self.max_size_bytes = max_size_bytes

    def due(self, held: HeldRun) -> bool:
        """The run's journal has grown by ``threshold`` events or more since its last snapshot."""
        rep = held.replayer
        return self.threshold is not None and rep is not None and rep.last_seq - held.snapshot_seq >= self.threshold

    def load(self, held: HeldRun, factory: Callable[[], Any]) -> Replayer | None:
        """A replayer over the newest snapshot (taken on this version) plus the events after it;
        None when snapshots are off, there is none, or it cannot be read (replay the journal)."""
        if self.threshold is None:
            return None
        snap = self.store.load_snapshot(held.run_id)
        if snap is None or snap.version_hash != held.wf.version_hash:
            return None
        rest = self.store.load_journal(held.run_id, after_seq=snap.through_seq)
        try:
            rep = snapshots.replayer_from(str(held.run_id), held.record.workflow, factory, snap, rest)
        except snapshots.UnreadableSnapshot as exc:
            # e.g. written by a newer engine: the journal is the truth, replay all of it
            log.warning("run %s: snapshot through seq %s ignored (%s); replaying the whole journal",
                        held.run_id, snap.through_seq, exc)
            return None
        held.snapshot_seq = snap.through_seq
        return rep

    def take(self, held: HeldRun, meta: dict[str, Any]) -> None:
        """Snapshot the run's journal as the last commit left it, when ``due``; ``meta`` is the
        run's telemetry metadata. Needs the run's lease (``held.token``) still held."""
        rep = held.replayer
        if rep is None or not self.due(held):
            return
        snap = snapshots.build_snapshot(held.run_id, held.wf.version_hash, rep.events)
        size = snap.size_bytes
        meta = {**meta, "through_seq": snap.through_seq}
        held.snapshot_seq = snap.through_seq  # also when skipped: try again N events later
        if size > self.max_size_bytes:
            emit(("continuum", "snapshot", "skipped"), {"size_bytes": size},
                 {**meta, "reason": "too_large", "max_size_bytes": self.max_size_bytes})
            return
        t0 = time.perf_counter_ns()
        saved = self.store.save_snapshot(
            Snapshot(held.run_id, snap.through_seq, held.wf.version_hash, snap.payload, size), held.token
        )
        if saved:
            emit(("continuum", "snapshot", "taken"),
                 {"size_bytes": size, "events": len(rep.events), "duration": time.perf_counter_ns() - t0}, meta)
