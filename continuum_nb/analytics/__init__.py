"""DuckDB analytics over the journal (needs the ``analytics`` extra).

>>> import continuum_nb as cn
>>> con = cn.analytics.connect()       # views: runs, events, activity_tasks, signals, children, chains
>>> con.sql("SELECT state, count(*) FROM runs GROUP BY state").df()
>>> df = cn.analytics.run_durations(con)              # p50 / p95 / p99 by workflow
>>> cn.analytics.plot_run_durations(df)

The views read PostgreSQL through DuckDB's postgres scanner, attached READ_ONLY; when the
extension cannot load they are filled with COPY and kept up to date incrementally (``refresh``;
see ``connect``). ``docs/analytics.md`` lists every view column and query.

This package is the public surface. Its modules: ``connection`` (``connect`` and its modes),
``scanner`` (the postgres scanner), ``fallback`` (the COPY load and its incremental refresh),
``shared`` (the cached connections), ``queries`` (the ready-made queries and ``sql``) and
``plots``. The SQL text lives in ``continuum_nb.store.analytics_sql`` (views and queries),
``analytics_pushdown_sql`` (what the scanner path runs in PostgreSQL), ``analytics_copy_sql``
(the fallback's loads) and ``analytics_links_sql`` (children, chains), with the rest of the SQL.
"""

from __future__ import annotations

from .connection import MODES, connect, mode_of
from .fallback import refresh
from .plots import (
    plot_activity_latency,
    plot_events_by_type_and_month,
    plot_run_durations,
    plot_signal_wait_times,
    plot_throughput_per_minute,
)
from .queries import (
    activity_latency,
    compensations,
    events_by_type_and_month,
    first_outcomes,
    patches,
    run_durations,
    signal_wait_times,
    sql,
    throughput_per_minute,
)
from .scanner import ScannerUnavailable
from .shared import close_shared

#: The views every analytics connection has that mirror a table.
VIEWS = ("runs", "events", "activity_tasks", "signals")
#: The views over ``runs`` that follow the links between runs (child workflows, continue-as-new).
LINK_VIEWS = ("children", "chains")
#: The ready-made queries, as docs/analytics.md lists them.
QUERIES = (
    events_by_type_and_month,
    run_durations,
    activity_latency,
    signal_wait_times,
    throughput_per_minute,
    compensations,
    patches,
    first_outcomes,
)

__all__ = [
    "LINK_VIEWS",
    "MODES",
    "QUERIES",
    "VIEWS",
    "ScannerUnavailable",
    "activity_latency",
    "close_shared",
    "compensations",
    "connect",
    "events_by_type_and_month",
    "first_outcomes",
    "mode_of",
    "patches",
    "plot_activity_latency",
    "plot_events_by_type_and_month",
    "plot_run_durations",
    "plot_signal_wait_times",
    "plot_throughput_per_minute",
    "refresh",
    "run_durations",
    "signal_wait_times",
    "sql",
    "throughput_per_minute",
]
