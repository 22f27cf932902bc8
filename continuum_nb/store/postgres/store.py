"""``PostgresStore``: the store contract on PostgreSQL through psycopg 3 and a connection pool.

Performance shape (see ``benchmarks/store_commit.py``):
- statements are constants in ``sql`` and prepared per connection (``prepare_threshold=0``);
- a wake is one call of the ``continuum_commit_wake`` function in autocommit mode (the fence,
  the seq check, every kind of row, the run row and NOTIFY; migration 20260701000003): one
  statement, one round trip and one durable commit. A server error anywhere (a stale token
  included) rolls the whole call back; every parameter is built before anything is sent
  (``wake``);
- a new run with its first wake is that same one call (its ``p_new_run`` argument inserts the run);
- a wake that continues as new is the one exception: that call and the successor's statement in
  one explicit transaction (``chains``);
- single-statement calls run in autocommit mode: one round trip, no BEGIN/COMMIT.

Failures (mapped in ``pool``): a stale lease token raises ``LeaseLost``; an event month
without a partition raises ``PartitionError`` naming the command that creates it; a connection
failure or pool timeout raises ``DatabaseUnavailable`` and broken connections are dropped from
the pool, so it recovers once PostgreSQL is back. Reads are retried once on a fresh connection;
writes never are (a commit whose acknowledgement was lost must not be applied twice; if it is
retried anyway, the seq check refuses it).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import errors as pgerrors

from ..base import (
    Event,
    NewRun,
    NewTimer,
    RunRecord,
    SignalRecord,
    Snapshot,
    TaskOutcome,
    TaskRecord,
    Wake,
)
from ..checks import (
    check_first_wake,
    lease_lost,
    run_not_active,
    run_not_found,
)
from ..forks import ForkLinks, NewFork
from ..payloads import dumps
from . import sql as q
from .bulk import PgBulk
from .chains import PgChains
from .commits import PgCommits
from .forks import fork_params
from .ingress import PgIngress, duplicate_run, run_params
from .listen import PgListener
from .pool import Conn, PgPool
from .prune import PgPrune
from .wake import jsonb_or_null as _j
from .wake import new_run_value, wake_values

__all__ = ["PostgresStore"]

_N_RUN_COLS = 20


def _run(row: Sequence[Any]) -> RunRecord:
    return RunRecord(*row[:_N_RUN_COLS])


def _task(row: Sequence[Any]) -> TaskRecord:
    return TaskRecord(*row)


class PostgresStore(PgCommits, PgIngress, PgPrune, PgBulk, PgChains):
    """See ``store.base.Store`` for each method's contract (keyed starts and signals, attributes:
    ``ingress``; pruning: ``prune``)."""

    def __init__(
        self,
        conninfo: str,
        *,
        pool_size: int = 4,
        instance: str = "default",
        pool_timeout: float = 10.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self.instance = instance
        self._db = PgPool(conninfo, size=pool_size, instance=instance, timeout=pool_timeout,
                          connect_timeout=connect_timeout)
        self._connection = self._db.connection
        self._read = self._db.read
        self._listeners: weakref.WeakSet[PgListener] = weakref.WeakSet()

    # --- runs ------------------------------------------------------------------------------------
    def create_run(
        self, run: NewRun, *, owner: str | None = None, lease_ttl: float = 30.0, first_wake: Wake | None = None
    ) -> int | None:
        if run.idempotency_key is not None:
            raise ValueError("create_run: a run with an idempotency_key is created with create_keyed_run")
        if first_wake is not None:
            if owner is None:
                raise ValueError("create_run: first_wake needs an owner (the engine that commits it)")
            check_first_wake(first_wake)
            return self._commit(first_wake, run.id, wake_values(first_wake, run.id, new_run_value(run, owner),
                                                                lease_ttl))[1]
        params = run_params(run, owner, lease_ttl)
        try:
            with self._connection() as conn:
                if owner is None:
                    conn.execute(q.INSERT_RUN_UNLEASED, params)
                    return None
                row = conn.execute(q.INSERT_RUN_LEASED, params).fetchone()
                assert row is not None
                return int(row[0])
        except pgerrors.UniqueViolation as exc:
            raise duplicate_run(run.id, exc) from None

    def get_run(self, run_id: UUID) -> RunRecord | None:
        def fn(conn: Conn) -> RunRecord | None:
            row = conn.execute(q.GET_RUN, {"id": run_id}).fetchone()
            return None if row is None else _run(row)

        return self._read(fn)

    def list_runs(
        self, *, state: str | None = None, workflow: str | None = None, limit: int = 100,
        before: tuple[datetime, UUID] | None = None, started_after: datetime | None = None,
        started_before: datetime | None = None, attributes: dict[str, Any] | None = None,
    ) -> list[RunRecord]:
        params: dict[str, Any] = {
            "state": state, "workflow": workflow, "started_after": started_after,
            "started_before": started_before, "attributes": dumps(attributes) if attributes else None,
            "before": before, "limit": max(limit, 0),
        }
        sql = q.list_runs_sql(*(k for k, v in params.items() if v is not None and k != "limit"))
        if before is not None:
            params["before_at"], params["before_id"] = before
        # Planned with the values (not prepared): whether the GIN index or the newest-first walk
        # of an index is cheaper depends on how common the filtered value is (operations.md).
        return self._read(lambda conn: [_run(r) for r in conn.execute(sql, params, prepare=False)])

    def load_journal(self, run_id: UUID, after_seq: int = 0) -> list[Event]:
        params = {"run": run_id, "after": after_seq}
        return self._read(lambda conn: [Event(*r) for r in conn.execute(q.LOAD_JOURNAL, params)])

    def load_journals(self, leases: Mapping[UUID, int], max_events: int, max_bytes: int) -> dict[UUID, list[Event]]:
        if not leases:
            return {}
        params = {"ids": list(leases), "tokens": list(leases.values()), "max": max_events, "max_bytes": max_bytes}
        out: dict[UUID, list[Event]] = {}
        for rid, *event in self._read(lambda conn: conn.execute(q.LOAD_JOURNALS, params).fetchall()):
            journal = out.setdefault(rid, [])
            if event[0] is not None:  # a run without events: its row, no event
                journal.append(Event(*event))
        return out

    def mark_drifted(self, run_id: UUID, lease_token: int, error: dict[str, Any]) -> None:
        with self._connection() as conn:
            row = conn.execute(q.MARK_DRIFTED, {"run": run_id, "token": lease_token, "error": dumps(error)}).fetchone()
        if row is None:
            raise lease_lost(run_id, lease_token)

    def _state_error(self, conn: Conn, run_id: UUID, action: str) -> Exception:
        row = conn.execute(q.RUN_STATE, {"id": run_id}).fetchone()
        return run_not_found(run_id) if row is None else run_not_active(run_id, row[0], action)

    def cancel_run(self, run_id: UUID, now: datetime) -> RunRecord:
        with self._connection() as conn:
            for attempt in (1, 2, 3):
                try:
                    with conn.transaction():
                        row = conn.execute(q.CANCEL_RUN, {"run": run_id, "now": now}).fetchone()
                        if row is not None:  # its children that follow it, and its parent woken
                            conn.execute(q.CANCEL_TREE, {"run": run_id, "now": now})
                    break
                except pgerrors.DeadlockDetected:
                    # A child's final commit locks the child, then its parent; this locks the
                    # parent, then its children: PostgreSQL aborted one of the two. Again.
                    if attempt == 3:
                        raise
            if row is None:
                raise self._state_error(conn, run_id, "cancel")
        return _run(row)

    def run_depth(self, run_id: UUID) -> int:
        with self._connection() as conn:
            row = conn.execute(q.RUN_DEPTH, {"run": run_id}).fetchone()
        return 0 if row is None or row[0] is None else int(row[0])

    def resume_run(self, run_id: UUID, now: datetime) -> RunRecord:
        with self._connection() as conn:
            row = conn.execute(q.RESUME_RUN, {"run": run_id, "now": now}).fetchone()
            if row is None:
                raise self._state_error(conn, run_id, "resume")
        return _run(row)

    # --- claiming and leases ------------------------------------------------------------------
    def claim_runs(
        self, owner: str, workflows: Sequence[str], now: datetime, lease_ttl: float, limit: int
    ) -> list[RunRecord]:
        if not workflows or limit <= 0:
            return []
        params = {"owner": owner, "workflows": list(workflows), "now": now, "ttl": lease_ttl, "limit": limit}
        with self._connection() as conn:
            runs = [_run(r) for r in conn.execute(q.CLAIM_RUNS, params)]
        runs.sort(key=lambda r: (r.next_wakeup_at is not None, r.next_wakeup_at or now))
        return runs

    def claim_run(self, run_id: UUID, owner: str, lease_ttl: float) -> RunRecord | None:
        with self._connection() as conn:
            row = conn.execute(q.CLAIM_RUN, {"run": run_id, "owner": owner, "ttl": lease_ttl}).fetchone()
        return None if row is None else _run(row)

    def renew_leases(
        self, owner: str, runs: dict[UUID, int], tasks: dict[UUID, int], lease_ttl: float
    ) -> tuple[set[UUID], set[UUID]]:
        if not runs and not tasks:
            return set(), set()
        with self._connection() as conn:
            with conn.pipeline():
                rc = tc = None
                if runs:
                    rc = conn.execute(q.RENEW_RUNS, {
                        "owner": owner, "ids": list(runs), "tokens": list(runs.values()), "ttl": lease_ttl,
                    })
                if tasks:
                    tc = conn.execute(q.RENEW_TASKS, {
                        "ids": list(tasks), "tokens": list(tasks.values()), "ttl": lease_ttl,
                    })
            kept_runs = {r[0] for r in rc.fetchall()} if rc is not None else set()
            kept_tasks = {r[0] for r in tc.fetchall()} if tc is not None else set()
        return set(runs) - kept_runs, set(tasks) - kept_tasks

    def overdue_runs(self, run_ids: Sequence[UUID], cutoff: datetime) -> list[UUID]:
        if not run_ids:
            return []
        params = {"ids": list(run_ids), "cutoff": cutoff}
        return self._read(lambda conn: [r[0] for r in conn.execute(q.OVERDUE_RUNS, params)])

    def release_run(self, run_id: UUID, lease_token: int) -> None:
        with self._connection() as conn:
            conn.execute(q.RELEASE_RUN, {"run": run_id, "token": lease_token})

    def next_wakeup(self, workflows: Sequence[str]) -> datetime | None:
        if not workflows:
            return None

        def fn(conn: Conn) -> datetime | None:
            row = conn.execute(q.NEXT_WAKEUP, {"workflows": list(workflows)}).fetchone()
            return None if row is None else row[0]

        return self._read(fn)

    def recover(self) -> dict[str, int]:
        with self._connection() as conn:
            runs = conn.execute(q.RECOVER_RUNS).rowcount
            row = conn.execute(q.RECOVER_TASKS).fetchone()
        return {"runs": max(runs, 0), "tasks": int(row[0]) if row else 0}

    # --- activity tasks ---------------------------------------------------------------------------
    def claim_tasks(
        self, owner: str, activities: Sequence[str], now: datetime, lease_ttl: float, limit: int
    ) -> list[TaskRecord]:
        if not activities or limit <= 0:
            return []
        params = {"owner": owner, "activities": list(activities), "now": now, "ttl": lease_ttl, "limit": limit}
        with self._connection() as conn:
            tasks = [_task(r) for r in conn.execute(q.CLAIM_TASKS, params)]
        tasks.sort(key=lambda t: (t.available_at or now, t.seq))
        return tasks

    def task_outcomes(self, run_id: UUID, seqs: Sequence[int]) -> dict[int, TaskRecord]:
        if not seqs:
            return {}
        params = {"run": run_id, "seqs": list(seqs)}
        return self._read(lambda conn: {r[2]: _task(r) for r in conn.execute(q.TASK_OUTCOMES, params)})

    def open_tasks(self, run_id: UUID) -> list[TaskRecord]:
        """Tasks of this run still waiting for an outcome (available or leased): what
        ``cn.testing`` reads to know whether a retry backoff is all a run waits on."""
        return self._read(lambda conn: [_task(r) for r in conn.execute(q.OPEN_TASKS, {"run": run_id})])

    def fork_run(self, fork: NewFork) -> None:
        params = fork_params(fork)
        try:
            with self._connection() as conn:
                conn.execute(q.INSERT_FORK, params)
        except pgerrors.UniqueViolation as exc:
            raise duplicate_run(fork.run.id, exc) from None

    def fork_links(self, run_id: UUID) -> ForkLinks:
        def fn(conn: Conn) -> ForkLinks:
            row = conn.execute(q.FORK_ORIGIN, {"id": run_id}).fetchone()
            forks = [(r[0], int(r[1])) for r in conn.execute(q.FORKS_OF, {"id": run_id})]
            return ForkLinks(row[0] if row else None, int(row[1]) if row and row[1] is not None else None, forks)

        return self._read(fn)

    def expire_run_lease(self, run_id: UUID) -> None:
        """Tests only (``cn.testing``): the run's lease lapses now."""
        with self._connection() as conn:
            conn.execute(q.EXPIRE_RUN_LEASE, {"run": run_id})

    def complete_task(self, task: TaskRecord, outcome: TaskOutcome, now: datetime) -> bool:
        if outcome.state not in ("completed", "failed"):
            raise ValueError(f"a task outcome is 'completed' or 'failed', not {outcome.state!r}")
        idem = outcome.idempotency if outcome.state == "completed" else None
        params = {
            "run": task.run_id,
            "id": task.id,
            "token": task.lease_token,
            "state": outcome.state,
            "result": _j(outcome.result),
            "result_nn": dumps(outcome.result),
            "error": _j(outcome.error),
            "module": idem[0] if idem else None,
            "key": idem[1] if idem else None,
            "rseq": outcome.seq or task.seq,
            "now": now,
        }
        with self._connection() as conn:
            return conn.execute(q.COMPLETE_TASK, params).fetchone() is not None

    def retry_task(self, task: TaskRecord, error: dict[str, Any], available_at: datetime) -> bool:
        params = {
            "run": task.run_id,
            "id": task.id,
            "token": task.lease_token,
            "available": available_at,
            "error": dumps(error),
        }
        with self._connection() as conn:
            return conn.execute(q.RETRY_TASK, params).fetchone() is not None

    def get_activity_result(self, activity_module: str, key: str) -> tuple[bool, Any]:
        def fn(conn: Conn) -> tuple[bool, Any]:
            row = conn.execute(q.GET_ACTIVITY_RESULT, {"module": activity_module, "key": key}).fetchone()
            return (False, None) if row is None else (True, row[0])

        return self._read(fn)

    # --- signals ------------------------------------------------------------------------------------
    def send_signal(self, run_id: UUID, name: str, payload: Any, now: datetime) -> int:
        params = {"run": run_id, "run_text": str(run_id), "name": name, "payload": dumps(payload), "now": now}
        with self._connection() as conn:
            row = conn.execute(q.SEND_SIGNAL, params).fetchone()
            if row is None:
                raise self._state_error(conn, run_id, "signal")
        return int(row[0])

    def pending_signals(self, run_id: UUID, names: Sequence[str] | None = None) -> list[SignalRecord]:
        params: dict[str, Any] = {"run": run_id}
        sql = q.PENDING_SIGNALS
        if names is not None:
            sql, params["names"] = q.PENDING_SIGNALS_NAMED, list(names)
        return self._read(lambda conn: [SignalRecord(*r) for r in conn.execute(sql, params)])

    # --- timers ---------------------------------------------------------------------------------------
    def pending_timers(self, run_id: UUID) -> list[NewTimer]:
        return self._read(lambda conn: [
            NewTimer(r[0], int(r[1]) if r[1] is not None else 0, r[2])
            for r in conn.execute(q.PENDING_TIMERS, {"run": run_id})
        ])

    # --- snapshots ------------------------------------------------------------------------------------
    def load_snapshot(self, run_id: UUID) -> Snapshot | None:
        def fn(conn: Conn) -> Snapshot | None:
            row = conn.execute(q.LOAD_SNAPSHOT, {"run": run_id}).fetchone()
            return None if row is None else Snapshot(*row)

        return self._read(fn)

    def save_snapshot(self, snapshot: Snapshot, lease_token: int) -> bool:
        payload = dumps(snapshot.payload)
        params = {
            "run": snapshot.run_id,
            "seq": snapshot.through_seq,
            "version": snapshot.version_hash,
            "payload": payload,
            "size": snapshot.size_bytes or len(payload.encode()),
            "token": lease_token,
        }
        with self._connection() as conn:
            return conn.execute(q.SAVE_SNAPSHOT, params).fetchone() is not None

    # --- workflow versions --------------------------------------------------------------------------
    def save_version(self, name: str, version_hash: str, source: str, origin: str) -> None:
        if origin not in ("cell", "module"):
            raise ValueError(f"a workflow version's origin is 'cell' or 'module', not {origin!r}")
        params = {"name": name, "version": version_hash, "source": source, "origin": origin}
        with self._connection() as conn:
            conn.execute(q.SAVE_VERSION, params)

    def get_version(self, name: str, version_hash: str) -> tuple[str, str] | None:
        def fn(conn: Conn) -> tuple[str, str] | None:
            row = conn.execute(q.GET_VERSION, {"name": name, "version": version_hash}).fetchone()
            return None if row is None else (row[0], row[1])

        return self._read(fn)

    def latest_version(self, name: str) -> tuple[str, str, str] | None:
        def fn(conn: Conn) -> tuple[str, str, str] | None:
            row = conn.execute(q.LATEST_VERSION, {"name": name}).fetchone()
            return None if row is None else (row[0], row[1], row[2])

        return self._read(fn)

    def stored_workflow_names(self) -> list[str]:
        return self._read(lambda conn: [r[0] for r in conn.execute(q.STORED_NAMES)])

    def runs_on_other_versions(self, name: str, version_hash: str) -> list[RunRecord]:
        params = {"name": name, "version": version_hash}
        return self._read(lambda conn: [_run(r) for r in conn.execute(q.RUNS_ON_OTHER_VERSIONS, params)])

    # --- notifications --------------------------------------------------------------------------------
    def listen(self, channels: Sequence[str]) -> PgListener:
        listener = PgListener(self._db.conninfo, channels)
        self._listeners.add(listener)
        return listener

    def close(self) -> None:
        for listener in list(self._listeners):
            listener.close()
        self._db.close()


