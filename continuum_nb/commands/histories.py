"""``continuum runs export|replay|fork``: a run's recorded history, as JSON, replayed against
the code, or forked into a new run.

``replay`` opens the database read-only (every transaction is ``default_transaction_read_only``):
whatever the workflow code does, the server refuses to write.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError, DriftError
from ..notebook.parser import event_number
from ._common import EXIT_DONE, EXIT_RUN_FAILED, database_from_args

__all__ = ["register"]

Action = Callable[[Any, str, str, Callable[[argparse.Namespace], int]], argparse.ArgumentParser]


def register(sub: Any, run_action: Action) -> None:
    exp = run_action(sub, "export", "the run's history as JSON (for cn.testing.replay in a test suite)", _export)
    exp.add_argument("--output", "-o", metavar="FILE", help="write it to FILE (default: standard output)")
    rep = run_action(sub, "replay", "replay the run's history against the code, reading only (exit 1 on drift)", _replay)
    rep.add_argument("--against", dest="against", metavar="MODULE", action="append", default=[],
                     help="module (or .py file) defining the workflow to check (repeatable; default: the run's "
                          "own version, stored or defined here)")
    fork = run_action(sub, "fork", "start a new run from the first N events of this one, on the newest code", _fork)
    fork.add_argument("--at", dest="at_seq", type=event_number, required=True, metavar="N",
                      help="keep the journal up to and including event N")
    fork.add_argument("--against", dest="against", metavar="MODULE", action="append", default=[],
                      help="module (or .py file) defining the new code (repeatable)")
    fork.add_argument("--version", default="newest", metavar="VERSION",
                      help="the code the fork runs on: newest (default), original, or a version hash")


def import_modules(modules: list[str]) -> None:
    """Import what ``--against`` names: a module path on PYTHONPATH (or the current directory),
    or a ``.py`` file."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for module in modules:
        try:
            if module.endswith(".py"):
                path = Path(module)
                if not path.is_file():
                    raise ImportError(f"no file {module!r}")
                spec = importlib.util.spec_from_file_location(f"continuum_against_{path.stem}", path)
                if spec is None or spec.loader is None:
                    raise ImportError(f"cannot load {module!r}")
                mod = importlib.util.module_from_spec(spec)
                sys.modules[spec.name] = mod
                spec.loader.exec_module(mod)
            else:
                importlib.import_module(module)
        except ImportError as exc:
            raise ConfigurationError(f"--against {module}: {exc}; is it on PYTHONPATH?") from None


def _instance(args: argparse.Namespace, *, read_only: bool) -> Any:
    from ..engine.instance import Instance
    from ..store.database import read_only as read_only_url

    url = database_from_args(args)
    return Instance(f"cli-{os.getpid()}-{uuid.uuid4().hex[:6]}", read_only_url(url) if read_only else url,
                    run_engine=False)


def _export(args: argparse.Namespace) -> int:
    from ..history import export_history

    inst = _instance(args, read_only=True)
    try:
        text = json.dumps(export_history(args.run_id, instance=inst), indent=1, ensure_ascii=False)
    finally:
        inst.close()
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
        if not args.json:
            print(f"run {args.run_id}: history written to {args.output}")
    else:
        print(text)
    return EXIT_DONE


def _replay(args: argparse.Namespace) -> int:
    from ..history import replay_run

    import_modules(args.against)
    inst = _instance(args, read_only=True)
    try:
        found = None
        if args.against:
            from ..definitions.registry import GLOBAL

            name = inst.store.get_run(uuid.UUID(args.run_id))
            found = GLOBAL.latest(name.workflow) if name is not None else None
            if name is not None and found is None:
                raise ConfigurationError(f"--against {' '.join(args.against)} defines no workflow {name.workflow!r}")
        try:
            outcome = replay_run(args.run_id, workflow=found, instance=inst)
        except DriftError as exc:
            if args.json:
                print(json.dumps({"run_id": args.run_id, "outcome": "drift", "seq": exc.seq,
                                  "expected": exc.expected, "actual": exc.actual, "message": str(exc)}, default=str))
            else:
                print(f"continuum runs replay: run {args.run_id}: {exc}", file=sys.stderr)
            return EXIT_RUN_FAILED
    finally:
        inst.close()
    if args.json:
        print(json.dumps({"run_id": args.run_id, "outcome": outcome}))
    else:
        print(f"run {args.run_id}: replays on this code: {outcome}")
    return EXIT_DONE


def _fork(args: argparse.Namespace) -> int:
    from ..forks import fork

    import_modules(args.against)
    inst = _instance(args, read_only=False)
    try:
        run = fork(args.run_id, at_seq=args.at_seq, version=args.version, instance=inst)
    finally:
        inst.close()
    if args.json:
        print(json.dumps({"run_id": run.id, "forked_from_run_id": args.run_id, "forked_at_seq": args.at_seq}))
    else:
        print(f"run {run.id}: forked from {args.run_id} at event {args.at_seq}; a worker runs it on the newest code")
    return EXIT_DONE
