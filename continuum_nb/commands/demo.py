"""``continuum demo``: start (or attach to) the database, migrate it, list the event partitions,
then run a real workflow (an activity that fails once, a signal, a timer, side effects) and print
its timeline."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import add_database_options, database_from_args

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    import psycopg

    from ..store.database import check_connection, describe
    from ..store.migrate import migrate
    from ..store.partitions import list_partitions

    info = database_from_args(args)
    check_connection(info)
    print(f"database:   {describe(info)}")
    done = migrate(info)
    print(f"migrations: {len(done)} applied" + (f" (now at {done[-1].version}_{done[-1].name})" if done else ", schema up to date"))
    with psycopg.connect(info) as conn:
        parts = list_partitions(conn)
    print(f"partitions of continuum_events ({len(parts)}):")
    for p in parts:
        span = f"{p.start:%Y-%m-%d} .. {p.end:%Y-%m-%d}" if p.start and p.end else "default"
        print(f"  {p.name:<32} {span:<24} {p.rows:>8} rows")
    print()
    # Imported only when the demo runs: the CLI imports every command module, and importing this
    # one loads the engine and defines the demo's workflow and activities, which no other
    # command needs.
    from .demo_workflow import run_demo

    return run_demo(info)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run a demo workflow on the embedded database (or --database-url)",
        description="Start (or attach to) the embedded database unless a URL is given, apply the "
        "migrations, list the continuum_events partitions, then run a workflow with a flaky "
        "activity, a signal, a timer and side effects, and print its timeline.",
    )
    add_database_options(parser)
    parser.set_defaults(func=_run)
