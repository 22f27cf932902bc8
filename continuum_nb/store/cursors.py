"""Keyset cursors of ``cn.list_runs``: opaque text that names the last run of a page and the
filter it was made for.

A cursor is ``base64url(JSON)`` of ``{"v": 1, "f": <filter fingerprint>, "t": <started_at>,
"i": <run id>}``: the next page is the runs strictly before ``(started_at, id)`` in newest-first
order (the store's ``before=``), so paging neither skips nor repeats a run while others are
inserted (new runs sort before the cursor; ties on ``started_at`` are broken by ``id``). It is
not signed: a cursor is a position, not a permission, and every value in it is checked. A cursor
made for another filter is refused (it would silently page through a different result).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import datetime
from typing import Any
from uuid import UUID

__all__ = ["decode_cursor", "encode_cursor", "filter_fingerprint"]

_VERSION = 1
#: A cursor is short (about 150 characters); anything much longer is not one of ours.
_MAX_LENGTH = 1000


def filter_fingerprint(filters: dict[str, Any]) -> str:
    """A short digest of the filter (values already checked: names, scalars, aware datetimes)."""
    canonical = json.dumps(
        {k: v.isoformat() if isinstance(v, datetime) else v for k, v in sorted(filters.items())},
        sort_keys=True, separators=(",", ":"), ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode_cursor(fingerprint: str, started_at: datetime, run_id: UUID) -> str:
    body = {"v": _VERSION, "f": fingerprint, "t": started_at.isoformat(), "i": str(run_id)}
    raw = json.dumps(body, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _malformed(why: str) -> ValueError:
    return ValueError(
        f"malformed cursor ({why}); pass the next_cursor of a page cn.list_runs returned, unchanged, "
        "or cursor=None for the first page"
    )


def decode_cursor(cursor: Any, fingerprint: str) -> tuple[datetime, UUID]:
    """(started_at, id) of the cursor's last run. ``TypeError`` for a non-str; ``ValueError``
    for a malformed cursor, or one made for another filter."""
    if not isinstance(cursor, str):
        raise TypeError(f"cursor must be None or the str next_cursor of a page, not {type(cursor).__name__}")
    if not cursor or len(cursor) > _MAX_LENGTH:
        raise _malformed("empty" if not cursor else "too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        body = json.loads(raw)
    except (binascii.Error, ValueError):
        raise _malformed("not a cursor of cn.list_runs") from None
    if not isinstance(body, dict) or body.get("v") != _VERSION or set(body) != {"v", "f", "t", "i"}:
        raise _malformed("not a cursor of cn.list_runs")
    try:
        started_at = datetime.fromisoformat(str(body["t"]))
        run_id = UUID(str(body["i"]))
    except ValueError:
        raise _malformed("its position is not a time and a run id") from None
    if started_at.tzinfo is None:
        raise _malformed("its time has no time zone")
    if body["f"] != fingerprint:
        raise ValueError(
            "this cursor was made for another filter (state, workflow, started_after, started_before "
            "or attributes differ); pass the same filter as the call that returned it, or cursor=None "
            "to start over"
        )
    return started_at, run_id
