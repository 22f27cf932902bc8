"""Committing wakes on PostgreSQL (``commit_wake``, ``commit_wakes``): one call of
``continuum_commit_wake`` per wake (a continuing wake adds its successor in the same
transaction, store/postgres/chains.py), or several wakes in one call (group.py); and, when the
fence refuses one, why."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import psycopg
from psycopg import errors as pgerrors

from ..base import Wake, WakeResult
from ..chains import ContinuingWake
from ..checks import lease_lost, seq_conflict
from ..starts import StartingWake
from . import sql as q
from .chains import commit_continuing
from .group import commit_wakes
from .ingress import duplicate_run
from .pool import Conn, PgPool, first_line
from .wake import checked_wake_values, exec_commit_wake, wake_text

__all__ = ["PgCommits"]


class PgCommits:
    """``commit_wake`` and ``commit_wakes`` of ``PostgresStore`` (see ``store.base.Store``)."""

    _db: PgPool

    def commit_wake(self, wake: Wake) -> WakeResult:
        # A StartingWake (store/starts.py) is the run's insert with its first wake: its new lease token.
        pending, token = self._commit(wake, wake.run_id, checked_wake_values(wake))
        return WakeResult(signal_pending=pending, lease_token=token if isinstance(wake, StartingWake) else None)

    def commit_wakes(self, wakes: Sequence[Wake]) -> list[WakeResult | Exception]:
        return commit_wakes(self._db, wakes, self._fence_failure, self.commit_wake)

    def _commit(self, wake: Wake, run_id: UUID, values: list[Any]) -> tuple[bool, int]:
        """One call of continuum_commit_wake with ``values`` (``wake_values`` of ``wake``):
        (signal_pending, lease token)."""
        args = [None if a is None else a.encode() for a in wake_text(values)]
        inserts_run = values[2] is not None  # p_new_run
        cont = wake.continuation if isinstance(wake, ContinuingWake) else None

        def call(conn: Conn) -> tuple[bool, int]:
            try:
                if cont is not None:  # the successor in the same transaction (store/chains.py)
                    return commit_continuing(conn, args, run_id, cont, wake.now)
                return exec_commit_wake(conn, args)
            except psycopg.Error as exc:
                if exc.sqlstate != q.WAKE_REFUSED:
                    raise
                raise self._fence_failure(conn, wake) from None

        try:
            return self._db.call(call)
        except pgerrors.UniqueViolation as exc:
            if inserts_run or cont is not None:
                raise duplicate_run(run_id if cont is None else cont.next_run_id, exc) from None
            raise ValueError(f"run {run_id}: {first_line(exc)}") from None

    def _fence_failure(self, conn: Conn, wake: Wake) -> Exception:
        """Why the fence refused (only on that path: one more round trip)."""
        row = conn.execute(q.RUN_STATE, {"id": wake.run_id}).fetchone()
        if row is None or row[1] != wake.lease_token or not wake.events:
            return lease_lost(wake.run_id, wake.lease_token)
        last = conn.execute(q.LAST_SEQ, {"run": wake.run_id}).fetchone()
        return seq_conflict(wake.run_id, wake.events[0].seq, int(last[0]) if last else 0)

