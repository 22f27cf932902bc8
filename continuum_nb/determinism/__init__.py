"""The determinism scan: an AST pass over a workflow's body at definition time.

A workflow re-executes from the top on every wake, so everything it does outside the journal
must give the same answer every time. The scan looks for three things (docs/determinism.md):

- calls that are never deterministic (the clock, randomness, I/O, threads, asyncio) — a
  ``NondeterministicCallWarning`` naming the replacement (``cn.now()``, ``cn.timer(...)``, ...);
- calls into helper modules that are not trusted (stdlib-trusted, marked pure, or listed in
  ``trusted_modules``) — one ``UntrustedCallWarning`` per module, or ``DeterminismError`` with
  ``severity="error"``;
- a bare ``except:`` / ``except BaseException`` that does not re-raise — it can swallow the
  run's cancellation.

Names are resolved the way Python would at run time: imports inside the function, then its
closure, then the imports of the cell/module source, then ``fn.__globals__``, then builtins.
A name the scan cannot resolve (a local variable, an attribute of a call's result) is never
reported: the scan prefers silence to a false alarm. Helper functions defined next to the
workflow (same module, same cell) are scanned as workflow code, since they run inside it.
"""

from __future__ import annotations

# The package's modules, by idea: rules (what is never deterministic, what is trusted), source
# (reading and parsing the workflow's source), resolve (from a name in that source to a dotted
# name and object), scan (the walk that produces findings), findings (Finding and the warning
# classes) and check (check_workflow). This module is the public surface they had as one file.
from .check import check_workflow
from .findings import (
    BareExceptWarning,
    DeterminismWarning,
    Finding,
    NondeterministicCallWarning,
    UntrustedCallWarning,
)
from .rules import ACTIVITY as ACTIVITY  # not in __all__, but importable from here as before
from .rules import STDLIB_TRUSTED, is_trusted_module

__all__ = [
    "STDLIB_TRUSTED",
    "BareExceptWarning",
    "DeterminismWarning",
    "Finding",
    "NondeterministicCallWarning",
    "UntrustedCallWarning",
    "check_workflow",
    "is_trusted_module",
]
