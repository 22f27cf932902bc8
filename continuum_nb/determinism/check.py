"""``check_workflow``: find a workflow's source, scan it, and report the findings as warnings (or,
for untrusted calls with ``severity="error"``, as a ``DeterminismError``)."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Collection, Sequence
from typing import Any

from ..errors import ConfigurationError, DeterminismError
from .findings import BareExceptWarning, Finding, NondeterministicCallWarning, UntrustedCallWarning
from .scan import Scan
from .source import find_function, from_inspect, parse_source

__all__ = ["check_workflow"]


def check_workflow(
    fn: Callable[..., Any],
    *,
    source: str | None = None,
    filename: str | None = None,
    trusted_modules: Sequence[str] = (),
    severity: str = "warn",
    first_line: int = 1,
    signals: Collection[str] | None = None,
) -> list[Finding]:
    """Scan a workflow's body; warn about (and return) every finding.

    ``source`` is the text the function was defined in (a ``%%workflow`` cell); the function is
    found in it by name, and ``filename``/``first_line`` say where that text lives (line numbers
    of findings are ``first_line``-based; for a cell, pass 1 to get cell-relative lines). When
    ``source`` is None the source is read with ``inspect``, which knows the file and line.

    With ``severity="error"``, calls into untrusted modules raise ``DeterminismError`` (after
    the other findings have been warned about) instead of warning.

    ``signals`` (the workflow's signal contract) refuses, with ``ConfigurationError``, an
    ``await cn.signal("name")`` of a literal name the contract does not declare.
    """
    if severity not in ("warn", "error"):
        raise ConfigurationError(f"severity must be 'warn' or 'error', not {severity!r}")
    target = inspect.unwrap(fn) if callable(fn) else fn
    name = getattr(target, "__name__", None)
    if not isinstance(name, str):
        raise TypeError(f"check_workflow() needs a function, not {type(fn).__name__}")
    located = None
    if source is not None:
        parsed = parse_source(source, filename or "<workflow source>", first_line)
        if parsed is not None:
            node = find_function(parsed[0], name)
            if node is not None:
                located = (node, parsed[1])
    if located is None:
        located = from_inspect(target, filename)
    if located is None:
        return []  # no source to scan (e.g. defined with exec and no text given)
    node, src = located
    scan = Scan(target, trusted_modules)
    scan.function(node, target, src)
    findings = sorted(scan.findings, key=lambda f: (f.filename != src.filename, f.filename, f.lineno))
    category: dict[str, type[Warning]] = {
        "nondeterministic": NondeterministicCallWarning,
        "untrusted": UntrustedCallWarning,
        "bare_except": BareExceptWarning,
        "output": NondeterministicCallWarning,
    }
    for finding in findings:
        if severity == "error" and finding.kind == "untrusted":
            continue
        warnings.warn_explicit(finding.message, category[finding.kind], finding.filename, finding.lineno)
    undeclared = [(n, f, line) for n, f, line in scan.awaited_signals if signals is not None and n not in signals]
    if undeclared:
        sig, file, line = undeclared[0]
        declared = ", ".join(repr(n) for n in signals or ()) or "none"
        raise ConfigurationError(
            f"workflow {name!r} awaits signal {sig!r} ({file}:{line}), which its signals= contract does "
            f"not declare (it declares {declared}); add {sig!r} to signals= or fix the name"
        )
    untrusted = [f for f in findings if f.kind == "untrusted"]
    if severity == "error" and untrusted:
        listed = ", ".join(f"{f.target} ({f.filename}:{f.lineno})" for f in untrusted)
        raise DeterminismError(
            f"workflow {name!r} calls untrusted helper modules: {listed}; mark them pure "
            "(@cn.pure on the function, or __continuum_pure__ = True in the module), list them in "
            "trusted_modules, or move the calls into an @cn.activity"
        )
    return findings
