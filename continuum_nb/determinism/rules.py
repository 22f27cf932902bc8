"""The determinism scan's rules: which calls are never deterministic (and what to use instead),
and which modules are trusted to be deterministic.

The tables are keyed by canonical dotted names (``time.time``, ``os.path.join``); ``canonical``
maps the private names C modules report (``posix``, ``_random``) to the public ones.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = [
    "ACTIVITY",
    "STDLIB_TRUSTED",
    "canonical",
    "is_trusted_module",
    "prefix_match",
    "replacement_for",
]

#: The advice for I/O calls; it is also their ``Finding.replacement``.
ACTIVITY = "move the I/O into an @cn.activity"

# replacement -> the dotted prefixes it replaces. The longest matching prefix decides, so
# "" (deterministic members of a flagged module, like os.path.join) overrides its module.
_REPLACEMENTS: dict[str, tuple[str, ...]] = {
    "cn.now()": ("time", "datetime.datetime.now", "datetime.datetime.utcnow", "datetime.datetime.today"),
    "cn.today()": ("datetime.date.today",),
    "cn.timer(...)": ("time.sleep", "asyncio.sleep"),
    "cn.random()": ("random", "os.urandom"),
    "cn.uuid4()": ("uuid.uuid1", "uuid.uuid4"),
    "cn.side_effect(...)": ("secrets",),
    "cn.gather(...)": ("asyncio.gather",),
    "cn.gather(...) / cn.timer(...) (workflow code never runs on an asyncio loop)": ("asyncio",),
    "cn.gather(...) of activities": ("threading", "concurrent.futures", "multiprocessing"),
    ACTIVITY: (
        "os", "builtins.open", "builtins.input", "io.open", "socket", "ssl", "subprocess",
        "urllib.request", "http.client", "requests", "httpx", "aiohttp", "urllib3",
    ),
    "": tuple(
        f"os.path.{f}"
        for f in ("join", "basename", "dirname", "split", "splitext", "normpath", "isabs", "commonprefix")
    ),
}
_RULES: dict[str, str] = {prefix: repl for repl, prefixes in _REPLACEMENTS.items() for prefix in prefixes}

#: Standard-library modules whose functions are deterministic (the nondeterministic members of
#: datetime and uuid are caught by the rules above first). logging and warnings are here too:
#: they cannot change the path the workflow takes (the scan reports logging calls and print()
#: separately, as output a replay repeats: use cn.log).
STDLIB_TRUSTED: frozenset[str] = frozenset(
    {
        "abc", "array", "base64", "binascii", "bisect", "builtins", "calendar", "cmath",
        "collections", "contextlib", "copy", "csv", "dataclasses", "datetime", "decimal",
        "difflib", "enum", "fractions", "functools", "graphlib", "hashlib", "heapq", "hmac",
        "html", "ipaddress", "itertools", "json", "keyword", "math", "numbers", "operator",
        "pprint", "re", "shlex", "logging", "warnings", "statistics", "string", "struct", "textwrap", "types",
        "typing", "unicodedata", "urllib.parse", "uuid", "zlib", "os.path", "posixpath",
        "ntpath",
    }
)

# C implementation modules whose objects report the private name in __module__.
_MODULE_ALIASES = {
    "posix": "os", "nt": "os", "posixpath": "os.path", "ntpath": "os.path", "_socket": "socket",
    "_random": "random", "_thread": "threading", "_datetime": "datetime", "_io": "io",
    "_asyncio": "asyncio", "_json": "json", "_collections": "collections", "_functools": "functools",
    "_operator": "operator", "_decimal": "decimal", "_pydecimal": "decimal", "_sha256": "hashlib",
    "_hashlib": "hashlib", "_bisect": "bisect", "_heapq": "heapq", "_struct": "struct",
    "_sre": "re", "_string": "string", "_statistics": "statistics",
}


def prefix_match(name: str, prefixes: Sequence[str] | frozenset[str]) -> bool:
    """Whether ``name`` is one of ``prefixes`` or lies under one of them (``a.b`` under ``a``)."""
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def canonical(dotted: str) -> str:
    """``dotted`` with a C implementation module's private name replaced by its public one."""
    head, _, rest = dotted.partition(".")
    alias = _MODULE_ALIASES.get(head)
    if alias is None:
        return dotted
    return f"{alias}.{rest}" if rest else alias


def replacement_for(dotted: str) -> str | None:
    """The replacement for a never-deterministic call, or None if the call is not one."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        replacement = _RULES.get(".".join(parts[:i]))
        if replacement is not None:
            return replacement or None
    return None


def is_trusted_module(module: str, trusted_modules: Sequence[str] = ()) -> bool:
    """Whether calls into ``module`` are trusted without a pure marker."""
    module = canonical(module)
    if prefix_match(module, ("continuum_nb",)):
        return True
    if module in STDLIB_TRUSTED or prefix_match(module, tuple(STDLIB_TRUSTED)):
        return True
    if prefix_match(module, tuple(trusted_modules)):
        return True
    # A module (or one of its parent packages) with ``__continuum_pure__ = True``.
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        mod = sys.modules.get(".".join(parts[:i]))
        if mod is not None and getattr(mod, "__continuum_pure__", False) is True:
            return True
    return False
