"""How values read in a table people look at: short run ids, times to the second in one stated
time zone, human durations and sizes, empty cells empty (never ``None``, ``NaT`` or ``nan``).

Code keeps the full values (``cn.runs()``, a table's ``.frame``); only what is displayed is cut.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

__all__ = ["display_zone", "duration", "human_size", "short_id", "when", "zone_label"]


def short_id(run_id: Any) -> str:
    """The first 8 hex digits of a run id (enough to find it: ``%continuum show`` and the observer's
    search accept a prefix)."""
    return "" if run_id is None else str(run_id)[:8]


def display_zone() -> dt.tzinfo:
    """The time zone of this process (the user's, in a local notebook; UTC in most containers)."""
    zone = dt.datetime.now().astimezone().tzinfo
    return zone if zone is not None else dt.timezone.utc


def zone_label(zone: dt.tzinfo) -> str:
    """``UTC``, or the zone's name with its offset: ``CET (UTC+01:00)``."""
    now = dt.datetime.now(zone)
    offset = now.utcoffset() or dt.timedelta(0)
    if offset == dt.timedelta(0):
        return "UTC"
    total = int(offset.total_seconds()) // 60
    sign = "+" if total >= 0 else "-"
    hours, minutes = divmod(abs(total), 60)
    return f"{now.tzname() or 'local'} (UTC{sign}{hours:02d}:{minutes:02d})"


def when(value: Any, zone: dt.tzinfo) -> str:
    """A timestamp to the second in ``zone`` (``2026-12-07 05:31:07``); empty for nothing."""
    if not isinstance(value, dt.datetime):
        return "" if value is None or value != value else str(value)   # value != value: NaN/NaT
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    """``0.4 ms``, ``3 ms``, ``4.2 s``, ``12.5 min``, ``3.0 h``, ``2.0 d``; empty for nothing.
    The one duration format of the tables, the wait progress line and the observer."""
    if seconds is None:
        return ""
    seconds = max(seconds, 0.0)
    ms = seconds * 1000
    if 0 < ms < 1:
        return f"{ms:.1f} ms"
    if round(ms) < 1000:
        return f"{ms:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def human_size(n: Any) -> str:
    """Bytes as the command line prints them (``48.0 kB``); empty for nothing."""
    if n is None:
        return ""
    from ..commands.partitions import format_size

    return format_size(int(n))
