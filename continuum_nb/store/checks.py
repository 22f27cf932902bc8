"""What both stores refuse, and how they say it: the checks on a wake before anything is written,
and the one-line errors of a missing run, a run in the wrong state, a stale lease and a seq
conflict.

Shared by ``store.postgres`` and ``store.memory`` so that ``MemoryStore`` raises exactly what
``PostgresStore`` raises (``tests/unit/test_store_contract.py`` holds them to it). Nothing here
touches a database.
"""

from __future__ import annotations

from uuid import UUID

from ..errors import LeaseLost, RunNotActive, RunNotFound
from .base import Wake

__all__ = [
    "check_first_wake",
    "check_wake",
    "lease_lost",
    "run_not_active",
    "run_not_found",
    "seq_conflict",
]

_ACTIONS = {
    "signal": "it can no longer receive signals",
    "cancel": "it can no longer be cancelled",
    "resume": "only a drifted run can be resumed (cn.resume is for runs whose code drifted)",
}


def run_not_found(run_id: UUID) -> RunNotFound:
    return RunNotFound(
        f"run {run_id} does not exist in this instance's database; check the id and the instance= argument"
    )


def run_not_active(run_id: UUID, state: str, action: str) -> RunNotActive:
    return RunNotActive(f"run {run_id} is {state}; {_ACTIONS[action]}")


def run_exists(run_id: UUID) -> ValueError:
    """A new run whose id is taken (both stores say it the same way)."""
    return ValueError(f"run {run_id} already exists; pass a new run_id")


def lease_lost(run_id: UUID, token: int) -> LeaseLost:
    return LeaseLost(
        f"lease token {token} of run {run_id} is stale: another engine (or cancel/recovery) took the run; "
        "nothing was written"
    )


def seq_conflict(run_id: UUID, first_seq: int, last_seq: int) -> LeaseLost:
    return LeaseLost(
        f"run {run_id}: the wake's first seq is {first_seq} but the journal ends at seq {last_seq}; "
        "another commit got there first (replay the run); nothing was written"
    )


def check_wake(wake: Wake) -> None:
    """A wake's events must carry consecutive seqs (the engine assigns them)."""
    seqs = [e.seq for e in wake.events]
    if seqs and seqs != list(range(seqs[0], seqs[0] + len(seqs))):
        raise ValueError(f"run {wake.run_id}: the wake's event seqs {seqs} are not consecutive")
    ids = [t.id for t in wake.new_tasks]
    if len(set(ids)) != len(ids):
        raise ValueError(f"run {wake.run_id}: the wake creates the same task id twice")


def check_first_wake(wake: Wake) -> None:
    """The wake committed with a new run: its journal starts at seq 1."""
    check_wake(wake)
    if wake.events and wake.events[0].seq != 1:
        raise ValueError(
            f"a new run's journal starts at seq 1, but its first wake's events start at seq {wake.events[0].seq}"
        )
