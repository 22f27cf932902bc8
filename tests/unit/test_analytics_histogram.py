"""The latency percentiles read from the monthly rollups' histograms (analytics.rollups): within
ALPHA (relative) of the exact ``quantile_cont``, over latencies of very different sizes, zero and
negative ones included."""

from __future__ import annotations

import numpy as np
import pytest

from continuum_nb.analytics.rollups import _quantile, _representative
from continuum_nb.store.analytics_rollups import ALPHA, bucket_sql

duckdb = pytest.importorskip("duckdb")


def _histogram(values: np.ndarray) -> list[tuple[float, float, int]]:
    """The buckets as the rollups keep them (DuckDB computes the bucket with the rollups' SQL)."""
    con = duckdb.connect()
    con.execute("CREATE TABLE v (x DOUBLE)")
    con.executemany("INSERT INTO v VALUES (?)", [(float(x),) for x in values])
    rows = con.execute(
        f"SELECT {bucket_sql('x')} AS b, count(*), min(x), max(x) FROM v GROUP BY b ORDER BY min(x)"  # noqa: S608
    ).fetchall()
    return [(_representative(b, lo, hi), lo, n) for b, n, lo, hi in rows]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_percentiles_from_the_histogram_are_within_alpha(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = np.concatenate([
        rng.lognormal(mean=0.0, sigma=3.0, size=3000),      # 1 ms .. hours
        np.zeros(50),
        -rng.lognormal(mean=-3.0, sigma=1.0, size=100),     # clock skew: a few negative latencies
        np.full(200, 2.5),                                  # many equal ones (a bucket of one value)
    ])
    hist = _histogram(values)
    assert len(hist) < len(np.unique(values))  # buckets really merge values
    for q in (0.0, 0.01, 0.05, 0.5, 0.9, 0.95, 0.99, 1.0):
        exact = float(np.percentile(values, q * 100))  # linear: quantile_cont
        got = _quantile(hist, len(values), q)
        assert abs(got - exact) <= ALPHA * abs(exact) + 1e-12, (q, got, exact)


def test_a_bucket_of_one_value_gives_it_exactly() -> None:
    values = np.array([0.25, 0.25, 7.0, 7.0, 7.0, 1000.0])
    hist = _histogram(values)
    for q in (0.0, 0.5, 1.0):
        assert _quantile(hist, len(values), q) == float(np.percentile(values, q * 100))
