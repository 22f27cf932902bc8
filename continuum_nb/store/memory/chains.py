"""``MemoryStore``'s continue-as-new chains (store/chains.py): the successor of a continuing
wake, inserted with it under the one lock, and the links between runs, read from the run rows
(``RunRecord.correlation_id``, ``continued_from_run_id``, ``parent_run_id``)."""

from __future__ import annotations

from uuid import UUID

from ..base import CHANNEL_WAKE, Notification, RunRecord
from ..chains import ACTIVE_CHILD_STATES, ChainLinks, ContinuingWake
from .rows import copy_json
from .tables import MemoryTables

__all__ = ["MemoryChains"]


class MemoryChains(MemoryTables):
    """Chains, on the columns of migration 20261207050000 as the run rows carry them."""

    def set_parent(self, run_id: UUID, parent_run_id: UUID | None) -> None:
        """A run's ``parent_run_id`` (what a child workflow's start writes; tests use it)."""
        with self._lock:
            self._runs[run_id].parent_run_id = parent_run_id

    def _check_continuation(self, wake: ContinuingWake) -> None:
        """(lock held) Refused before anything is written: a successor id that exists."""
        cont = wake.continuation
        if cont is not None and (cont.next_run_id in self._runs or cont.next_run_id == wake.run_id):
            raise ValueError(f"run {cont.next_run_id} already exists; a successor needs a new run id")

    def _continue(self, wake: ContinuingWake, notes: list[Notification]) -> None:
        """(lock held, after the wake was applied) Insert the successor, move the mailbox, the
        signal keys and the children that have not ended, link the chain."""
        cont = wake.continuation
        if cont is None:  # (the history limits failed the run instead)
            return
        old = self._runs[wake.run_id]
        old.correlation_id = old.correlation_id or old.id
        version = old.version_hash
        if cont.version == "newest":
            mine_versions = [(v.order, h) for (n, h), v in self._versions.items() if n == old.workflow]
            version = max(mine_versions)[1] if mine_versions else version
        nxt = cont.next_run_id
        self._runs[nxt] = RunRecord(
            id=nxt, workflow=old.workflow, version_hash=version, state="suspended", input=copy_json(cont.input),
            trace_context=old.trace_context, started_at=wake.now, next_wakeup_at=wake.now,
            attributes=copy_json(old.attributes), retention=old.retention,
            correlation_id=old.correlation_id, continued_from_run_id=old.id, parent_run_id=old.parent_run_id,
        )
        self._events[nxt] = []
        for sig in self._signals.values():
            if sig.run_id == old.id and not sig.delivered:
                sig.run_id = nxt
        for skey in [k for k in self._signal_keys if k[0] == old.id]:  # the chain's keys go with it
            self._signal_keys[(nxt, skey[1], skey[2])] = self._signal_keys.pop(skey)
        for child in self._runs.values():
            if child.parent_run_id == old.id and child.state in ACTIVE_CHILD_STATES:
                child.parent_run_id = nxt
        notes.append(Notification(CHANNEL_WAKE, str(nxt)))

    def chain_links(self, run_id: UUID) -> ChainLinks:
        with self._lock:
            mine = self._runs.get(run_id)
            if mine is None:
                return ChainLinks()
            successor = next((r.id for r in self._runs.values() if r.continued_from_run_id == run_id), None)
            return ChainLinks(mine.correlation_id, mine.continued_from_run_id, successor, mine.parent_run_id)

    def chain_current(self, run_id: UUID) -> UUID:
        with self._lock:
            after = {r.continued_from_run_id: r.id for r in self._runs.values() if r.continued_from_run_id is not None}
            current, seen = run_id, {run_id}
            while current in after and after[current] not in seen:
                current = after[current]
                seen.add(current)
            return current
