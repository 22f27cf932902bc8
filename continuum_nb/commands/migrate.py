"""``continuum migrate [--to REVISION] [--print]`` (and registers ``continuum gen-migration``)."""

from __future__ import annotations

import argparse
from typing import Any

from ..store import migrate as _migrate
from . import gen_migration
from ._common import add_database_options, database_from_args

__all__ = ["register", "run"]

_DESCRIPTION = """\
Apply the pending migrations in migrations/, in order, each in its own transaction, recording
each in continuum_schema_migrations. Concurrent migrators wait for each other.

revisions for --to: v0.1 (the Continuum v0.1 base schema only), v0.2 (up to the v0.2 deltas),
head (the default: everything), or a migration's version or file name without .sql."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "migrate",
        help="apply the database migrations",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--to", metavar="REVISION", help="stop after this revision (default: head)")
    parser.add_argument(
        "--print",
        dest="print_sql",
        action="store_true",
        help="print the SQL that would run and change nothing",
    )
    add_database_options(parser)
    parser.set_defaults(func=run)
    gen_migration.register(subparsers)


def run(args: argparse.Namespace) -> int:
    _migrate.resolve_target(args.to)  # an unknown revision fails before touching any database
    conninfo = database_from_args(args)
    if args.print_sql:
        print(_migrate.print_sql(_migrate.pending(conninfo, args.to)), end="")
        return 0
    done = _migrate.migrate(conninfo, args.to)
    for m in done:
        print(f"applied {m.revision}")
    target = _migrate.resolve_target(args.to)
    if not done:
        print(f"nothing to apply: the database is at or past {target}")
    return 0
