"""Hypothesis strategies for hostile inputs, and the checks every refusal must pass.

Values are grouped by *category* (what makes them hostile), so that a test parametrised by
category says exactly which kind of value gets through; Hypothesis generates the particular
value, and where it sits inside an otherwise plain JSON value.
"""

from __future__ import annotations

import math
import reprlib
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from hypothesis import HealthCheck, Phase, example, settings
from hypothesis import strategies as st

from tests.faults import budget

__all__ = [
    "CARRIED",
    "NAMES",
    "PAYLOADS",
    "Refusal",
    "Shown",
    "TABLES",
    "EXPLICIT_NAMES",
    "EXPLICIT_PAYLOADS",
    "call_with_deadline",
    "deep",
    "shown",
    "with_examples",
    "hx_settings",
    "refusal_problem",
    "row_counts",
]


def hx_settings(short: int, long: int | None = None) -> settings:
    """Bounded examples (short/long, tests/faults/budget.py), no deadline, no example database
    (nothing written to the worktree), no shrinking: an engine that hangs on a value would make
    each shrinking step wait out a timeout; the first failing value is reported as it is."""
    return settings(
        max_examples=budget.examples(short, long),
        deadline=None,
        database=None,
        phases=(Phase.explicit, Phase.generate),
        report_multiple_bugs=False,
        suppress_health_check=(HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                               HealthCheck.data_too_large),
    )


def with_examples(test: Callable[..., Any], arg: str, values: list[Any]) -> Callable[..., Any]:
    """``test`` (a ``@given`` test) tried first on each of ``values`` as ``arg``: the values the
    contract names are always among those tried, whatever Hypothesis generates besides."""
    for value in reversed(values):
        test = example(**{arg: value})(test)
    return test


class Shown:
    """A generated value with a short, recursion-free repr. Hypothesis prints the arguments of a
    failing example; printing a value nested 2,000 deep recurses past the interpreter's limit in
    the test process itself (and CPython 3.11 can then fail later, unrelated compiles with
    "AST constructor recursion depth mismatch", which takes pytest down). Tests unwrap
    ``.value`` where they use it."""

    class _Repr(reprlib.Repr):
        def repr_int(self, x: int, level: int) -> str:
            # repr() of an int over 4,300 digits raises ValueError (sys.int_info.str_digits_check_threshold)
            return repr(x) if x.bit_length() < 1000 else f"<int of {x.bit_length()} bits>"

    _repr = _Repr()
    _repr.maxlevel = 4
    _repr.maxstring = 60
    _repr.maxother = 60

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        try:
            return f"Shown({self._repr.repr(self.value)})"
        except Exception:  # noqa: BLE001 - a repr for a failure message must not fail itself
            return f"Shown(<{type(self.value).__name__}>)"


def shown(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Shown]:
    return strategy.map(Shown)


# --- strings ------------------------------------------------------------------------------------

#: Plain text: no NUL, no surrogate.
PLAIN = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)


def _around(middle: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(PLAIN, middle, PLAIN).map("".join)


#: Text holding a NUL (PostgreSQL text and jsonb cannot hold one).
NUL_TEXT = _around(st.text(alphabet="\x00", min_size=1, max_size=3))
#: Text holding a lone surrogate (not encodable as UTF-8).
SURROGATE_TEXT = _around(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF))
#: Names far over any length limit (the limit is about 200 characters; 10,000+ is unambiguous).
LONG_TEXT = st.tuples(st.sampled_from(["n", "Z", "_", "é", "中", "-"]), st.integers(10_000, 12_000)).map(
    lambda t: t[0] * t[1])

NAMES: dict[str, st.SearchStrategy[str]] = {"nul": NUL_TEXT, "surrogate": SURROGATE_TEXT, "long": LONG_TEXT}
#: The contract's own examples of each category of name.
EXPLICIT_NAMES: dict[str, list[str]] = {"nul": ["a\x00b", "\x00"], "surrogate": ["\ud800", "a\udfff"],
                                        "long": ["n" * 10_000]}


# --- JSON payloads ------------------------------------------------------------------------------


def deep(depth: int, kind: str = "list") -> Any:
    """A JSON value nested ``depth`` levels deep (built without recursion)."""
    value: Any = 0
    for i in range(depth):
        value = [value] if kind == "list" or (kind == "mixed" and i % 2) else {"d": value}
    return value


_NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf, float("1e400"), -float("1e400")])
#: Ints beyond what JSON text and PostgreSQL numeric round-trip (10**5000 and around).
_BIG_INT = st.tuples(st.integers(4_400, 6_000), st.sampled_from([1, -1])).map(lambda t: t[1] * 10 ** t[0])
_DEEP = st.tuples(st.integers(2_000, 3_000), st.sampled_from(["list", "dict", "mixed"])).map(lambda t: deep(*t))

