"""The fault campaign's two sizes: SHORT (the default; what ``pytest`` and ``.ci/run`` run) and
LONG (by hand: ``CONTINUUM_FAULTS=long pytest tests/faults``, or ``pytest tests/faults
--faults-long``). Every count that the two forms differ in is here.
"""

from __future__ import annotations

import os

__all__ = ["LONG", "MODE", "examples", "pick"]


def _mode() -> str:
    raw = os.environ.get("CONTINUUM_FAULTS", "short").strip().lower() or "short"
    if raw not in ("short", "long"):
        raise RuntimeError(f"CONTINUUM_FAULTS={raw!r}: use short (the default) or long")
    return raw


MODE = _mode()
LONG = MODE == "long"


def pick(short: int, long: int) -> int:
    """``short`` in the short form, ``long`` in the long one."""
    return long if LONG else short


def examples(short: int, long: int | None = None) -> int:
    """Hypothesis examples per property: ``short`` in the short form, ``long`` (default 20 times
    as many) in the long one."""
    return pick(short, long if long is not None else 20 * short)


# --- the campaign (tests/faults/test_campaign.py) -----------------------------------------------
#: Runs started over the campaign (a mix of workflows, see test_campaign.py).
CAMPAIGN_RUNS = pick(150, 1000)
#: kill -9 of a worker (each is replaced by a new one).
CAMPAIGN_KILLS = pick(2, 20)
#: SIGSTOP of a worker for longer than its lease TTL, then SIGCONT (it goes on working).
CAMPAIGN_STOPS = pick(1, 5)
#: PostgreSQL restarts in the middle of the load.
CAMPAIGN_RESTARTS = 1
#: Workers alive at once.
CAMPAIGN_WORKERS = 3
#: Successive deaths of whoever holds one run (test_repeated_kills.py).
HOLDER_KILLS = pick(3, 10)
