"""The argument grammar of ``%continuum``, ``%%workflow`` and ``%%continuum_sql``.

Plain argparse, except that nothing here ever exits the kernel: a parse error raises
``ArgumentError`` carrying a one-line message, and ``--help`` raises ``HelpShown`` after the help
was printed. JSON arguments (workflow input, signal payloads) are decoded and checked here, so a
malformed one is refused before anything is sent to the database.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import uuid
from collections.abc import Mapping
from typing import Any, NoReturn

from ..store.payloads import MAX_DEPTH, check_json

__all__ = [
    "ANALYTICS_QUERIES",
    "SUBCOMMANDS",
    "ArgumentError",
    "HelpShown",
    "build_continuum_parser",
    "build_sql_parser",
    "build_workflow_parser",
    "parse",
]

SUBCOMMANDS = (
    "start", "signal", "cancel", "wait", "resume", "upgrade", "runs", "show",
    "observe", "events", "partitions", "analytics", "replay", "fork",
)  # fmt: skip

#: The ready-made queries of continuum_nb.analytics; each has a ``plot_<name>`` helper there.
ANALYTICS_QUERIES = (
    "events_by_type_and_month",
    "run_durations",
    "activity_latency",
    "signal_wait_times",
    "throughput_per_minute",
)

STATES = ("running", "suspended", "completed", "failed", "cancelled", "drifted")

_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class ArgumentError(Exception):
    """Malformed magic arguments; ``str()`` is the one-line message to show."""


class HelpShown(Exception):
    """``--help`` was given; the help text has been printed already."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of calling ``sys.exit``."""

    def error(self, message: str) -> NoReturn:
        one_line = " ".join(message.split())
        raise ArgumentError(f"{self.prog}: {one_line} (see `{self.prog} --help`)")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            raise ArgumentError(message.strip())
        raise HelpShown()


# ---- argument types: each raises argparse.ArgumentTypeError with a message naming the fix


def json_object(text: str) -> dict[str, Any]:
    value = json_value(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f'workflow input must be a JSON object like \'{{"order_id": "A1"}}\', not {type(value).__name__}'
        )
    return value


