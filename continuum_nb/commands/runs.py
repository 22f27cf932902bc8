"""``continuum runs list|show|events|signal|cancel|resume|upgrade|wait|prune``: runs from a shell.

Human tables by default; ``--json`` prints one JSON object per line for scripts. Exit codes a
script can rely on: 0 done, 1 the run failed, was cancelled or drifted, 2 usage (bad input, an
unknown run), 3 timeout. The commands are a client: they never run workflows (``run_engine`` is
off), so they are safe next to any number of workers.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any

from ..errors import DriftError, RunCancelled, RunFailed
from ..notebook.parser import attribute, json_value, positive_int, run_id, seconds
from ..store.base import RUN_STATES
from . import histories
from ._common import (
    EXIT_DONE,
    EXIT_RUN_FAILED,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    add_database_options,
    database_from_args,
)

__all__ = ["EXIT_DONE", "EXIT_RUN_FAILED", "EXIT_TIMEOUT", "EXIT_USAGE", "register"]

_DESCRIPTION = """\
Find, inspect and operate runs from a shell (a client: nothing here runs workflows).

  list     runs, newest first            continuum runs list --state suspended --attr customer=acme
  show     one run                       continuum runs show 3f2b8c1e-...
  events   its journal                   continuum runs events 3f2b8c1e-... --json
  signal   send a JSON signal            continuum runs signal 3f2b8c1e-... approve '{"by": "ana"}' --key a1
  cancel   cancel it                     continuum runs cancel 3f2b8c1e-...
  resume   retry a drifted run           continuum runs resume 3f2b8c1e-...
  upgrade  move it to the newest version continuum runs upgrade 3f2b8c1e-... --import billing.flows
  wait     until it ends                 continuum runs wait 3f2b8c1e-... --timeout 60
  prune    ended runs past retention     continuum runs prune --execute
  export   its history as JSON           continuum runs export 3f2b8c1e-... > run.json
  replay   replay it on the code (r/o)   continuum runs replay 3f2b8c1e-... --against billing.flows
  fork     a new run from its event N    continuum runs fork 3f2b8c1e-... --at 4 --against billing.flows

Exit codes: 0 done, 1 the run failed, was cancelled or drifted, 2 usage, 3 timeout."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "runs", help="list, show, signal, cancel, resume, upgrade and wait on runs",
        description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="runs_command", metavar="ACTION")
    sub.required = True

    lst = _action(sub, "list", "runs, newest first", _list)
    lst.add_argument("--state", choices=RUN_STATES, help="only runs in this state")
    lst.add_argument("--workflow", metavar="NAME", help="only runs of this workflow")
    lst.add_argument("--attr", dest="attrs", action="append", default=[], type=attribute, metavar="KEY=VALUE",
                     help="only runs whose search attribute KEY is VALUE (a JSON value, else text); repeatable")
    lst.add_argument("--since", type=_moment, metavar="WHEN", help="only runs started at or after WHEN (ISO 8601)")
    lst.add_argument("--until", type=_moment, metavar="WHEN", help="only runs started before WHEN (ISO 8601)")
    lst.add_argument("--limit", type=positive_int, default=50, metavar="N", help="at most N runs (default 50)")
    lst.add_argument("--cursor", metavar="CURSOR", help="the next page: the cursor the previous page printed")

    _run_action(sub, "show", "one run: state, input, result or error, lease, versions", _show)
    _run_action(sub, "events", "the run's journal, in seq order", _events)
    sig = _run_action(sub, "signal", "send a signal (durable, even before the run awaits it)", _signal)
    sig.add_argument("name", help="the signal's name")
    sig.add_argument("payload", nargs="?", default="null", type=json_value, metavar="JSON",
                     help="the payload, a JSON value (default: null)")
    sig.add_argument("--key", metavar="KEY", help="an idempotency key: the signal is delivered once per key")
    _run_action(sub, "cancel", "cancel the run", _cancel)
    _run_action(sub, "resume", "retry a drifted run (after its code or cause was fixed)", _resume)
    upg = _run_action(sub, "upgrade", "move the run to its workflow's newest version (replay-checked)", _upgrade)
    upg.add_argument("--import", dest="imports", metavar="MODULE", action="append", default=[],
                     help="module defining the workflow's new version (repeatable)")
    upg.add_argument("--check", action="store_true", help="only say whether it would replay cleanly")
    wait = _run_action(sub, "wait", "wait until the run ends; print its result", _wait)
    wait.add_argument("--timeout", type=seconds, metavar="S", help="give up after S seconds (exit 3)")
    histories.register(sub, _run_action)
    prune = _action(sub, "prune", "report (or with --execute delete) ended runs past their retention", _prune)
    prune.add_argument("--execute", action="store_true", help="really delete (default: report only)")
    prune.add_argument("--drop-keys", action="store_true",
                       help="delete the pruned runs' idempotency keys too (default: kept, so a key never starts twice)")
    prune.add_argument("--batch-size", type=positive_int, default=1000, metavar="N",
                       help="runs per transaction (default 1000)")


