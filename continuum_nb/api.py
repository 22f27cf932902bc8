"""The client API: start / signal / cancel / wait / resume / upgrade / runs / list_runs /
set_attributes / prune. Thin on purpose: each call resolves the instance, validates its input
(JSON only, nothing written on bad input) and delegates to the store or to this process's engine."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from . import chains
from .chains import record as _record
from .definitions.commands import signal as _workflow_signal
from .definitions.context import current
from .definitions.workflow import WorkflowDef
from .engine import contracts, lifecycle
from .engine.instance import Instance, resolve
from .engine.instance import configure as configure
from .errors import (
    DriftError,
    InvalidRunId,
    RunNotActive,
    WorkflowNotFound,
)
from .store.base import FINISHED_STATES, RUN_STATES, Event, NewRun, PruneReport, RunRecord
from .store.cursors import decode_cursor, encode_cursor, filter_fingerprint
from .store.payloads import MAX_KEY_LENGTH, check_attributes, check_json, check_name, check_size
from .telemetry import current_trace_context, emit

#: The most runs one ``cn.runs()`` call returns.
MAX_RUNS_LIMIT = 100_000

__all__ = [
    "EventInfo",
    "PruneReport",
    "Run",
    "RunInfo",
    "RunsPage",
    "cancel",
    "configure",
    "events",
    "get_run",
    "list_runs",
    "outdated_runs",
    "prune",
    "resume",
    "runs",
    "set_attributes",
    "signal",
    "start",
    "upgrade",
    "wait",
]


@dataclass(frozen=True)
class RunInfo:
    id: str
    workflow: str
    version_hash: str
    state: str
    input: Any = None
    result: Any = None
    error: Any = None
    trace_context: bytes | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    lease_owner: str | None = None
    lease_token: int | None = None
    lease_expires_at: datetime | None = None
    next_wakeup_at: datetime | None = None
    retention_until: datetime | None = None
    #: Search attributes (``cn.set_attributes``); {} when none.
    attributes: dict[str, Any] = field(default_factory=dict)
    parent_run_id: str | None = None  # a child's parent run (None: not a child)
    correlation_id: str | None = None  # a child's family: the root run's id

    @classmethod
    def from_record(cls, rec: RunRecord) -> RunInfo:
        values = {f.name: getattr(rec, f.name) for f in fields(cls)}
        values["id"] = str(rec.id)
        values.update({k: str(values[k]) for k in ("parent_run_id", "correlation_id") if values[k] is not None})
        values["attributes"] = dict(rec.attributes or {})
        return cls(**values)


@dataclass(frozen=True)
class RunsPage:
    """One page of ``cn.list_runs``: ``runs`` newest first, and ``next_cursor`` for the next page
    (None on the last one)."""

    runs: list[RunInfo]
    next_cursor: str | None

    def to_pandas(self) -> Any:
        """The page as a pandas DataFrame, one row per run (needs pandas)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                "RunsPage.to_pandas() needs pandas, which is not installed: pip install pandas "
                "(or pip install 'continuum-nb[analytics]')"
            ) from None
        return pd.DataFrame([asdict(r) for r in self.runs], columns=[f.name for f in fields(RunInfo)])


@dataclass(frozen=True)
class EventInfo:
    seq: int
    event_type: str
    payload: dict[str, Any]
    inserted_at: datetime | None

    @classmethod
    def from_event(cls, ev: Event) -> EventInfo:
        return cls(ev.seq, ev.event_type, ev.payload, ev.inserted_at)


class Run:
    """A handle on a run: ``run.id``, ``run.wait()``, ``run.signal(...)``, ``run.cancel()``.
    ``run.existing``: ``cn.start`` found this run by its idempotency key (it started nothing)."""

    def __init__(self, id: str, workflow: str, instance: str, existing: bool = False) -> None:
        self.id = id
        self.workflow = workflow
        self.instance = instance
        self.existing = existing

    def wait(self, timeout: float | None = None) -> Any:
        return wait(self.id, timeout, instance=self.instance)

    def signal(self, name: str, payload: Any = None, *, idempotency_key: str | None = None) -> str:
        return str(signal(self.id, name, payload, idempotency_key=idempotency_key, instance=self.instance))

    def cancel(self) -> None:
        cancel(self.id, instance=self.instance)

    def info(self) -> RunInfo:
        return get_run(self.id, instance=self.instance)

    @property
    def state(self) -> str:
        return self.info().state

    def __repr__(self) -> str:
        return f"<continuum Run {self.id} workflow={self.workflow!r} instance={self.instance!r}>"


