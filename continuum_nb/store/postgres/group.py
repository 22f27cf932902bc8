"""Group commit on PostgreSQL (``commit_wakes``): several runs' wakes in one call of
``continuum_commit_wakes_json`` (migration 20261208000000), one round trip and one transaction:
one JSON array of each wake's arguments as JSON values, encoded once.

The server runs each wake as one ``continuum_commit_wake`` call in its own subtransaction, so a
wake that is refused (its run's lease lost, its seq taken, a value PostgreSQL refuses) is rolled
back alone and reported in its row; the others commit together. A wake that lost a deadlock
with another engine's transaction (possible only across engines: the runs of one batch are all
held here) is committed again on its own, and so is a continuing wake (``cn.continue_as_new``:
its successor is inserted by a second statement of its own transaction). A starting wake
(store/starts.py) inserts its run in its own subtransaction: a run id that exists refuses it alone.
A value PostgreSQL refuses anywhere in the batch fails the call before any wake ran: then each
wake is committed alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..base import Wake, WakeResult
from ..chains import ContinuingWake
from ..checks import run_exists
from ..payloads import dumps
from ..starts import StartingWake
from . import sql as q
from .pool import TRANSIENT_STATES, Conn, PgPool, server_error
from .wake import WakeRow, checked_wake_values, exec_commit_wakes

__all__ = ["commit_wakes"]

Outcome = WakeResult | Exception

#: A starting wake whose run id exists: its insert violates the runs' primary key.
UNIQUE_VIOLATION = "23505"
RUNS_PKEY = "continuum_runs_pkey"


def commit_wakes(db: PgPool, wakes: Sequence[Wake], fence_failure: Callable[[Conn, Wake], Exception],
                 commit_wake: Callable[[Wake], WakeResult]) -> list[Outcome]:
    """``Store.commit_wakes``: one entry per wake, in order. ``fence_failure`` tells why the
    fence refused a wake (read on the same connection); ``commit_wake`` commits one alone."""
    out: list[Outcome | None] = [None] * len(wakes)
    sent: list[int] = []
    alone: list[int] = []
    values: list[list[Any]] = []
    for i, wake in enumerate(wakes):
        if isinstance(wake, ContinuingWake):
            alone.append(i)
            continue
        try:
            values.append(checked_wake_values(wake))
        except ValueError as exc:  # a value that cannot be sent: nothing of this wake is
            out[i] = exc
            continue
        sent.append(i)
    if sent:
        payload = dumps(values).encode()

        def call(conn: Conn) -> list[int]:
            return _read_rows(conn, wakes, sent, exec_commit_wakes(conn, payload), out, fence_failure)

        try:
            alone += db.call(call)
        except ValueError:
            # A value PostgreSQL refuses in the batch's JSON itself (jsonb has no \u0000): the
            # call failed before any wake ran, so nothing of it is written; alone, each wake's
            # values arrive as parameters of their own, and only the wake that has it fails.
            alone += sent
    for i in alone:
        try:
            out[i] = commit_wake(wakes[i])
        except Exception as exc:
            out[i] = exc
    return [r if r is not None else RuntimeError(f"run {w.run_id}: the group commit returned no row for it")
            for r, w in zip(out, wakes, strict=True)]


def _read_rows(conn: Conn, wakes: Sequence[Wake], sent: list[int], rows: list[WakeRow],
               out: list[Outcome | None], fence_failure: Callable[[Conn, Wake], Exception]) -> list[int]:
    """(on the call's connection) Each sent wake's outcome into ``out``; returns the wakes that
    lost a transient conflict (nothing of them written), to be committed again alone."""
    again = []
    for i, (pending, token, state, message, detail) in zip(sent, rows, strict=False):
        wake = wakes[i]
        starting = isinstance(wake, StartingWake)
        if state is None:
            out[i] = WakeResult(signal_pending=pending, lease_token=token if starting else None)
        elif starting and state == UNIQUE_VIOLATION and RUNS_PKEY in (message or ""):
            out[i] = run_exists(wake.run_id)
        elif state == q.WAKE_REFUSED:
            out[i] = fence_failure(conn, wake)
        elif state in TRANSIENT_STATES:
            again.append(i)
        else:
            line = (message or state).splitlines()[0]
            out[i] = server_error(state, line, message or "", detail or "") or ValueError(
                f"run {wake.run_id}: PostgreSQL refused the wake ({state}: {line})")
    return again