def _action(sub: Any, name: str, text: str, func: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=text, description=text)
    p.add_argument("--json", action="store_true", help="one JSON object per line (for scripts)")
    add_database_options(p)
    p.set_defaults(func=func)
    return p


def _run_action(sub: Any, name: str, text: str, func: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
    p = _action(sub, name, text, func)
    p.add_argument("run_id", type=run_id, metavar="RUN_ID", help="the run's id (a UUID)")
    return p


# --- argument types: one clear line on bad input ---------------------------------------------------


def _moment(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:80]!r} is not a time (ISO 8601, e.g. 2026-12-01 or 2026-12-01T08:00Z)") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


# --- the client instance ------------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> Any:
    """A pure client (no engine) on the command's database."""
    from ..engine.instance import Instance

    return Instance(f"cli-{os.getpid()}-{uuid.uuid4().hex[:6]}", database_from_args(args), run_engine=False)


def _with_client(args: argparse.Namespace, fn: Callable[[Any], int]) -> int:
    inst = _client(args)
    try:
        return fn(inst)
    finally:
        inst.close()


# --- output ---------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("ascii", "replace")
    return value


def _json_line(obj: dict[str, Any]) -> None:
    print(json.dumps({k: _plain(v) for k, v in obj.items()}, ensure_ascii=False, default=str), flush=True)


