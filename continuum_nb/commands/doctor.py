"""``continuum doctor``: check a continuum database and say how to fix what is wrong.

One line per check. A ``FINDING`` line names a fix and makes the exit status 1; ``warning`` and
``ok`` lines do not. Nothing is changed, and no stored workflow source is executed."""

from __future__ import annotations

import argparse
import ast
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ._common import add_database_options, database_from_args

__all__ = ["Line", "diagnose", "register", "run"]

_EPILOG = """\
examples:
  continuum doctor
  continuum doctor --database-url postgresql://ops@db:5432/orders --max-skew 0.5

checks: the server version; pending migrations; the events partitions of next month (a
finding) and the month after (a warning); client connections against max_connections
(measured in pg_stat_activity, all databases); this machine's clock against the server's
(SELECT clock_timestamp() halfway through a round trip); engine clocks, from the timers they
started in the last hour (lease renewals are stamped with the server's clock, so they cannot
show an engine's clock); stored %%workflow versions whose source no longer hashes to their
version_hash or does not parse (engines refuse to load them).

exit status: 0 no finding, 1 at least one finding, 2 bad input or no database."""

#: A finding when the connections in use reach this share of the ones non-superusers may use.
CONNECTIONS_SHARE = 0.8
#: How far back the engine-clock estimate looks at started timers (seconds).
TIMER_WINDOW_S = 3600.0


@dataclass(frozen=True)
class Line:
    level: str  # "ok", "info", "warning" or "finding"
    topic: str
    text: str

    def __str__(self) -> str:
        label = "FINDING" if self.level == "finding" else self.level
        return f"{label:<8} {self.topic}: {self.text}"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check the database (migrations, partitions, connections, clocks, stored code)",
        description=__doc__,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--max-skew", metavar="S", default="1",
                        help="clock difference (seconds) that counts as a finding (default 1)")
    add_database_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        max_skew = float(args.max_skew)
    except ValueError:
        max_skew = float("nan")
    if not 0 < max_skew < float("inf"):
        raise ValueError(f"--max-skew must be a finite number of seconds > 0, not {args.max_skew!r}")
    lines = diagnose(database_from_args(args), max_skew=max_skew)
    for line in lines:
        print(line)
    findings = sum(1 for line in lines if line.level == "finding")
    print(f"{findings} finding(s)" if findings else "no findings")
    return 1 if findings else 0


def diagnose(conninfo: str, *, max_skew: float = 1.0) -> list[Line]:
    """Every check's line, in order (see the module docstring)."""
    from ..store import doctor_sql
    from ..store.migrate import connect, pending

    todo = pending(conninfo)
    with connect(conninfo, autocommit=True, application_name="continuum_nb doctor") as conn:
        before = time.time()
        facts = doctor_sql.server_facts(conn)
        after = time.time()
        lines = [Line("info", "server", f"PostgreSQL {facts.version}")]
        lines.append(_migrations(todo))
        tables = doctor_sql.has_tables(conn)
        if tables:
            lines += _partitions(conn, facts.clock)
        lines.append(_connections(conn, facts))
        lines.append(_local_clock(facts.clock, before, after, max_skew))
        if tables:
            lines.append(_engine_clocks(doctor_sql.timer_clock_offsets(conn, TIMER_WINDOW_S), max_skew))
            lines += _stored_versions(conn)
        else:
            lines.append(Line("info", "tables", "no continuum tables yet: partitions, engine clocks and stored "
                              "versions were not checked"))
    return lines


def _migrations(todo: list[Any]) -> Line:
    if not todo:
        return Line("ok", "migrations", "none pending")
    names = ", ".join(m.revision for m in todo[:3]) + (", ..." if len(todo) > 3 else "")
    return Line("finding", "migrations", f"{len(todo)} pending ({names}); fix: continuum migrate")


