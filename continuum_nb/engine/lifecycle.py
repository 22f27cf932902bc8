"""Starting and upgrading runs: what ``cn.start`` and ``cn.upgrade`` ask of an instance.

There is one way a run comes to exist (``start_run``): with its first wake, by this process's
engine when it has the workflow's code, else inserted for whichever engine claims it; both emit
``[continuum, run, started]`` through ``runner.emit_run_started``. ``upgrade_run`` moves a run to
another version of its workflow only after a read-only replay of its journal there.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from ..definitions.workflow import WorkflowDef
from ..errors import RunNotActive
from ..replay.live import Offline
from ..replay.outcomes import Drifted
from ..replay.replayer import Replayer
from ..store.base import NewRun, RunRecord, Wake
from ..store.payloads import check_size
from ..telemetry import emit
from .runner import KeyTaken, emit_run_started

if TYPE_CHECKING:
    from .instance import Instance

__all__ = ["replay_check", "start_run", "upgrade_run"]


def start_run(inst: Instance, wf: WorkflowDef | None, run: NewRun) -> tuple[uuid.UUID, bool]:
    """Insert ``run``: with its first wake on this process's engine when ``wf`` (its code) is
    known here and an engine runs, else as a runnable row that any engine with the code claims.

    Returns (the run's id, whether it existed already). With ``run.idempotency_key`` the key is
    inserted with the run, in one statement, before any workflow code runs: when the key names
    a run already, nothing is written or run and that run's id is returned. An input larger
    than ``max_payload_bytes`` is refused (``ValueError``) before anything is written."""
    check_size(run.input, f"input of a run of {run.workflow!r}", inst.config.max_payload_bytes)
    t0 = time.perf_counter_ns()
    if wf is not None:
        inst.save_version(wf)
        engine = inst.start_engine()
        if engine is not None:
            try:
                engine.start_run(wf, run)
            except KeyTaken as taken:
                return taken.run_id, taken.existing
            return run.id, False
    if run.idempotency_key is not None:
        got = inst.store.create_keyed_run(run)
        if got.existing:
            return got.run_id, True
    else:
        inst.store.create_run(run)
    emit_run_started(run, inst.name, None, t0)
    inst.start_engine()  # if this process can run it, it will claim it
    return run.id, False


def replay_check(inst: Instance, wf: WorkflowDef, rec: RunRecord) -> dict[str, Any] | None:
    """Replay the run's journal on ``wf`` without writing anything: None when it replays
    cleanly, else the drift (both sides of the mismatch)."""
    journal = inst.store.load_journal(rec.id)
    inp = rec.input if isinstance(rec.input, dict) else {}
    rep = Replayer(str(rec.id), rec.workflow, lambda: wf.fn(**inp), journal)
    outcome = rep.advance(Offline(inst.clock.now()))
    return outcome.error if isinstance(outcome, Drifted) else None


def upgrade_run(inst: Instance, rec: RunRecord, wf: WorkflowDef) -> None:
    """Move ``rec`` to version ``wf`` (already replay-checked): taken from this engine's memory,
    claimed under a lease of its own, committed with the new version and released; a drifted
    run is resumed."""
    rid = rec.id
    engine = inst.engine
    if engine is not None and rid in engine.held:
        engine.release_now(rid)
    owner = f"upgrade:{uuid.uuid4().hex[:8]}"
    claimed = inst.store.claim_run(rid, owner, inst.config.lease_ttl)
    if claimed is None or claimed.lease_token is None:
        raise RunNotActive(f"run {rid} is being executed by {rec.lease_owner}; retry when it is suspended")
    state = "suspended" if claimed.state == "drifted" else claimed.state
    inst.store.commit_wake(Wake(
        run_id=rid, lease_token=claimed.lease_token, now=inst.clock.now(), state=state,
        next_wakeup_at=claimed.next_wakeup_at, version_hash=wf.version_hash, release=True,
    ))
    inst.save_version(wf)
    if claimed.state == "drifted":
        inst.store.resume_run(rid, inst.clock.now())
    emit(("continuum", "run", "upgraded"), {}, {"run_id": str(rid), "workflow": rec.workflow, "instance": inst.name,
                                                "version_hash": wf.version_hash})
    inst.start_engine()