def _run_uuid(run_id: Any) -> uuid.UUID:
    if isinstance(run_id, Run):
        run_id = run_id.id
    if isinstance(run_id, uuid.UUID):
        return run_id
    try:
        return uuid.UUID(str(run_id))
    except ValueError:
        raise InvalidRunId(f"{run_id!r:.80} is not a run id (run ids are UUIDs, e.g. run.id from cn.start)") from None


def _resolve_workflow(inst: Instance, wf: Any) -> tuple[WorkflowDef | None, str, str]:
    """(definition or None, name, version_hash) of what to start."""
    if isinstance(wf, WorkflowDef):
        return wf, wf.name, wf.version_hash
    if isinstance(wf, str):
        check_name(wf, "workflow name")
        local = inst.find_workflow(wf)
        if local is not None:
            return local, local.name, local.version_hash
        stored = inst.store.latest_version(wf)
        if stored is not None:
            return None, wf, stored[0]
        raise WorkflowNotFound(
            f"no workflow named {wf!r} is defined in this process or stored in instance {inst.name!r}; "
            "define it with @cn.workflow or a %%workflow cell first"
        )
    raise TypeError(f"cn.start takes a workflow (from @cn.workflow) or its name, not {wf!r}")


def start(
    wf: WorkflowDef | str,
    input: dict[str, Any] | None = None,
    *,
    instance: Instance | str | None = None,
    run_id: str | uuid.UUID | None = None,
    trace_context: bytes | None = None,
    idempotency_key: str | None = None,
    attributes: dict[str, Any] | None = None,
) -> Run:
    """Start a run of ``wf`` with ``input`` (a JSON object mapped to the workflow's keyword arguments).

    With ``idempotency_key``, a run of this workflow that already has the key is returned
    instead (``run.existing`` is True; nothing is started, whatever the input). ``attributes``:
    the run's search attributes (``cn.list_runs(attributes=...)``)."""
    if input is None:
        input = {}
    if not isinstance(input, dict):
        raise TypeError(
            f"the input of a run is a JSON object (a dict of the workflow's keyword arguments), not {type(input).__name__}"
        )
    check_json(input, "input of the run")
    if idempotency_key is not None:
        check_name(idempotency_key, "the idempotency key of cn.start", MAX_KEY_LENGTH)
    if attributes is not None:
        check_attributes(attributes, "attributes of the run")
    inst = resolve(instance)
    wfdef, name, version = _resolve_workflow(inst, wf)
    rid = uuid.uuid4() if run_id is None else _run_uuid(run_id)
    if trace_context is None:
        trace_context = current_trace_context()
    # The workflow's own retention, else the instance's default; applied when the run ends.
    retention: timedelta | None = wfdef.retention if wfdef is not None else None
    new = NewRun(
        id=rid, workflow=name, version_hash=version, input=input, started_at=inst.clock.now(),
        trace_context=trace_context, idempotency_key=idempotency_key, attributes=attributes or None,
        retention=retention if retention is not None else inst.config.retention,
    )
    got, existing = lifecycle.start_run(inst, wfdef, new)
    return Run(str(got), name, inst.name, existing=existing)


def signal(run_id: Any, name: Any = None, payload: Any = None, *, timeout: Any = None,
           idempotency_key: str | None = None, instance: Instance | str | None = None) -> Any:
    """Outside a workflow: send signal ``name`` with a JSON ``payload`` to a run (durable, even
    before the run awaits it); ``"delivered"``, or with ``idempotency_key`` ``"duplicate"`` when
    that key was delivered to this run and name before (nothing is sent again). Inside a
    workflow: ``await cn.signal(name, timeout=...)``."""
    if current() is not None:
        return _workflow_signal(run_id, timeout=timeout if timeout is not None else name)
    if not isinstance(name, str) or not name:
        raise TypeError("cn.signal(run_id, name, payload): name must be a non-empty str")
    check_name(name, "signal name")
    check_json(payload, f"payload of signal {name!r}")
    if idempotency_key is not None:
        check_name(idempotency_key, "the idempotency key of cn.signal", MAX_KEY_LENGTH)
    inst = resolve(instance)
    check_size(payload, f"payload of signal {name!r}", inst.config.max_payload_bytes)
    rid = _run_uuid(run_id)
    contracts.check_signal_contract(inst, rid, name, payload)  # refused before the mailbox
    # A run that continued as new: the signal goes to the current run of its chain.
    rid, sig_id, delivered = chains.send_signal(inst, rid, name, payload, idempotency_key, inst.clock.now())
    if not delivered:
        return "duplicate"
    emit(("continuum", "signal", "sent"), {}, {"run_id": str(rid), "name": name, "instance": inst.name, "signal_id": sig_id})
    inst.start_engine()
    return "delivered"


