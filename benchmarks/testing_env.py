"""How fast cn.testing.environment() runs a workflow with a 30-day timer and 5 retries, one JSON
object per line on stdout.

    python benchmarks/testing_env.py [--repeat 5]

The test environment's virtual clock skips ahead over timers and retry backoffs by itself; the
tests check *that* the run completes with the clock 30 days on; how fast lives here (the target:
under a second per run, environment set-up included).

- ``environment``: entering and leaving ``cn.testing.environment()`` alone.
- ``month_and_retries``: a fresh environment, a run that waits 30 days and then calls an
  activity that fails 4 times (5 attempts, exponential backoff from 1 minute), to its result.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import continuum_nb as cn  # noqa: E402

_calls: dict[str, int] = {}


@cn.activity(name="bench.flaky", retry=cn.Retry(max_attempts=5, base=cn.minutes(1)))
def flaky(key: str) -> int:
    _calls[key] = _calls.get(key, 0) + 1
    if _calls[key] < 5:
        raise ConnectionError("down")
    return _calls[key]


@cn.workflow(name="bench_month")
async def bench_month(key: str) -> int:
    await cn.timer(cn.days(30))
    return await flaky(key)


def _once_environment() -> None:
    with cn.testing.environment():
        pass


def _once_month() -> None:
    with cn.testing.environment() as env:
        assert env.run(bench_month, {"key": uuid.uuid4().hex}, timeout=60) == 5


def _time(name: str, call: Any, repeat: int) -> dict[str, Any]:
    call()  # warm-up (imports, first definitions)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return {"benchmark": name, "repeat": repeat, "median_s": round(statistics.median(times), 4),
            "max_s": round(max(times), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for name, call in (("environment", _once_environment), ("month_and_retries", _once_month)):
        print(json.dumps(_time(name, call, args.repeat)), flush=True)


if __name__ == "__main__":
    main()
