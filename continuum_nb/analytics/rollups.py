"""The whole-journal ready-made queries over the monthly rollups (``store/analytics_rollups``).

On a scanner connection, ``events_by_type_and_month``, ``throughput_per_minute`` and
``activity_latency`` without a window first count, once, every month that is over and has no
valid rollup yet, then send one PostgreSQL statement that reads the kept counts of the rolled-up
months and counts the others live (the current month: a few days of events instead of the whole
journal). That statement also re-checks, in its own snapshot, that every rollup it reads is
still valid; when one was invalidated in between (a prune committed), the query plans again.
``activity_latency`` merges the kept latency histograms with the live pairs (bucketed alike):
its percentiles are within ``ALPHA`` of the exact ones, everything else is exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING

import psycopg

from ..store import analytics_pushdown_sql as pq
from ..store import analytics_rollups as store

if TYPE_CHECKING:
    import duckdb
    import pandas

__all__ = ["latency_frame", "rollup_frame"]

#: Plans before giving up on the rollups for this call (each retry follows a change that
#: committed between planning and reading: rare).
_ATTEMPTS = 3


def rollup_frame(
    con: duckdb.DuckDBPyConnection,
    schema: str,
    conninfo: str | None,
    rolled: Callable[[str, list[date]], tuple[str, str]],
    shape: Callable[[pandas.DataFrame], pandas.DataFrame] | None = None,
) -> pandas.DataFrame | None:
    """The query's answer from the rollups and a live count of the rest; None when the database
    has no rollup tables or the conninfo is unknown (the caller then counts everything live).
    ``shape``: for activity_latency, turns DuckDB's merge into the answer (latency rollups)."""
    if conninfo is None:
        return None
    for _ in range(_ATTEMPTS):
        try:
            months = store.fill(conninfo, schema, latency=shape is not None)
        except psycopg.Error:
            return None
        if not months:
            return None
        pg, finish = rolled(schema, months)
        con.execute(pq.rolled_rows(pg))
        try:
            row = con.execute(pq.ROLLED_VALID).fetchone()
            if row is None or row[0] != len(months):
                continue
            if shape is not None:
                _pair_orphans(con, conninfo, schema)
            frame = con.execute(finish).to_arrow_table().to_pandas()
            return shape(frame) if shape is not None else frame
        finally:
            con.execute(pq.ROLLED_DROP)
    return None


def _pair_orphans(con: duckdb.DuckDBPyConnection, conninfo: str, schema: str) -> None:
    """Pair the live outcomes whose activity_scheduled was journaled in a rolled-up month (few:
    those of activities that spanned a month's end) by primary key, as ``live`` rows of ROLLED."""
    orphans = con.execute(pq.ROLLED_ORPHANS).fetchall()
    if not orphans:
        return
    with psycopg.connect(conninfo, connect_timeout=10) as conn:
        found = {(r[0], r[1]): (r[2], r[3]) for r in store.scheduled_by_key(conn, schema, [(o[0], o[1]) for o in orphans])}
    rows = []
    for run_id, seq, outcome, attempts, at in orphans:
        if (run_id, seq) in found:  # an outcome without its activity_scheduled pairs with nothing
            activity, sched_at = found[(run_id, seq)]
            latency = (at - sched_at).total_seconds()
            rows.append((activity, outcome, attempts, latency, latency))
    if rows:
        con.executemany(pq.ROLLED_ADD_LIVE, rows)


def _representative(bucket: int, lo: float, hi: float) -> float:
    """The value standing for every latency of ``bucket`` (within ALPHA of each), kept inside
    the bucket's smallest and largest latency (so a bucket of one value gives it exactly)."""
    g = store.GAMMA
    if bucket == store.ZERO_BUCKET:
        value = 0.0
    elif bucket <= store.NEGATIVE // 2:
        value = -2 * g ** (store.NEGATIVE - bucket) / (g + 1)
    else:
        value = 2 * g ** bucket / (g + 1)
    return min(max(value, lo), hi)


def _quantile(buckets: list[tuple[float, float, int]], total: int, q: float) -> float:
    """quantile_cont over the histogram ``buckets`` ((representative, smallest, count) in value
    order) of ``total`` latencies: the order statistics around rank q (total - 1), interpolated."""
    rank = q * (total - 1)
    lo_rank, hi_rank = math.floor(rank), math.ceil(rank)

    def at(r: int) -> float:
        seen = 0
        for value, _, n in buckets:
            seen += n
            if r < seen:
                return value
        return buckets[-1][0]

    low, high = at(lo_rank), at(hi_rank)
    return low + (rank - lo_rank) * (high - low) if hi_rank != lo_rank else low


def latency_frame(merged: pandas.DataFrame) -> pandas.DataFrame:
    """activity_latency's answer from DuckDB's merge (analytics_pushdown_sql.activity_latency_rolled)."""
    import pandas as pd

    def key(a: object) -> tuple[bool, str]:
        return (a is None or a != a, "" if a is None or a != a else str(a))  # NULL activities last

    scheduled = {r.activity: int(r.n) for r in merged[merged["part"] == "s"].itertuples()}
    outcomes: dict[object, dict[str, tuple[int, int, int]]] = {}
    for r in merged[merged["part"] == "o"].itertuples():
        outcomes.setdefault(r.activity, {})[r.outcome] = (int(r.n), int(r.attempts), int(r.retried))
    hists: dict[object, list[tuple[float, float, int]]] = {}
    top: dict[object, float] = {}
    for r in merged[merged["part"] == "b"].sort_values("min_s").itertuples():
        hists.setdefault(r.activity, []).append((_representative(int(r.bucket), r.min_s, r.max_s), r.min_s, int(r.n)))
        top[r.activity] = max(top.get(r.activity, r.max_s), r.max_s)
    rows = []
    for activity in sorted(scheduled, key=key):
        done = outcomes.get(activity, {})
        completed = done.get("activity_completed", (0, 0, 0))
        failed = done.get("activity_failed", (0, 0, 0))
        matched = sum(v[0] for v in done.values())
        hist = hists.get(activity, [])
        rows.append({
            "activity": None if key(activity)[0] else activity,
            "count": scheduled[activity],  # an activity has at most one outcome: pending + matched
            "completed": completed[0],
            "failed": failed[0],
            "pending": scheduled[activity] - matched,
            "p50_s": _quantile(hist, matched, 0.5) if matched else float("nan"),
            "p95_s": _quantile(hist, matched, 0.95) if matched else float("nan"),
            "max_s": top.get(activity, float("nan")),
            "retry_rate": sum(v[2] for v in done.values()) / matched if matched else float("nan"),
            "mean_attempts": sum(v[1] for v in done.values()) / matched if matched else float("nan"),
        })
    columns = ["activity", "count", "completed", "failed", "pending", "p50_s", "p95_s", "max_s", "retry_rate",
               "mean_attempts"]
    out = pd.DataFrame(rows, columns=columns)
    return out.astype({c: "int64" for c in ("count", "completed", "failed", "pending")}).astype(
        {c: "float64" for c in ("p50_s", "p95_s", "max_s", "retry_rate", "mean_attempts")})