#: The hostile value itself, by category.
PAYLOADS: dict[str, st.SearchStrategy[Any]] = {
    "nul_string": NUL_TEXT,
    "nul_key": NUL_TEXT.map(lambda k: {k: 1}),
    "surrogate_string": SURROGATE_TEXT,
    "surrogate_key": SURROGATE_TEXT.map(lambda k: {k: 1}),
    "big_int": _BIG_INT,
    "non_finite": _NON_FINITE,
    "deep_2000": _DEEP,
}

_SAFE_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False) | PLAIN,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(PLAIN, inner, max_size=3),
    max_leaves=6,
)
_PATH = st.lists(st.one_of(st.tuples(st.just("key"), PLAIN), st.tuples(st.just("index"), st.integers(0, 2))),
                 max_size=4)


def _embed(poison: Any, path: list[tuple[str, Any]], sibling: Any) -> Any:
    value = poison
    for step, arg in reversed(path):
        value = {**({"sibling": sibling} if arg != "sibling" else {}), arg: value} if step == "key" else \
            [sibling] * arg + [value]
    return value


def carried(category: str) -> st.SearchStrategy[Any]:
    """A plain JSON value with a hostile value of ``category`` somewhere inside it (or alone)."""
    return st.builds(_embed, PAYLOADS[category], _PATH, _SAFE_JSON)


CARRIED: dict[str, st.SearchStrategy[Any]] = {c: carried(c) for c in PAYLOADS}
#: The contract's own examples of each category of payload.
EXPLICIT_PAYLOADS: dict[str, list[Any]] = {
    "nul_string": ["a\x00b"],
    "nul_key": [{"a\x00": 1}],
    "surrogate_string": ["\ud800"],
    "surrogate_key": [{"\ud800": 1}],
    "big_int": [10**5000],
    "non_finite": [math.nan, math.inf],
    "deep_2000": [deep(2000)],
}


# --- refusals -----------------------------------------------------------------------------------

#: The tables a refused call must leave as they were.
TABLES = ("continuum_runs", "continuum_events", "continuum_signals", "continuum_timers",
          "continuum_activity_tasks", "continuum_activity_results", "continuum_workflow_versions",
          "continuum_snapshots")


def row_counts(url: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in TABLES}  # noqa: S608


class Refusal:
    """What a call did: returned (``raised`` None), raised, or did not return in time."""

    def __init__(self, raised: BaseException | None, seconds: float, timed_out: bool = False,
                 result: Any = None) -> None:
        self.raised = raised
        self.seconds = seconds
        self.timed_out = timed_out
        self.result = result


def call_with_deadline(fn: Callable[[], Any], deadline: float = 5.0) -> Refusal:
    """Run ``fn`` on a daemon thread (a call that hangs must not hang the suite, and a
    BaseException it raises must not reach pytest); give up after ``deadline`` seconds."""
    box: dict[str, Any] = {}

    def target() -> None:
        t0 = time.perf_counter()
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt/SystemExit are findings here
            box["raised"] = exc
        box["seconds"] = time.perf_counter() - t0

    t = threading.Thread(target=target, name="hostile-call", daemon=True)
    t0 = time.perf_counter()
    t.start()
    t.join(deadline)
    if t.is_alive():
        return Refusal(None, time.perf_counter() - t0, timed_out=True)
    return Refusal(box.get("raised"), box["seconds"], result=box.get("result"))


def _chain(exc: BaseException) -> list[BaseException]:
    out, seen = [], set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        out.append(cur)
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return out


def refusal_problem(r: Refusal, *, allowed: tuple[type[BaseException], ...] = (ValueError, TypeError),
                    max_seconds: float = 1.0) -> str | None:
    """None if the call was refused the way the contract says: at once, with one of ``allowed``
    (ValueError or TypeError), never a psycopg error (also not as the cause of what was
    raised: the value must be refused before the database), never RecursionError,
    UnicodeError or DatabaseUnavailable. Else what went wrong, in one line."""
    from continuum_nb.errors import DatabaseUnavailable

    if r.timed_out:
        return f"did not return within {r.seconds:.1f}s"
    if r.raised is None:
        return f"accepted (returned {r.result!r:.80})"
    exc = r.raised
    what = f"{type(exc).__module__}.{type(exc).__name__}: {str(exc)[:120]!r}"
    for link in _chain(exc):
        if isinstance(link, psycopg.Error):
            return f"refused by the database, not before it: {what} (from {type(link).__name__})"
        if isinstance(link, (RecursionError, UnicodeError, DatabaseUnavailable)):
            return f"{type(link).__name__} instead of a validation error: {what}"
    if not isinstance(exc, allowed):
        return f"raised {what}, not {' or '.join(a.__name__ for a in allowed)}"
    if not str(exc).strip():
        return f"raised {what} without a message"
    if r.seconds > max_seconds:
        return f"refused only after {r.seconds:.2f}s: {what}"
    return None