def json_value(text: str) -> Any:
    try:
        # parse_constant refuses NaN/Infinity: they are not JSON and would not round-trip.
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise argparse.ArgumentTypeError(
            f"{text[:40]!r}... is nested too deeply to be stored (at most {MAX_DEPTH} levels)"
        ) from None
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f'{text[:80]!r} is not valid JSON ({exc}); quote it, e.g. \'{{"by": "ana"}}\''
        ) from None
    try:
        return check_json(value, "the JSON value")  # 1e400 (inf), NUL, too deep, too large
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def split_attribute(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` (a search attribute as typed in a magic, the CLI or the observer): VALUE is
    read as JSON when it is JSON (``n=3``, ``vip=true``), else as text. ValueError/TypeError
    when it is not KEY=VALUE or cannot be stored."""
    key, sep, value = text.strip().partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key:
        raise ValueError(f"{text[:80]!r} is not KEY=VALUE (e.g. customer=acme)")
    try:
        parsed = json.loads(value, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        parsed = value
    check_json({key: parsed}, "the search attribute")
    return key, parsed


def attribute(text: str) -> tuple[str, Any]:
    """``split_attribute`` as an argparse type (one line on bad input)."""
    try:
        return split_attribute(text)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def run_id(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a run id (a UUID such as 3f2b8c1e-...); copy it from `%continuum runs`"
        ) from None


def month(text: str) -> str:
    if not _MONTH.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a month; write YYYY-MM, e.g. 2026-12")
    return text


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def event_number(text: str) -> int:
    """The seq of a journal event, or 0 (before the first)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not an event number (0 or more: the seq of an event)")
    return value


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (>= 0)")
    return value


# ---- parsers


def _instance(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--instance", metavar="NAME", default=None,
        help="the named instance (cn.Instance) to use; default: ContinuumMagics.default_instance",
    )  # fmt: skip


def build_continuum_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="%continuum",
        description="Start, signal, inspect and operate continuum_nb runs from a notebook.",
        epilog="Each subcommand has its own help: %continuum start --help",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("start", help="start a run of a workflow")
    p.add_argument("workflow", help="workflow name (as registered by %%%%workflow or @cn.workflow)")
    p.add_argument(
        "input",
        nargs="?",
        type=json_object,
        default=None,
        help='the run input, a JSON object: \'{"order_id": "A1"}\'',
    )
    p.add_argument("--run-id", type=run_id, default=None, help="choose the run id (a UUID)")
    p.add_argument("--key", default=None, metavar="KEY",
                   help="an idempotency key: re-running the cell returns the run this key started")
    p.add_argument("--attr", dest="attrs", action="append", default=[], type=attribute, metavar="KEY=VALUE",
                   help="a search attribute of the run (a JSON value, else text); repeatable")
    p.add_argument("--many", default=None, metavar="FILE",
                   help="start one run per input in FILE (a JSON array of objects, or one object per "
                        "line), all in one transaction; returns the runs")
    p.add_argument("--wait", action="store_true", help="wait for the result and return it")
    p.add_argument("--timeout", type=seconds, default=None, help="with --wait: seconds to wait")
    _instance(p)

    p = sub.add_parser("signal", help="send a signal (a JSON payload) to a run")
    p.add_argument("run_id", type=run_id, help="the run id")
    p.add_argument("name", help="the signal name the workflow awaits")
    p.add_argument(
        "payload",
        nargs="?",
        type=json_value,
        default=None,
        help='the payload, any JSON value: \'{"by": "ana"}\'',
    )
    _instance(p)

    for name, text in (("cancel", "cancel a run"), ("resume", "resume a drifted run")):
        p = sub.add_parser(name, help=text)
        p.add_argument("run_id", type=run_id, help="the run id")
        _instance(p)

    p = sub.add_parser("wait", help="wait for a run and return its result")
    p.add_argument("run_id", type=run_id, help="the run id")
    p.add_argument(
        "--timeout",
        type=seconds,
        default=None,
        help="seconds to wait (default: ContinuumMagics.wait_timeout)",
    )
    _instance(p)

    p = sub.add_parser(
        "upgrade", help="move a run to its workflow's newest version (replay-checked)"
    )
    p.add_argument("run_id", type=run_id, help="the run id")
    p.add_argument(
        "--check", action="store_true", help="only report whether it would replay cleanly"
    )
    _instance(p)

    p = sub.add_parser("runs", help="a table of runs, newest first")
    p.add_argument("--state", choices=STATES, default=None, help="only runs in this state")
    p.add_argument("--workflow", default=None, help="only runs of this workflow")
    p.add_argument("--attr", dest="attrs", action="append", default=[], type=attribute, metavar="KEY=VALUE",
                   help="only runs whose search attribute KEY is VALUE; repeatable")
    p.add_argument(
        "--limit",
        type=positive_int,
        default=None,
        help="at most N runs (default: ContinuumMagics.runs_limit)",
    )
    _instance(p)

    for name, text in (("show", "a run's detail"), ("events", "a run's journal, as a table")):
        p = sub.add_parser(name, help=text)
        p.add_argument("run_id", type=run_id, help="the run id")
        _instance(p)

    p = sub.add_parser("replay", help="a run's state after event N, replayed offline (writes nothing)")
    p.add_argument("run_id", type=run_id, help="the run id")
    p.add_argument("--upto", type=event_number, default=None, metavar="N",
                   help="after event N (default: the run's last)")
    _instance(p)

    p = sub.add_parser("fork", help="a new run from the first N events of a run, on the newest code")
    p.add_argument("run_id", type=run_id, help="the run id")
    p.add_argument("--at", dest="at_seq", type=event_number, required=True, metavar="N",
                   help="keep the journal up to and including event N (0: from the start)")
    p.add_argument("--version", default="newest", help="newest (default), original, or a version hash")
    _instance(p)

    p = sub.add_parser("observe", help="open the observer (an ipywidgets app)")
    p.add_argument("--read-only", action="store_true", help="without operator actions")
    _instance(p)

    p = sub.add_parser("partitions", help="list, create, drop or roll up monthly event partitions")
    psub = p.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    psub.required = True
    q = psub.add_parser("list", help="partitions with their row counts")
    _instance(q)
    q = psub.add_parser("create", help="create a month's partition (idempotent)")
    q.add_argument(
        "month", nargs="?", type=month, default=None, help="YYYY-MM (default: next month)"
    )
    _instance(q)
    q = psub.add_parser(
        "drop-old", help="report (or with --execute drop) partitions past retention"
    )
    q.add_argument("--execute", action="store_true", help="really drop them (default: dry run)")
    _instance(q)
    q = psub.add_parser("rollup", help="count the analytics rollups of the months that are over")
    _instance(q)

    p = sub.add_parser("analytics", help="a ready-made analytics query, as a DataFrame")
    p.add_argument("query", choices=ANALYTICS_QUERIES, help="which query")
    p.add_argument("--plot", action="store_true", help="also draw its plot (matplotlib)")
    _instance(p)
    return parser


def build_workflow_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="%%workflow",
        description=(
            "Run the cell, register its `async def` as a workflow and store the cell as a new "
            "version. The cell must be self-contained: import or define every name it uses."
        ),
    )
    parser.add_argument(
        "name",
        nargs="?",
        default=None,
        help="the async def to register (needed when the cell defines several)",
    )
    _instance(parser)
    return parser


def build_sql_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="%%continuum_sql",
        description="DuckDB SQL over the views runs, events, activity_tasks and signals; returns a DataFrame.",
    )
    parser.add_argument(
        "--out", "-o", metavar="VAR", default=None, help="also store the DataFrame in this variable"
    )
    _instance(parser)
    return parser


def parse(
    parser: argparse.ArgumentParser, line: str, namespace: Mapping[str, Any] | None = None
) -> argparse.Namespace:
    """Split ``line`` like a shell would and parse it; errors become one-line ``ArgumentError``s.

    A whole argument of the form ``$name`` or ``$name.attr`` is replaced by that notebook
    variable's value (``%continuum wait $run.id``). Only whole arguments: JSON text is never
    touched (IPython's own ``{expr}`` expansion is off, as it would rewrite JSON objects).
    """
    try:
        argv = shlex.split(line)
    except ValueError as exc:  # an unbalanced quote
        raise ArgumentError(
            f"{parser.prog}: cannot split the arguments ({exc}); quote JSON with single quotes: "
            '\'{"by": "ana"}\''
        ) from None
    if namespace is not None:
        argv = [_expand(parser.prog, a, namespace) for a in argv]
    return parser.parse_args(argv)


_VARIABLE = re.compile(r"^\$([A-Za-z_]\w*)((?:\.[A-Za-z_]\w*)*)$")


def _expand(prog: str, arg: str, namespace: Mapping[str, Any]) -> str:
    m = _VARIABLE.match(arg)
    if m is None:
        return arg
    name, attrs = m.group(1), [a for a in m.group(2).split(".") if a]
    if name not in namespace:
        raise ArgumentError(f"{prog}: ${name} is not defined in this notebook")
    value = namespace[name]
    for attr in attrs:
        try:
            value = getattr(value, attr)
        except AttributeError:
            raise ArgumentError(
                f"{prog}: {arg}: {type(value).__name__} has no attribute {attr!r}"
            ) from None
    return value if isinstance(value, str) else str(value)
