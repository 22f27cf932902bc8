"""How fast hostile payloads are refused, one JSON object per line on stdout.

    python benchmarks/refusal.py [--repeat 5]

The payload gate (``store/payloads.check_json``) must refuse a value nested far past
``MAX_DEPTH`` without walking all of it, and a magic line holding such a value must be refused
without the parser doing quadratic work. The tests check *that* these are refused (with a deadline
only against a hang); how fast lives here.

- ``gate_deep_list`` / ``gate_deep_dict``: ``check_json`` on a value nested 100,000 deep.
- ``gate_wide``: ``check_json`` on a fine 100,000-element list (the cost of accepting).
- ``magic_parse_deep``: ``%continuum signal`` argument parsing of a 200,000-character nested
  JSON text (the parser alone, no database).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from continuum_nb.notebook.parser import ArgumentError, build_continuum_parser, parse  # noqa: E402
from continuum_nb.store.payloads import check_json  # noqa: E402


def _nested(depth: int, shape: str) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value] if shape == "list" else {"d": value}
    return value


def _time(call: Callable[[], Any], repeat: int) -> dict[str, Any]:
    seconds = []
    outcome = "accepted"
    for _ in range(repeat):
        t0 = time.perf_counter()
        try:
            call()
        except (ValueError, TypeError, ArgumentError) as exc:
            outcome = f"refused ({type(exc).__name__})"
        seconds.append(time.perf_counter() - t0)
    return {"outcome": outcome, "best_ms": round(min(seconds) * 1000, 3),
            "median_ms": round(statistics.median(seconds) * 1000, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    deep_list, deep_dict = _nested(100_000, "list"), _nested(100_000, "dict")
    wide = list(range(100_000))
    deep_text = '{"x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    line = f"signal 00000000-0000-0000-0000-000000000001 go '{deep_text}'"
    cases: dict[str, Callable[[], Any]] = {
        "gate_deep_list": lambda: check_json(deep_list, "input"),
        "gate_deep_dict": lambda: check_json(deep_dict, "input"),
        "gate_wide": lambda: check_json(wide, "input"),
    }
    parser = build_continuum_parser()
    cases["magic_parse_deep"] = lambda: parse(parser, line)
    for name, call in cases.items():
        print(json.dumps({"benchmark": name, "repeat": args.repeat, **_time(call, args.repeat)}), flush=True)


if __name__ == "__main__":
    main()
