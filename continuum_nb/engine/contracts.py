"""The signal contract of the run a signal is sent to: looked up in this instance's registries
by the run's workflow and version (the version it runs, else the newest one defined here), so a
process that has the workflow defined refuses a bad signal before it reaches the mailbox."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from ..definitions.signals import check_signal
from .instance import Instance

__all__ = ["check_signal_contract"]


def check_signal_contract(inst: Instance, run_id: UUID, name: str, payload: Any) -> None:
    """Raise ``ValueError``/``TypeError`` for a signal the run's workflow does not accept. No
    read when no workflow defined in this process declares a contract."""
    if not any(getattr(wf, "signals", None) is not None for reg in inst.registries for wf in reg.all()):
        return
    rec = inst.store.get_run(run_id)
    if rec is None:
        return  # the store's own error (run not found) follows
    wf = None
    for reg in inst.registries:
        wf = reg.get(rec.workflow, rec.version_hash) or wf
    wf = wf or inst.find_workflow(rec.workflow)
    if wf is not None and wf.signals is not None:
        check_signal(wf.signals, rec.workflow, name, payload)