def cancel(run_id: Any, *, instance: Instance | str | None = None) -> None:
    """Cancel a run: state ``cancelled``, pending tasks discarded, timers cleared (a run that
    continued as new: the current run of its chain)."""
    inst = resolve(instance)
    rec = chains.cancel_run(inst, _run_uuid(run_id))
    emit(("continuum", "run", "cancelled"), {}, {"run_id": str(rec.id), "workflow": rec.workflow, "instance": inst.name})


def wait(run_id: Any, timeout: float | None = None, *, instance: Instance | str | None = None,
         follow_runs: bool = True) -> Any:
    """Block until the run finishes: its result, or ``RunFailed`` / ``RunCancelled`` /
    ``DriftError`` / ``TimeoutError``. Wakes on LISTEN/NOTIFY, not a poll. A run that continued
    as new (``cn.continue_as_new``) is followed to the end of its chain: the result is the last
    run's (``follow_runs=False``: ``{"continued": next_run_id}``, this run's own result)."""
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))):
        raise TypeError(f"timeout must be None or a number of seconds, not {timeout!r}")
    if timeout is not None and not 0 <= timeout < float("inf"):
        raise ValueError(f"timeout must be None or a finite number of seconds >= 0, not {timeout!r}")
    if not isinstance(follow_runs, bool):
        raise TypeError(f"follow_runs must be True or False, not {follow_runs!r:.80}")
    inst = resolve(instance)
    return chains.wait_run(inst, _run_uuid(run_id), timeout, follow_runs)


def resume(run_id: Any, *, instance: Instance | str | None = None) -> None:
    """Retry a ``drifted`` run (after its code was fixed): it replays from the top."""
    inst = resolve(instance)
    inst.store.resume_run(_run_uuid(run_id), inst.clock.now())
    inst.start_engine()


def upgrade(run_id: Any, *, instance: Instance | str | None = None, check_only: bool = False) -> bool:
    """Move a run to its workflow's newest version, only if its journal replays cleanly there.
    ``check_only=True`` answers whether it would, and changes nothing."""
    inst = resolve(instance)
    rid = _run_uuid(run_id)
    rec = _record(inst, rid)
    if rec.state in FINISHED_STATES:
        raise RunNotActive(f"run {rid} is {rec.state}; only running, suspended or drifted runs can be upgraded")
    wf = inst.find_workflow(rec.workflow)
    if wf is None:
        raise WorkflowNotFound(f"workflow {rec.workflow!r} is not defined in this process; define its new version first")
    if wf.version_hash == rec.version_hash:
        return True
    err = lifecycle.replay_check(inst, wf, rec)
    if check_only:
        return err is None
    if err is not None:
        raise DriftError(
            f"run {rid} does not replay on version {wf.short_version}: {err.get('message', '')}",
            run_id=str(rid), error=err,
        )
    lifecycle.upgrade_run(inst, rec, wf)
    return True


def _check_filter(state: Any, workflow: Any, limit: Any) -> None:
    if state is not None and state not in RUN_STATES:
        raise ValueError(f"unknown state {state!r:.80}; states are {', '.join(RUN_STATES)}")
    if workflow is not None:
        check_name(workflow, "workflow name")
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_RUNS_LIMIT:
        raise ValueError(f"limit must be an int between 1 and {MAX_RUNS_LIMIT}, not {limit!r:.80}")


def runs(state: str | None = None, workflow: str | None = None, limit: int = 100, *,
         instance: Instance | str | None = None) -> list[RunInfo]:
    """Runs, newest first, optionally filtered by state and workflow."""
    _check_filter(state, workflow, limit)
    inst = resolve(instance)
    return [RunInfo.from_record(r) for r in inst.store.list_runs(state=state, workflow=workflow, limit=limit)]


