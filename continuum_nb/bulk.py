"""``cn.start_many``: start thousands of runs of one workflow in a few round trips.

``cn.start`` drives a run's first wake in the calling process when it can (lowest latency for one
run). Starting a backfill of 10,000 runs that way would cost 10,000 first wakes before the call
returns; ``start_many`` instead inserts every run as a runnable row, in ONE transaction of a few
multi-row statements (``Store.create_runs``), and the engines of the instance claim them in
batches. With ``run_ids`` given, a call is idempotent: ids that exist already are skipped and
their handles say ``existing``, so a call retried after a lost connection starts each run once.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from .api import Run, _resolve_workflow, _run_uuid
from .definitions.workflow import WorkflowDef
from .engine.instance import Instance, resolve
from .engine.runner import emit_run_started
from .store.base import NewRun
from .store.payloads import check_attributes, check_json
from .telemetry import current_trace_context

__all__ = ["MAX_START_MANY", "read_inputs", "start_many"]

#: Runs one call may start (one transaction; split larger backfills into several calls).
MAX_START_MANY = 1_000_000


def start_many(
    wf: WorkflowDef | str,
    inputs: Iterable[dict[str, Any]],
    *,
    run_ids: Sequence[str | uuid.UUID] | None = None,
    attributes: dict[str, Any] | None = None,
    trace_context: bytes | None = None,
    instance: Instance | str | None = None,
) -> list[Run]:
    """Start one run of ``wf`` per input (each a JSON object of the workflow's keyword
    arguments), all in one transaction; returns their handles in the order of ``inputs``.

    ``run_ids`` (as many as inputs, all different): the runs' ids; a run whose id exists already
    is not started again (its handle's ``existing`` is True), so a retried call is idempotent.
    ``attributes``: search attributes given to every run. Nothing is started when any input is
    refused. The runs are picked up by whichever engines of the instance have the workflow."""
    batch = inputs if isinstance(inputs, list) else list(inputs)
    if len(batch) > MAX_START_MANY:
        raise ValueError(f"cn.start_many: {len(batch)} inputs is more than {MAX_START_MANY:,} in one call; "
                         "split them into several calls")
    for i, inp in enumerate(batch):
        if not isinstance(inp, dict):
            raise TypeError(f"cn.start_many: input {i} is a {type(inp).__name__}; each input is a JSON object "
                            "(a dict of the workflow's keyword arguments)")
        check_json(inp, f"input {i} of cn.start_many")
    ids = _ids(run_ids, len(batch))
    if attributes is not None:
        check_attributes(attributes, "attributes of the runs")
    inst = resolve(instance)
    wfdef, name, version = _resolve_workflow(inst, wf)
    if wfdef is not None:
        inst.save_version(wfdef)
    if trace_context is None:
        trace_context = current_trace_context()
    retention: timedelta | None = wfdef.retention if wfdef is not None else None
    if retention is None:
        retention = inst.config.retention
    now = inst.clock.now()
    runs = [NewRun(id=rid, workflow=name, version_hash=version, input=inp, started_at=now,
                   trace_context=trace_context, attributes=attributes or None, retention=retention)
            for rid, inp in zip(ids, batch, strict=True)]
    t0 = time.perf_counter_ns()
    created = set(inst.store.create_runs(runs))
    for run in runs:
        if run.id in created:
            emit_run_started(run, inst.name, None, t0)
    if created:
        inst.start_engine()  # if this process can run them, it claims its share
    return [Run(str(run.id), name, inst.name, existing=run.id not in created) for run in runs]


def _ids(run_ids: Sequence[str | uuid.UUID] | None, count: int) -> list[uuid.UUID]:
    if run_ids is None:
        return [uuid.uuid4() for _ in range(count)]
    if isinstance(run_ids, (str, bytes)):
        raise TypeError("cn.start_many: run_ids is a list of run ids, one per input, not a single id")
    ids = [_run_uuid(r) for r in run_ids]
    if len(ids) != count:
        raise ValueError(f"cn.start_many: {len(ids)} run_ids for {count} inputs; give one run id per input")
    seen: set[uuid.UUID] = set()
    for rid in ids:
        if rid in seen:
            raise ValueError(f"cn.start_many: run id {rid} is given twice; each run needs its own id")
        seen.add(rid)
    return ids


def read_inputs(path: str | Path) -> list[dict[str, Any]]:
    """The inputs of ``%continuum start WORKFLOW --many FILE``: a JSON array of objects, or JSON
    Lines (one object per line; blank lines skipped). Errors name the file and the line."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read the inputs file {str(file)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ValueError(f"the inputs file {str(file)!r} is not UTF-8 text; write it as JSON") from None
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise ValueError(f"the inputs file {str(file)!r} is not a JSON array: {exc}") from None
        numbered = [(f"item {i}", item) for i, item in enumerate(items)]
    else:
        numbered = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                numbered.append((f"line {n}", json.loads(line)))
            except (json.JSONDecodeError, RecursionError) as exc:
                raise ValueError(f"{file}: line {n} is not JSON ({exc}); write one JSON object per line") from None
    for where, item in numbered:
        if not isinstance(item, dict):
            raise ValueError(f"{file}: {where} is a {type(item).__name__}, not a JSON object of the "
                             "workflow's arguments")
    return [item for _, item in numbered]
