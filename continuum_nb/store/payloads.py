"""JSON-only payloads: validation with a path to the offending value, and canonical dumps.

Nothing that is not plain JSON may reach the database: a row must never be able to execute code
when it is read (no pickle), and a value that cannot round-trip would replay differently.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["check_json", "dumps", "loads"]


def _path(parts: list[str]) -> str:
    return "".join(parts) or "<root>"


def _plain(value: Any, depth: int = 0) -> bool:
    """True if ``value`` is made only of the exact JSON types (the common case, checked
    without building paths); anything else goes to the full check, which names the problem."""
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return True
    if t is float:
        return math.isfinite(value)
    if depth > 100:
        return False
    if t is dict:
        return all(type(k) is str and _plain(v, depth + 1) for k, v in value.items())
    if t is list or t is tuple:
        return all(_plain(v, depth + 1) for v in value)
    return False


def check_json(value: Any, what: str) -> Any:
    """Return ``value`` if it is a JSON value, else raise ``TypeError`` naming the path.

    ``what`` names the argument in the message, e.g. ``"input of workflow 'order'"``.
    JSON values: None, bool, int, float (finite), str, list/tuple of JSON values, dict with str keys.
    """
    if _plain(value):
        return value
    stack: list[tuple[Any, list[str]]] = [(value, [])]
    while stack:
        item, parts = stack.pop()
        if item is None or isinstance(item, (bool, int, str)):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                raise TypeError(
                    f"{what} is not JSON: {_path(parts)} is {item!r} (NaN/Infinity are not JSON); "
                    "pass a finite number or a string"
                )
            continue
        if isinstance(item, (list, tuple)):
            stack.extend((v, parts + [f"[{i}]"]) for i, v in enumerate(item))
            continue
        if isinstance(item, dict):
            for k, v in item.items():
                if not isinstance(k, str):
                    raise TypeError(
                        f"{what} is not JSON: {_path(parts)} has a key {k!r} of type "
                        f"{type(k).__name__}; JSON object keys must be strings"
                    )
                stack.append((v, parts + [f"[{k!r}]"]))
            continue
        raise TypeError(
            f"{what} is not JSON: {_path(parts)} is a {type(item).__module__}.{type(item).__qualname__} "
            f"({item!r:.60}); convert it to str/int/float/bool/None/list/dict first "
            "(e.g. a datetime with .isoformat(), a Decimal with str())"
        )
    return value


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def dumps(value: Any) -> str:
    """Compact, key-order-preserving JSON text (the form written to jsonb columns)."""
    return _ENCODER.encode(value)


def loads(text: str | bytes) -> Any:
    return json.loads(text)
