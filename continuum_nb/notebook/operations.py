"""``%continuum partitions ...`` and ``%continuum analytics ...``: thin adapters from the magic's
arguments to ``continuum_nb.partitions`` and ``continuum_nb.analytics``, with tables to show."""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import ConfigurationError
from . import display as views
from .parser import ANALYTICS_QUERIES

__all__ = ["ANALYTICS_QUERIES", "analytics", "partitions"]


def _database_url(instance: str | None) -> str:
    from ..engine.instance import instance as get_instance

    return str(get_instance(instance).conninfo)


def partitions(
    action: str, instance: str | None, *, month: str | None = None, execute: bool = False
) -> Any:
    from .. import partitions as parts

    url = _database_url(instance)
    if action == "list":
        rows = [
            {
                "name": p.name,
                "start": p.start,
                "end": p.end,
                "rows": p.rows,
                "size_bytes": p.size_bytes,
            }
            for p in parts.list_partitions(database_url=url)
        ]
        return views.table(rows, ("name", "start", "end", "rows", "size_bytes"), index="name")
    if action == "create":
        result = parts.create(month, database_url=url)
        print(
            f"partition {result.name} for {result.month}: {'created' if result.created else 'already exists'}"
        )
        return None
    if action == "rollup":
        print(parts.rollup_summary(parts.rollup(database_url=url)))
        return None
    report = parts.drop_old(execute=execute, database_url=url)
    if not report.retention_in_use:
        print("no run has retention_until set: nothing is dropped (retention is opt-in per run)")
        return None
    verb = "dropped" if execute else "would drop"
    print(f"{verb}: {', '.join(report.dropped if execute else report.droppable) or 'nothing'}"
          + ("" if execute else " (dry run; add --execute to drop)"))  # fmt: skip
    rows = [{"name": c.partition.name, "rows": c.partition.rows, "droppable": c.check.droppable,
             "dropped": c.dropped, "reason": c.reason} for c in report.candidates]  # fmt: skip
    return views.table(rows, ("name", "rows", "droppable", "dropped", "reason"), index="name")


def analytics(query: str, instance: str | None, *, plot: bool = False) -> Any:
    """Run one of ANALYTICS_QUERIES (a function of continuum_nb.analytics) and optionally plot it."""
    if query not in ANALYTICS_QUERIES:
        raise ConfigurationError(
            f"unknown analytics query {query!r}; choose one of: {', '.join(ANALYTICS_QUERIES)}"
        )
    module = importlib.import_module("continuum_nb.analytics")
    frame = getattr(module, query)(instance=instance)
    if plot:
        getattr(module, f"plot_{query}")(frame)
    return frame
