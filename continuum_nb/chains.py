"""Continue-as-new chains from the client's side: ``cn.wait``, ``cn.signal`` and ``cn.cancel``
given the id of any run of a chain act on its current run (as Temporal's calls by workflow id
act on its latest run).

- ``wait_run``: a run that continued as new (``completed`` with ``{"continued": next_id}`` and a
  successor linked to it) is waited past, to the chain's final outcome; ``follow_runs=False``
  returns ``{"continued": next_id}`` instead (Temporal's ``result(follow_runs=False)``).
- ``send_signal`` / ``cancel_run``: tried on the given run first (a run that never continued costs
  nothing more); when it has ended, on the current run of its chain, if that is another one.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any, cast

from .errors import DriftError, RunCancelled, RunFailed, RunNotActive, RunNotFound
from .store.base import RunRecord
from .store.chains import ChainStore

if TYPE_CHECKING:
    from .engine.instance import Instance

__all__ = ["cancel_run", "continued_to", "record", "send_signal", "wait_run"]


def _chains(inst: Instance) -> ChainStore:
    return cast(ChainStore, inst.store)


def continued_to(inst: Instance, rid: uuid.UUID, result: Any) -> uuid.UUID | None:
    """The run that continues ``rid``, if ``rid`` completed by continuing as new (``result`` is
    ``{"continued": id}`` and the store links that run to it; a workflow that merely returned such
    a dict has no successor)."""
    if not (isinstance(result, dict) and len(result) == 1 and isinstance(result.get("continued"), str)):
        return None
    to = _chains(inst).chain_links(rid).continued_to_run_id
    return to if to is not None and str(to) == result["continued"] else None


def _current(inst: Instance, rid: uuid.UUID, refused: RunNotActive) -> uuid.UUID:
    """The chain's current run, when ``rid`` has ended and continued; else ``refused`` is raised."""
    nxt = _chains(inst).chain_current(rid)
    if nxt == rid:
        raise refused
    return nxt


def send_signal(inst: Instance, rid: uuid.UUID, name: str, payload: Any, key: str | None,
                now: Any) -> tuple[uuid.UUID, int, bool]:
    """(the run it went to, the signal id, whether it was delivered now)."""
    while True:
        try:
            if key is None:
                return rid, inst.store.send_signal(rid, name, payload, now), True
            sig_id, delivered = inst.store.send_signal_once(rid, name, key, payload, now)
            return rid, sig_id, delivered
        except RunNotActive as exc:
            rid = _current(inst, rid, exc)


def cancel_run(inst: Instance, rid: uuid.UUID) -> RunRecord:
    while True:
        try:
            return inst.store.cancel_run(rid, inst.clock.now())
        except RunNotActive as exc:
            rid = _current(inst, rid, exc)


def record(inst: Instance, rid: uuid.UUID) -> RunRecord:
    """The run's row, or ``RunNotFound`` naming the id and the instance."""
    rec = inst.store.get_run(rid)
    if rec is None:
        raise RunNotFound(f"run {rid} does not exist in instance {inst.name!r}; check the id and instance=")
    return rec


def wait_run(inst: Instance, rid: uuid.UUID, timeout: float | None, follow_runs: bool = True) -> Any:
    """``cn.wait`` (arguments checked): the outcome of the run, or of the last run of its chain."""
    inst.start_engine()
    watcher = inst.done_watcher()
    key = str(rid)
    ev = watcher.register(key)
    deadline = None if timeout is None else time.monotonic() + timeout
    engine = inst.engine
    # A run this process's engine holds reports its end directly, with the outcome (registered
    # above, so it cannot be missed; a run it lets go of is reported without one): no read while
    # it holds the run, even when the NOTIFY of its end arrives first. Any other run is read
    # first, then woken by NOTIFY.
    try:
        while True:
            outcome = getattr(ev, "outcome", None)
            if outcome is None and engine is not None:
                outcome = engine.recent_outcome(rid)  # it ended here before we registered
            if outcome is not None:
                rec = RunRecord(id=rid, workflow="", version_hash="", state=outcome[0], input=None,
                                result=outcome[1], error=outcome[2])
            elif engine is not None and engine.holds(rid):
                rec = RunRecord(id=rid, workflow="", version_hash="", state="running", input=None)
            else:
                rec = record(inst, rid)
            if rec.state == "completed":
                nxt = continued_to(inst, rid, rec.result) if follow_runs else None
                if nxt is None:
                    return rec.result
                # Continued as new: wait on its successor (registered before its state is read).
                watcher.unregister(key, ev)
                rid, key = nxt, str(nxt)
                ev = watcher.register(key)
                continue
            if rec.state == "failed":
                err = rec.error or {}
                raise RunFailed(
                    f"run {rid} failed: {err.get('type', 'error')}: {err.get('message', '')}", run_id=key, error=err
                )
            if rec.state == "cancelled":
                raise RunCancelled(f"run {rid} was cancelled", run_id=key)
            if rec.state == "drifted":
                err = rec.error or {}
                raise DriftError(
                    f"run {rid} drifted: {err.get('message', '')}; fix the workflow code, then cn.resume({key!r})",
                    run_id=key, error=err,
                )
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"run {rid} is still {rec.state} after {timeout}s")
            # The periodic re-check only covers a lost LISTEN connection; NOTIFY wakes us.
            ev.wait(5.0 if remaining is None else min(remaining, 5.0))
            ev.clear()
    finally:
        watcher.unregister(key, ev)