def _when(value: datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    rows = [list(r) for r in rows]
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    for line in [list(header), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


# --- actions ------------------------------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    from .. import api

    def go(inst: Any) -> int:
        page = api.list_runs(state=args.state, workflow=args.workflow, started_after=args.since,
                             started_before=args.until, attributes=dict(args.attrs) or None, limit=args.limit,
                             cursor=args.cursor, instance=inst)
        if args.json:
            for r in page.runs:
                _json_line(asdict(r))
            if page.next_cursor is not None:
                _json_line({"next_cursor": page.next_cursor})
            return EXIT_DONE
        _table(["ID", "WORKFLOW", "STATE", "VERSION", "STARTED", "ENDED", "ATTRIBUTES"],
               [[r.id, r.workflow, r.state, r.version_hash[:12], _when(r.started_at), _when(r.completed_at),
                 json.dumps(r.attributes, ensure_ascii=False)[:60] if r.attributes else ""] for r in page.runs])
        if not page.runs:
            print("(no runs)")
        if page.next_cursor is not None:
            print(f"more: --cursor {page.next_cursor}")
        return EXIT_DONE

    return _with_client(args, go)


def _show(args: argparse.Namespace) -> int:
    from .. import api

    def go(inst: Any) -> int:
        from ..forks import fork_links

        info = api.get_run(args.run_id, instance=inst)
        fields = asdict(info)
        links = fork_links(args.run_id, instance=inst)
        fields["forked_from_run_id"] = None if links.forked_from_run_id is None else str(links.forked_from_run_id)
        fields["forked_at_seq"] = links.forked_at_seq
        fields["forks"] = [str(rid) for rid, _ in links.forks] or None
        if args.json:
            _json_line(fields)
            return EXIT_DONE
        for key, value in fields.items():
            text = json.dumps(value, ensure_ascii=False) if key in ("input", "result", "error") else _plain(value)
            print(f"{key:17} {'—' if value is None else text}")
        return EXIT_DONE

    return _with_client(args, go)


def _events(args: argparse.Namespace) -> int:
    from .. import api

    def go(inst: Any) -> int:
        evs = api.events(args.run_id, instance=inst)
        if args.json:
            for e in evs:
                _json_line(asdict(e))
            return EXIT_DONE
        _table(["SEQ", "EVENT", "AT", "PAYLOAD"],
               [[str(e.seq), e.event_type, _when(e.inserted_at), json.dumps(e.payload, ensure_ascii=False)[:100]]
                for e in evs])
        return EXIT_DONE

    return _with_client(args, go)


def _done(args: argparse.Namespace, what: str, **extra: Any) -> int:
    if args.json:
        _json_line({"run_id": args.run_id, "done": what, **extra})
    else:
        print(f"run {args.run_id}: {what}")
    return EXIT_DONE


def _signal(args: argparse.Namespace) -> int:
    from .. import api

    def go(inst: Any) -> int:
        outcome = api.signal(args.run_id, args.name, args.payload, idempotency_key=args.key, instance=inst)
        what = "delivered" if outcome == "delivered" else "a duplicate of one delivered before (not sent again)"
        return _done(args, f"signal {args.name!r} {what}", signal=args.name, outcome=outcome)

    return _with_client(args, go)


def _cancel(args: argparse.Namespace) -> int:
    from .. import api

    def go(inst: Any) -> int:
        api.cancel(args.run_id, instance=inst)
        return _done(args, "cancelled")

    return _with_client(args, go)


def _resume(args: argparse.Namespace) -> int:
    from .. import api

    def go(inst: Any) -> int:
        api.resume(args.run_id, instance=inst)
        return _done(args, "resumed")

    return _with_client(args, go)


def _upgrade(args: argparse.Namespace) -> int:
    from .. import api
    from ..errors import ConfigurationError

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for module in args.imports:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigurationError(f"--import {module}: {exc}; is it on PYTHONPATH?") from None

    def go(inst: Any) -> int:
        ok = api.upgrade(args.run_id, instance=inst, check_only=args.check)
        if args.check:
            _done(args, "replays cleanly on the newest version" if ok else "does NOT replay on the newest version",
                  replays=ok)
            return EXIT_DONE if ok else EXIT_RUN_FAILED
        return _done(args, "upgraded")

    return _with_client(args, go)


def _wait(args: argparse.Namespace) -> int:
    from .. import api

    def go(inst: Any) -> int:
        try:
            result = api.wait(args.run_id, args.timeout, instance=inst)
        except TimeoutError as exc:
            _report(args, "timeout", str(exc))
            return EXIT_TIMEOUT
        except (RunFailed, RunCancelled, DriftError) as exc:
            state = {RunFailed: "failed", RunCancelled: "cancelled", DriftError: "drifted"}[type(exc)]
            _report(args, state, str(exc), error=getattr(exc, "error", None))
            return EXIT_RUN_FAILED
        if args.json:
            _json_line({"run_id": args.run_id, "state": "completed", "result": result})
        else:
            print(json.dumps(result, ensure_ascii=False))
        return EXIT_DONE

    return _with_client(args, go)


def _report(args: argparse.Namespace, state: str, message: str, **extra: Any) -> None:
    if args.json:
        _json_line({"run_id": args.run_id, "state": state, "message": message, **extra})
    else:
        print(f"continuum runs wait: {message}", file=sys.stderr)


def _prune(args: argparse.Namespace) -> int:
    from .. import api

    def go(inst: Any) -> int:
        report = api.prune(execute=args.execute, drop_keys=args.drop_keys, batch_size=args.batch_size, instance=inst)
        counts = asdict(report)
        if args.json:
            _json_line(counts)
            return EXIT_DONE
        verb = "deleted" if report.executed else "would delete (dry run; --execute deletes)"
        print(f"{verb}: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()
                                      if k not in ("executed", "batches")))
        if report.executed:
            print(f"in {report.batches} transaction(s)")
        return EXIT_DONE

    return _with_client(args, go)
