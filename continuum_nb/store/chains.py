"""Continue-as-new chains in the store: what a continuing wake writes and how runs of one chain
are linked (migration 20261207050000: ``continued_from_run_id``, ``correlation_id``,
``parent_run_id``).

A wake that ends its run with ``cn.continue_as_new`` is a ``ContinuingWake``: the store commits
it as any wake (the fence, the journal with its ``run_continued_as_new``, the run ``completed``
with ``{"continued": next_run_id}``) and, in the same transaction, inserts the successor (same
workflow; the run's version, or with ``version="newest"`` the newest stored one; its attributes,
retention, trace context and parent; ``continued_from_run_id`` = the run; ``correlation_id`` =
the run's, else the run's id, written on the run too), moves the run's undelivered signals, its
signal keys and its children that have not ended to it, and makes it runnable by any engine (NOTIFY
CHANNEL_WAKE). Both stores implement it in ``commit_wake`` (and ``create_run(first_wake=...)``),
plus ``chain_links`` and ``chain_current``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from .base import Wake

__all__ = ["ACTIVE_CHILD_STATES", "ChainLinks", "ChainStore", "Continuation", "ContinuingWake"]

#: A child whose parent continues as new moves to the successor while it is in one of these
#: states (it has not ended).
ACTIVE_CHILD_STATES = ("running", "suspended", "drifted")


@dataclass(frozen=True)
class Continuation:
    next_run_id: UUID
    input: dict[str, Any]
    version: str = "same"             # "same" | "newest"


@dataclass
class ContinuingWake(Wake):
    """A wake whose run continues as new (its ``state`` is ``completed``)."""

    continuation: Continuation | None = field(default=None)


@dataclass(frozen=True)
class ChainLinks:
    correlation_id: UUID | None = None
    continued_from_run_id: UUID | None = None
    #: The run that continues this one (None: it did not continue as new).
    continued_to_run_id: UUID | None = None
    parent_run_id: UUID | None = None


class ChainStore(Protocol):
    def chain_links(self, run_id: UUID) -> ChainLinks:
        """The run's links (all None for an unknown run)."""
        ...

    def chain_current(self, run_id: UUID) -> UUID:
        """The last run of the chain from ``run_id`` on: follows ``continued_from_run_id`` forward
        (``run_id`` itself when nothing continued it)."""
        ...
