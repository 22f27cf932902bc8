"""``continuum ...``: the command line.

Each command lives next to what it drives; a module exposes ``register(subparsers)`` and sets
``func`` on its parser. Errors that are the user's to fix print one line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from . import __version__
from .errors import ContinuumError

__all__ = ["main"]

#: Modules that add commands, in help order.
_COMMAND_MODULES = (
    "continuum_nb.commands.demo",
    "continuum_nb.commands.db",
    "continuum_nb.commands.migrate",
    "continuum_nb.commands.partitions",
    "continuum_nb.commands.runs",
    "continuum_nb.commands.worker",
    "continuum_nb.commands.health",
    "continuum_nb.commands.doctor",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="continuum",
        description="continuum_nb: durable workflows for Python and Jupyter, journaled in PostgreSQL.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _COMMAND_MODULES:
        # A command module that fails to import is a broken install: let the error show.
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except (ContinuumError, TypeError, ValueError) as exc:
        # TypeError/ValueError from our own validation carry user-facing messages too.
        print(f"continuum {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
