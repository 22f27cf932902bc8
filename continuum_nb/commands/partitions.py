"""``continuum partitions create [YYYY-MM] | list | drop-old [--execute] | rollup``."""

from __future__ import annotations

import argparse
from typing import Any

from .. import partitions as _partitions
from ..store.partitions import PartitionInfo, parse_month
from ._common import add_database_options, database_from_args

__all__ = ["format_size", "register"]

_DESCRIPTION = """\
continuum_events is partitioned by month (continuum_events_yYYYY_mMM, UTC). Create next month's
partition ahead of time (e.g. from cron); writing an event in a month without a partition fails.

  create [YYYY-MM]     create one month's partition (default: next month); idempotent
  list                 every partition with its range, row count and size
  drop-old [--execute] report (default) or drop partitions wholly before the current UTC month
                       whose events all belong to runs whose retention_until has passed, and
                       delete those runs' activity results; does nothing while no run has
                       retention_until set
  rollup               count the analytics rollups of the months that are over (else the first
                       whole-journal analytics query after a month ends does it)"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "partitions",
        help="create, list and drop monthly continuum_events partitions",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="partitions_command", metavar="ACTION")
    sub.required = True

    create = sub.add_parser("create", help="create one month's partition (default: next month)")
    create.add_argument("month", nargs="?", metavar="YYYY-MM", help="the month (UTC); default: next month")
    add_database_options(create)
    create.set_defaults(func=_create)

    lst = sub.add_parser("list", help="list partitions with range, row count and size")
    add_database_options(lst)
    lst.set_defaults(func=_list)

    drop = sub.add_parser("drop-old", help="report (or with --execute drop) partitions past retention")
    drop.add_argument("--execute", action="store_true", help="really drop and delete (default: report only)")
    add_database_options(drop)
    drop.set_defaults(func=_drop_old)

    roll = sub.add_parser("rollup", help="count the analytics rollups of the months that are over")
    add_database_options(roll)
    roll.set_defaults(func=_rollup)


def format_size(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _range(p: PartitionInfo) -> str:
    if p.start is None or p.end is None:
        return "DEFAULT"
    return f"[{p.start:%Y-%m-%d}, {p.end:%Y-%m-%d})"


def _create(args: argparse.Namespace) -> int:
    month = parse_month(args.month) if args.month is not None else None  # refuse before any SQL
    result = _partitions.create(month, database_url=database_from_args(args))
    verb = "created" if result.created else "already exists:"
    print(f"{verb} {result.name} for {result.month}")
    return 0


def _list(args: argparse.Namespace) -> int:
    parts = _partitions.list_partitions(database_url=database_from_args(args))
    if not parts:
        print("continuum_events has no partitions; create one with `continuum partitions create`")
        return 0
    width = max(len("partition"), *(len(p.name) for p in parts))
    print(f"{'partition':<{width}}  {'range (UTC)':<26}  {'rows':>10}  {'size':>10}")
    for p in parts:
        rows = f"~{p.rows}" if p.estimated else str(p.rows)
        print(f"{p.name:<{width}}  {_range(p):<26}  {rows:>10}  {format_size(p.size_bytes):>10}")
    if any(p.estimated for p in parts):
        print("~ estimated from the statistics (ANALYZE): partitions of 100000 rows or more are not counted")
    missing = _partitions.next_month()
    if not any(p.month == missing for p in parts):
        month = f"{missing:%Y-%m}"
        print(f"warning: next month has no partition; run `continuum partitions create {month}`")
    return 0


def _drop_old(args: argparse.Namespace) -> int:
    report = _partitions.drop_old(args.execute, database_url=database_from_args(args))
    if not report.retention_in_use:
        print("no run has retention_until set: nothing to drop (drop-old keeps every event until runs opt in)")
        return 0
    mode = "dropping" if report.executed else "dry run (pass --execute to drop)"
    print(f"{mode}: partitions before the current UTC month {report.current_month}")
    if not report.candidates:
        print("  none")
    for c in report.candidates:
        if c.dropped:
            action = "dropped"
        elif c.check.droppable:
            action = "would drop" if not report.executed else "not dropped"
        else:
            action = "kept"
        reason = c.reason.removeprefix("kept: ")
        print(f"  {c.partition.name}  {c.partition.rows} rows  {action} ({reason})")
    verb = "deleted" if report.executed else "would be deleted"
    print(f"activity results of expired runs: {report.expired_results} {verb}")
    return 0


def _rollup(args: argparse.Namespace) -> int:
    print(_partitions.rollup_summary(_partitions.rollup(database_url=database_from_args(args))))
    return 0