def _aware(value: Any, what: str) -> datetime | None:
    if value is not None and not isinstance(value, datetime):
        raise TypeError(f"{what} must be None or a datetime, not {type(value).__name__}")
    if value is not None and value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (e.g. datetime(..., tzinfo=timezone.utc)), not {value!r}")
    return value


def list_runs(state: str | None = None, workflow: str | None = None, started_after: datetime | None = None,
              started_before: datetime | None = None, attributes: dict[str, Any] | None = None,
              limit: int = 100, cursor: str | None = None, *, instance: Instance | str | None = None) -> RunsPage:
    """A page of runs, newest first: ``started_after <= started_at < started_before``, whose
    attributes contain ``attributes``. Pass ``page.next_cursor`` (with the same filter) for the
    next page; it is None on the last one."""
    _check_filter(state, workflow, limit)
    if attributes is not None:
        check_attributes(attributes, "the attributes filter")
    filters: dict[str, Any] = {
        "state": state, "workflow": workflow, "started_after": _aware(started_after, "started_after"),
        "started_before": _aware(started_before, "started_before"), "attributes": attributes or None,
    }
    fingerprint = filter_fingerprint(filters)
    before = None if cursor is None else decode_cursor(cursor, fingerprint)
    inst = resolve(instance)
    recs = inst.store.list_runs(**filters, limit=limit + 1, before=before)
    more = len(recs) > limit
    recs = recs[:limit]
    last = recs[-1] if more else None
    next_cursor = None if last is None or last.started_at is None else encode_cursor(fingerprint, last.started_at, last.id)
    return RunsPage([RunInfo.from_record(r) for r in recs], next_cursor)


def set_attributes(run_id: Any, attributes: dict[str, Any], *, instance: Instance | str | None = None) -> dict[str, Any]:
    """Merge ``attributes`` into the run's search attributes (any state; not journaled, and not
    visible to workflow code); the run's attributes after the merge."""
    if current() is not None:
        raise RuntimeError("cn.set_attributes is a client call, not for workflow code (it is not journaled); "
                           "call it from an activity or outside the workflow")
    check_attributes(attributes, "attributes")
    inst = resolve(instance)
    return inst.store.set_attributes(_run_uuid(run_id), attributes)


def prune(execute: bool = False, drop_keys: bool = False, batch_size: int = 1000, *,
          instance: Instance | str | None = None) -> PruneReport:
    """Report (default) or, with ``execute=True``, delete the runs that ended and whose
    retention_until has passed, with everything they own, ``batch_size`` runs per transaction.
    Ingress keys are kept (a keyed start still finds its pruned run) unless ``drop_keys``."""
    for what, flag in (("execute", execute), ("drop_keys", drop_keys)):
        if not isinstance(flag, bool):
            raise TypeError(f"{what} must be True or False, not {flag!r:.80}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or not 1 <= batch_size <= MAX_RUNS_LIMIT:
        raise ValueError(f"batch_size must be an int between 1 and {MAX_RUNS_LIMIT}, not {batch_size!r:.80}")
    inst = resolve(instance)
    return inst.store.prune(inst.clock.now(), execute=execute, drop_keys=drop_keys, batch_size=batch_size)


def get_run(run_id: Any, *, instance: Instance | str | None = None) -> RunInfo:
    inst = resolve(instance)
    return RunInfo.from_record(_record(inst, _run_uuid(run_id)))


def events(run_id: Any, *, instance: Instance | str | None = None) -> list[EventInfo]:
    """The run's journal, in seq order."""
    inst = resolve(instance)
    rid = _run_uuid(run_id)
    _record(inst, rid)
    return [EventInfo.from_event(e) for e in inst.store.load_journal(rid)]


def outdated_runs(workflow: str, *, instance: Instance | str | None = None) -> list[RunInfo]:
    """Active or drifted runs of ``workflow`` on a version other than the newest defined here."""
    inst = resolve(instance)
    wf = inst.find_workflow(workflow)
    if wf is None:
        raise WorkflowNotFound(f"workflow {workflow!r} is not defined in this process")
    return [RunInfo.from_record(r) for r in inst.store.runs_on_other_versions(workflow, wf.version_hash)]

