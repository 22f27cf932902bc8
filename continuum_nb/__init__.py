"""continuum_nb: durable workflows for Python and Jupyter, journaled in PostgreSQL.

The public API is re-exported here; names resolve lazily so ``import continuum_nb`` stays cheap
and needs only the core dependencies (the notebook, analytics and otel extras are imported on
first use).
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

__version__ = "0.2.0"

# ``cn.replay`` is a function, and ``continuum_nb.replay`` a subpackage: the subpackage is loaded
# first, so that loading it later cannot rebind the name, which then names the function (whose
# module, timetravel, is imported on first call: it pulls in the API and the engine).
from . import replay as _replay_package  # noqa: E402, F401

# Imported eagerly: the submodule ``continuum_nb.workflow`` would otherwise shadow the
# ``workflow`` decorator as a package attribute once anything imported it.
from .workflow import workflow as workflow  # noqa: E402


def replay(run_id: Any, upto: int | None = None, **kwargs: Any) -> Any:
    """The run's state after event ``upto``, replayed offline (``continuum_nb.timetravel.replay``)."""
    from .timetravel import replay as _replay

    return _replay(run_id, upto, **kwargs)


# A library never configures logging; the engine thread must never print into a notebook cell.
logging.getLogger("continuum_nb").addHandler(logging.NullHandler())

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # errors
    "ActivityFailed": "continuum_nb.errors",
    "ChildFailed": "continuum_nb.errors",
    "ConfigurationError": "continuum_nb.errors",
    "ContinuumError": "continuum_nb.errors",
    "DatabaseUnavailable": "continuum_nb.errors",
    "DeterminismError": "continuum_nb.errors",
    "DriftError": "continuum_nb.errors",
    "InstanceNotRegistered": "continuum_nb.errors",
    "MigrationError": "continuum_nb.errors",
    "NonRetryableError": "continuum_nb.errors",
    "PartitionError": "continuum_nb.errors",
    "RunCancelled": "continuum_nb.errors",
    "RunFailed": "continuum_nb.errors",
    "RunNotActive": "continuum_nb.errors",
    "RunNotFound": "continuum_nb.errors",
    "SignalTimeout": "continuum_nb.errors",
    "WorkflowNotFound": "continuum_nb.errors",
    # definitions and awaitables
    "workflow": "continuum_nb.workflow",
    "activity": "continuum_nb.workflow",
    "pure": "continuum_nb.workflow",
    "Retry": "continuum_nb.workflow",
    "timer": "continuum_nb.workflow",
    "gather": "continuum_nb.workflow",
    "first": "continuum_nb.workflow",
    "child": "continuum_nb.workflow",
    "start_child": "continuum_nb.workflow",
    "saga": "continuum_nb.workflow",
    "patched": "continuum_nb.workflow",
    "deprecate_patch": "continuum_nb.workflow",
    "log": "continuum_nb.workflow",
    "continue_as_new": "continuum_nb.workflow",
    # deterministic primitives
    "now": "continuum_nb.primitives",
    "today": "continuum_nb.primitives",
    "uuid4": "continuum_nb.primitives",
    "random": "continuum_nb.primitives",
    "side_effect": "continuum_nb.primitives",
    "seconds": "continuum_nb.primitives",
    "minutes": "continuum_nb.primitives",
    "hours": "continuum_nb.primitives",
    "days": "continuum_nb.primitives",
    # client API
    "Run": "continuum_nb.api",
    "start": "continuum_nb.api",
    "start_many": "continuum_nb.bulk",
    "signal": "continuum_nb.api",
    "cancel": "continuum_nb.api",
    "wait": "continuum_nb.api",
    "resume": "continuum_nb.api",
    "upgrade": "continuum_nb.api",
    "get_run": "continuum_nb.api",
    "events": "continuum_nb.api",
    "runs": "continuum_nb.api",
    "list_runs": "continuum_nb.api",
    "RunsPage": "continuum_nb.api",
    "set_attributes": "continuum_nb.api",
    "prune": "continuum_nb.api",
    "configure": "continuum_nb.api",
    # the same calls for asyncio (never blocking the event loop)
    "start_async": "continuum_nb.aio",
    "wait_async": "continuum_nb.aio",
    "signal_async": "continuum_nb.aio",
    "cancel_async": "continuum_nb.aio",
    "Instance": "continuum_nb.engine.instance",
    "instance": "continuum_nb.engine.instance",
    "observer": "continuum_nb.observer",
    "health": "continuum_nb.health",
    # recorded histories
    "export_history": "continuum_nb.history",
    "fork": "continuum_nb.forks",
    "replay": "continuum_nb.timetravel",
    "UntrustedCallWarning": "continuum_nb.determinism",
    "NondeterministicCallWarning": "continuum_nb.determinism",
}

# Inside a Jupyter kernel, cn.wait is the same wait with a live progress line (drawn on the
# waiting thread; continuum_nb.notebook.progress). Only the name's source changes: nothing is imported here.
if "ipykernel" in sys.modules:
    _EXPORTS["wait"] = "continuum_nb.notebook.progress"

# submodules reachable as attributes: cn.telemetry, cn.analytics, cn.otel, cn.partitions, cn.testing
_SUBMODULES = ("analytics", "otel", "partitions", "telemetry", "testing")

__all__ = sorted([*_EXPORTS, *_SUBMODULES])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f"continuum_nb.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'continuum_nb' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext continuum_nb``."""
    from .notebook.magics import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext continuum_nb``."""
    from .notebook.magics import unload_ipython_extension as _unload

    _unload(ipython)
