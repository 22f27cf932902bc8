"""Options every database-touching command shares, and the exit codes of ``continuum runs``."""

from __future__ import annotations

import argparse

from ..store.database import resolve_url

#: Exit codes a script can rely on: done, the run failed/was cancelled/drifted, usage, timeout.
EXIT_DONE, EXIT_RUN_FAILED, EXIT_USAGE, EXIT_TIMEOUT = 0, 1, 2, 3


def add_database_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="PostgreSQL URL (default: CONTINUUM_DATABASE_URL, else the embedded database)",
    )
    parser.add_argument(
        "--instance",
        metavar="NAME",
        default=None,
        help="instance name; its database is CONTINUUM_<NAME>_DATABASE_URL when set",
    )


def database_from_args(args: argparse.Namespace) -> str:
    """The conninfo the command should use."""
    import os

    if args.database_url:
        return resolve_url(args.database_url)
    if args.instance and args.instance != "default":
        env = f"CONTINUUM_{args.instance.upper().replace('-', '_')}_DATABASE_URL"
        if os.environ.get(env):
            return resolve_url(os.environ[env])
        from ..errors import InstanceNotRegistered

        raise InstanceNotRegistered(
            f"instance {args.instance!r} has no database configured here; set {env} or pass --database-url"
        )
    return resolve_url(None)
