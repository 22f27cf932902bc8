"""``continuum health [--json]``: the engines seen through their leases, overdue runs, stuck
tasks and workflows nobody runs (``cn.health()``). Exit 0 when healthy, 1 when not."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..config import load_config, setting_from_text
from ._common import add_database_options, database_from_args

__all__ = ["register", "run"]

_EPILOG = """\
examples:
  continuum health
  continuum health --json --database-url postgresql://ops@db:5432/orders | jq .problems
  continuum health --instance billing --slack 300 || page-oncall

Engines are seen through their leases: the latest lease expiry of an owner minus the lease TTL
is its last heartbeat. The TTL is not stored in the database: the one assumed is --lease-ttl
(default CONTINUUM_LEASE_TTL, else 30). An engine that holds no lease is not seen; the
connections to the database are listed too (pg_stat_activity, by application_name).

exit status: 0 healthy, 1 not healthy (the report's "problems" say why and what to do),
2 bad input or no database."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "health",
        help="engines, overdue runs, stuck tasks (exit 1 when not healthy)",
        description=__doc__,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    parser.add_argument("--slack", metavar="S", default="60",
                        help="seconds a run or task may be due (or a lease expired) before it counts (default 60)")
    parser.add_argument("--lease-ttl", metavar="S",
                        help="the engines' lease TTL, to compute their lag (default CONTINUUM_LEASE_TTL, else 30)")
    add_database_options(parser)
    parser.set_defaults(func=run)


def _seconds(text: str, option: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value < float("inf"):
        raise ValueError(f"{option} must be a finite number of seconds >= 0, not {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    from ..health import check

    slack = _seconds(args.slack, "--slack")
    if args.lease_ttl is not None:
        ttl = float(setting_from_text("lease_ttl", args.lease_ttl, "--lease-ttl"))
    else:
        ttl = load_config(args.instance or "default").lease_ttl
    report = check(database_from_args(args), lease_ttl=ttl, slack=slack)
    if args.json:
        print(json.dumps(report.to_dict(), indent=None, sort_keys=True))
    else:
        print(report)
    return 0 if report.ok else 1
