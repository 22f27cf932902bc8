"""JSON-only payloads: validation with a path to the offending value, and canonical dumps.

Nothing that is not plain JSON may reach the database: a row must never be able to execute code
when it is read (no pickle), and a value that cannot round-trip would replay differently.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = [
    "MAX_ATTRIBUTES",
    "MAX_ATTRIBUTE_TEXT",
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "MAX_KEY_LENGTH",
    "MAX_NAME_LENGTH",
    "check_attributes",
    "check_json",
    "check_name",
    "check_size",
    "dumps",
    "loads",
    "payload_size",
    "storable_text",
]


#: Limits of what may be stored (docs/semantics.md, "What may be stored"). Nesting is bounded so
#: that checking, encoding and decoding never recurse deeply; integers so that every reader
#: (PostgreSQL numeric, DuckDB, Python's int-to-text limit) can carry them; names so that an index
#: entry always fits.
MAX_DEPTH = 100
MAX_INT_DIGITS = 1000
MAX_NAME_LENGTH = 200
#: Idempotency keys (of activities, starts and signals).
MAX_KEY_LENGTH = 400
#: Search attributes of a run: at most this many, each a name and a JSON scalar (text at most
#: MAX_ATTRIBUTE_TEXT characters): labels to find runs by, not a second input.
MAX_ATTRIBUTES = 100
MAX_ATTRIBUTE_TEXT = 1000
_INT_LIMIT = 10**MAX_INT_DIGITS
_SURROGATE = re.compile("[\ud800-\udfff]")


def _path(parts: list[str]) -> str:
    return "".join(parts) or "<root>"


def _text_ok(s: str) -> bool:
    # NUL cannot be stored in text or jsonb; a lone surrogate cannot be encoded as UTF-8.
    return "\x00" not in s and (s.isascii() or _SURROGATE.search(s) is None)


def _plain(value: Any, depth: int = 0) -> bool:
    """True if ``value`` is made only of the exact JSON types within the limits (the common
    case, checked without building paths); anything else goes to the full check, which names
    the problem."""
    t = type(value)
    if t is str:
        return _text_ok(value)
    if t is int:
        return -_INT_LIMIT < value < _INT_LIMIT
    if t is bool or value is None:
        return True
    if t is float:
        return math.isfinite(value)
    if depth >= MAX_DEPTH:
        return False
    if t is dict:
        return all(type(k) is str and _text_ok(k) and _plain(v, depth + 1) for k, v in value.items())
    if t is list or t is tuple:
        return all(_plain(v, depth + 1) for v in value)
    return False


def _text_problem(s: str) -> str | None:
    if "\x00" in s:
        return f"contains a NUL character at index {s.index(chr(0))} (PostgreSQL cannot store it)"
    m = None if s.isascii() else _SURROGATE.search(s)
    if m is not None:
        return (f"contains a lone surrogate {m.group()!r} at index {m.start()} (not valid Unicode; "
                "it cannot be encoded as UTF-8)")
    return None


def check_json(value: Any, what: str) -> Any:
    """Return ``value`` if it is a JSON value that may be stored, else raise ``TypeError`` (not
    JSON) or ``ValueError`` (beyond a limit) naming the path and the limit.

    ``what`` names the argument in the message, e.g. ``"input of workflow 'order'"``.
    JSON values: None, bool, int (at most MAX_INT_DIGITS digits), float (finite), str (no NUL,
    no lone surrogate), list/tuple of JSON values, dict with str keys; nested at most MAX_DEPTH
    deep. Linear in the size of the value.
    """
    if _plain(value):
        return value
    stack: list[tuple[Any, list[str]]] = [(value, [])]
    while stack:
        item, parts = stack.pop()
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, str):
            problem = _text_problem(item)
            if problem:
                raise ValueError(f"{what} cannot be stored: {_path(parts)} {problem}")
            continue
        if isinstance(item, int):
            if not -_INT_LIMIT < item < _INT_LIMIT:
                raise ValueError(
                    f"{what} cannot be stored: {_path(parts)} is an integer of more than {MAX_INT_DIGITS} "
                    "digits; pass it as a string"
                )
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                raise TypeError(
                    f"{what} is not JSON: {_path(parts)} is {item!r} (NaN/Infinity are not JSON); "
                    "pass a finite number or a string"
                )
            continue
        if isinstance(item, (list, tuple, dict)) and len(parts) >= MAX_DEPTH:
            raise ValueError(
                f"{what} cannot be stored: it is nested more than {MAX_DEPTH} levels deep "
                f"(at {_path(parts[:3])}...); flatten it"
            )
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
                problem = _text_problem(k)
                if problem:
                    raise ValueError(f"{what} cannot be stored: a key of {_path(parts)} {problem}")
                stack.append((v, parts + [f"[{k!r:.40}]"]))
            continue
        raise TypeError(
            f"{what} is not JSON: {_path(parts)} is a {type(item).__module__}.{type(item).__qualname__} "
            f"({item!r:.60}); convert it to str/int/float/bool/None/list/dict first "
            "(e.g. a datetime with .isoformat(), a Decimal with str())"
        )
    return value


def check_name(value: Any, what: str, max_length: int = MAX_NAME_LENGTH) -> str:
    """Return ``value`` if it may name something in the database (a workflow, activity, signal,
    instance, idempotency key): a non-empty str of at most ``max_length`` characters, with no
    NUL and no lone surrogate. Else ``TypeError``/``ValueError`` naming the value and the limit."""
    if not isinstance(value, str) or not value:
        raise TypeError(f"{what} must be a non-empty str, not {value!r:.80}")
    if len(value) > max_length:
        raise ValueError(
            f"{what} is {len(value)} characters long ({value[:40]!r}...); the limit is {max_length}"
        )
    problem = _text_problem(value)
    if problem:
        raise ValueError(f"{what} {value!r:.80} {problem}")
    return value


def check_attributes(value: Any, what: str = "attributes") -> dict[str, Any]:
    """Return ``value`` if it may be a run's search attributes: a dict of at most MAX_ATTRIBUTES
    names (as ``check_name``) to JSON scalars (None, bool, int, float, str of at most
    MAX_ATTRIBUTE_TEXT characters). Else ``TypeError``/``ValueError`` naming the attribute."""
    if not isinstance(value, dict):
        raise TypeError(f"{what} must be a dict of names to JSON scalars, not {type(value).__name__}")
    if len(value) > MAX_ATTRIBUTES:
        raise ValueError(f"{what} has {len(value)} entries; the limit is {MAX_ATTRIBUTES}")
    for key, item in value.items():
        check_name(key, f"a name in {what}")
        if item is not None and not isinstance(item, (bool, int, float, str)):
            raise TypeError(
                f"{what}[{key!r:.40}] is a {type(item).__name__}; an attribute is a JSON scalar "
                "(str, int, float, bool or None), not a list, dict or other object"
            )
        check_json(item, f"{what}[{key!r:.40}]")
        if isinstance(item, str) and len(item) > MAX_ATTRIBUTE_TEXT:
            raise ValueError(
                f"{what}[{key!r:.40}] is {len(item)} characters long; the limit is {MAX_ATTRIBUTE_TEXT}"
            )
    return value


def storable_text(s: str) -> str:
    """``s`` with what cannot be stored made visible instead (NUL as ``\\x00``, a lone surrogate
    as its escape): for texts we record rather than refuse, such as error messages."""
    if _text_ok(s):
        return s
    return _SURROGATE.sub(lambda m: m.group().encode("unicode_escape").decode(), s.replace("\x00", "\\x00"))


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _not_json(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# The C encoder behind _ENCODER, built once: JSONEncoder.encode builds a new one on every call,
# which is most of the cost of the many small values a wake encodes. No circular-reference
# markers: stored values are checked first (check_json bounds their depth), and a cycle that
# reaches here still fails (RecursionError), it cannot loop.
_MAKE_ENCODER: Any = getattr(json.encoder, "c_make_encoder", None)  # None without the C accelerator
_C_ENCODE = (None if _MAKE_ENCODER is None else _MAKE_ENCODER(
    None, _not_json, json.encoder.encode_basestring, None, ":", ",", False, False, False))


def dumps(value: Any) -> str:
    """Compact, key-order-preserving JSON text (the form written to jsonb columns)."""
    if _C_ENCODE is None or type(value) is str:
        return _ENCODER.encode(value)
    return "".join(_C_ENCODE(value, 0))


def loads(text: str | bytes) -> Any:
    return json.loads(text)


def payload_size(value: Any) -> int:
    """The size in bytes of ``value`` as stored (compact JSON, UTF-8)."""
    text = dumps(value)
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def check_size(value: Any, what: str, limit: int | None) -> int:
    """The size of ``value`` as stored (``payload_size``), or ``ValueError`` when it is larger
    than ``limit`` bytes (the ``max_payload_bytes`` setting; None: no limit), naming ``what``,
    both sizes and the fix. Called before the value is journaled or written."""
    size = payload_size(value)
    if limit is not None and size > limit:
        raise ValueError(
            f"{what} is {size} bytes as JSON, over the max_payload_bytes limit of {limit}; keep large "
            "data outside the run (a file, a table, object storage) and pass a reference to it, "
            "or raise max_payload_bytes"
        )
    return size
