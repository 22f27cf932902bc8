"""What a workflow is, below any engine: workflow and activity definitions, the commands their
awaitables yield, the run context of the thread driving one, and the registries of versions.

Nothing here imports the engine, the API or the notebook layer; the engine and the replayer
import from here. The public decorators (``cn.workflow``, ``cn.activity``) live in
``continuum_nb.workflow``, which registers definitions into instances.
"""

from __future__ import annotations

from .activity import ACTIVITIES, ActivityDef, Retry
from .commands import Command, gather, signal, timer
from .registry import GLOBAL, Registry
from .workflow import WorkflowDef, source_hash

__all__ = [
    "ACTIVITIES",
    "GLOBAL",
    "ActivityDef",
    "Command",
    "Registry",
    "Retry",
    "WorkflowDef",
    "gather",
    "signal",
    "source_hash",
    "timer",
]