def _partitions(conn: Any, server_now: datetime) -> list[Line]:
    from ..store.partitions import add_months, covering_partition, format_month, month_of

    out = []
    this = month_of(server_now)
    for ahead, level in ((1, "finding"), (2, "warning")):
        month = add_months(this, ahead)
        start = datetime(month.year, month.month, 1, tzinfo=timezone.utc)
        covered = covering_partition(conn, start)
        name = format_month(month)
        if covered is not None:
            out.append(Line("ok", "partitions", f"{name} has a partition ({covered})"))
        else:
            when = "next month" if ahead == 1 else "the month after next"
            out.append(Line(level, "partitions", f"{when} ({name}) has no partition: events written from "
                            f"{name}-01 on will fail; fix: continuum partitions create {name}"))
    return out


def _connections(conn: Any, facts: Any) -> Line:
    from ..store import doctor_sql

    counts = doctor_sql.connection_counts(conn)
    used = sum(c.count for c in counts)
    usable = facts.max_connections - facts.reserved
    top = ", ".join(f"{c.application_name or '(none)'} {c.count} ({c.user or '?'}@{c.database or '?'})"
                    for c in counts[:5]) + (", ..." if len(counts) > 5 else "")
    text = (f"{used} client connection(s) open on the server (this one included) of {usable} usable "
            f"(max_connections {facts.max_connections}, {facts.reserved} reserved): {top}")
    if used >= CONNECTIONS_SHARE * usable:
        return Line("finding", "connections", f"{text}; fix: raise max_connections, or lower pool_size "
                    "(CONTINUUM_POOL_SIZE; each engine uses about pool_size + 1) or the number of engines")
    return Line("ok", "connections", text)


def _local_clock(server: datetime, before: float, after: float, max_skew: float) -> Line:
    local = datetime.fromtimestamp((before + after) / 2, timezone.utc)
    offset = (server - local).total_seconds()
    bound = (after - before) / 2
    way = "ahead of" if offset > 0 else "behind"
    text = f"the server's clock is {abs(offset):.3f}s {way} this machine's (±{bound:.3f}s, half the round trip)"
    if abs(offset) - bound > max_skew:
        return Line("finding", "clock", f"{text}; fix: synchronise the clocks with NTP (chrony, "
                    "systemd-timesyncd); an engine on this machine fires timers off by that much")
    return Line("ok", "clock", text)


def _engine_clocks(sample: Any, max_skew: float) -> Line:
    if not sample.timers:
        return Line("info", "engine clocks", "no timer started in the last hour: nothing to compare (lease "
                    "renewals are stamped with the server's clock and show no engine's clock)")
    text = (f"{sample.timers} timer(s) started in the last hour: the furthest ahead an engine's clock was, at "
            f"least, {max(0.0, sample.max_ahead_s):.3f}s (from fire_at - duration_s against inserted_at)")
    if sample.max_ahead_s > max_skew:
        return Line("finding", "engine clocks", f"{text}; timers fire early on that engine; fix: synchronise the "
                    "engines' clocks with NTP")
    return Line("ok", "engine clocks", text)


def _stored_versions(conn: Any) -> list[Line]:
    from ..definitions.workflow import source_hash
    from ..store import doctor_sql

    cells = doctor_sql.stored_cells(conn)
    out = []
    for cell in cells:
        what = f"stored %%workflow version {cell.version_hash[:12]} of {cell.name!r}"
        why = None
        if source_hash(cell.source) != cell.version_hash:
            why = "its source no longer hashes to its version_hash (the row was altered)"
        else:
            try:
                ast.parse(cell.source)
            except SyntaxError as exc:
                why = f"its source does not parse (line {exc.lineno}: {exc.msg})"
        if why is None:
            continue
        runs = doctor_sql.runs_on_version(conn, cell.name, cell.version_hash)
        out.append(Line("finding", "stored versions", f"{what}: {why}, so no engine will load it; {runs} "
                        "unfinished run(s) on it; fix: re-run the %%workflow cell in a notebook (it stores a "
                        "new version) and cn.upgrade() those runs, or restore the row"))
    if not out:
        out.append(Line("ok", "stored versions", f"{len(cells)} %%workflow version(s), each hashes to its "
                        "version_hash and parses"))
    return out

