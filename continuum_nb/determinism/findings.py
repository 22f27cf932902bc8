"""What the determinism scan reports: a ``Finding`` per problem, and the warning category each
kind of finding is reported with."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BareExceptWarning",
    "DeterminismWarning",
    "Finding",
    "NondeterministicCallWarning",
    "UntrustedCallWarning",
]


# Each public class keeps ``continuum_nb.determinism`` as its module, the path users import it
# from (and the one in reprs, pickles and warning filters from before the package was split).
_PUBLIC_MODULE = "continuum_nb.determinism"


class DeterminismWarning(UserWarning):
    """Base class of the determinism scan's warnings."""

    __module__ = _PUBLIC_MODULE


class NondeterministicCallWarning(DeterminismWarning):
    """A call in workflow code that gives a different answer on replay (clock, randomness, I/O)."""

    __module__ = _PUBLIC_MODULE


class UntrustedCallWarning(DeterminismWarning):
    """A call into a helper module that is neither stdlib-trusted, marked pure, nor trusted."""

    __module__ = _PUBLIC_MODULE


class BareExceptWarning(DeterminismWarning):
    """``except:`` / ``except BaseException`` in workflow code: it can swallow cancellation."""

    __module__ = _PUBLIC_MODULE


@dataclass(frozen=True)
class Finding:
    __module__ = _PUBLIC_MODULE

    #: "nondeterministic" | "untrusted" | "bare_except" | "output" (print/logging: use cn.log)
    kind: str
    message: str
    #: The file, or for a cell whatever the caller passed (e.g. "<cell workflow order>").
    filename: str
    #: 1-based line in ``filename`` (relative to the cell for a cell).
    lineno: int
    #: The call ("time.time"), the module for "untrusted", "except" for "bare_except".
    target: str
    #: What to use instead, when there is one replacement.
    replacement: str | None
