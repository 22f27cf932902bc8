"""A wake that ends its run with ``cn.continue_as_new``: what it commits (a ``ContinuingWake``:
the store inserts the successor in the same transaction, store/chains.py) and what it announces
once committed (``[continuum, run, continued_as_new]``, and ``[continuum, run, started]`` for the
successor, which any engine that knows the workflow claims)."""

from __future__ import annotations

import uuid
from typing import Any, cast

from ..replay.outcomes import Continued
from ..store.base import Event, Store, Wake
from ..store.chains import ChainStore, Continuation, ContinuingWake
from ..telemetry import emit

__all__ = ["announce_continued", "continuing_wake"]


def continuing_wake(wake: Wake, outcome: Continued) -> ContinuingWake:
    """``wake`` (built as a completed run's) with the successor it must insert."""
    cont = Continuation(uuid.UUID(outcome.next_run_id), outcome.input, outcome.version)
    return ContinuingWake(**wake.__dict__, continuation=cont)


def announce_continued(store: Store, ev: Event, meta: dict[str, Any]) -> None:
    """(after the commit, telemetry attached) The run continued as new: its chain's telemetry."""
    chain_links = getattr(store, "chain_links", None)  # (both stores; a test's stand-in may not)
    links = cast(ChainStore, store).chain_links(uuid.UUID(meta["run_id"])) if chain_links else None
    to_id = ev.payload["next_run_id"]
    correlation = None if links is None or links.correlation_id is None else str(links.correlation_id)
    emit(("continuum", "run", "continued_as_new"), {},
         {**meta, "from_run_id": meta["run_id"], "to_run_id": to_id, "correlation_id": correlation,
          "version": ev.payload.get("version")})
    emit(("continuum", "run", "started"), {"duration": 0},
         {"run_id": to_id, "workflow": meta.get("workflow"), "instance": meta.get("instance"), "lease_token": None,
          "continued_from_run_id": meta["run_id"]})
