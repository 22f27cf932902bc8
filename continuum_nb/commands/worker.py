"""``continuum worker``: a headless engine for workflows from importable modules and from stored
``%%workflow`` versions. SIGTERM/SIGINT: stop claiming, finish or release what it holds, exit 0."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
from typing import Any

from ..config import load_config, setting_from_text
from ..errors import ConfigurationError


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "worker", help="run a headless engine", description=__doc__,
    )
    p.add_argument("--instance", metavar="NAME", default="default",
                   help="instance name (database: --database-url, CONTINUUM_<NAME>_DATABASE_URL, CONTINUUM_DATABASE_URL)")
    p.add_argument("--database-url", metavar="URL", help="PostgreSQL URL")
    p.add_argument("--import", dest="imports", metavar="MODULE", action="append", default=[],
                   help="import this module (its @cn.workflow / @cn.activity definitions); repeatable")
    # Read as text: the setting's own rule parses and checks it (docs/settings.md), in one line.
    p.add_argument("--concurrency", metavar="N",
                   help="activity attempts at once (default 8, or CONTINUUM_ACTIVITY_CONCURRENCY)")
    p.add_argument("--lease-ttl", metavar="S",
                   help="lease TTL in seconds, 1 to 86400 (default 30, or CONTINUUM_LEASE_TTL)")
    p.add_argument("--no-stored-code", action="store_true",
                   help="refuse stored %%%%workflow cell sources; run only imported workflows")
    p.add_argument("-v", "--verbose", action="store_true", help="log engine activity")
    p.set_defaults(func=run)


_RUN_EVENTS = ("claimed", "completed", "failed", "drifted", "released")


def _log_runs(instance: str) -> None:
    """With --verbose: one log line per run this worker claims, finishes or lets go of (finished
    runs hold no lease, so this log is where an operator sees which engine finished a run)."""
    from .. import telemetry

    run_log = logging.getLogger("continuum_nb.worker")

    def handler(event: tuple[str, ...], _measurements: dict[str, Any], meta: dict[str, Any]) -> None:
        if meta.get("instance") in (None, instance):
            run_log.info("run %s (%s) %s", meta.get("run_id"), meta.get("workflow"), event[-1])

    telemetry.attach(f"continuum-worker-log-{os.getpid()}", [("continuum", "run", e) for e in _RUN_EVENTS], handler)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings: dict[str, Any] = {}
    if args.concurrency is not None:
        settings["activity_concurrency"] = setting_from_text("activity_concurrency", args.concurrency, "--concurrency")
    if args.lease_ttl is not None:
        settings["lease_ttl"] = setting_from_text("lease_ttl", args.lease_ttl, "--lease-ttl")
    if args.no_stored_code:
        settings["allow_stored_code"] = False
    settings["run_engine"] = True
    if args.database_url:
        settings["database_url"] = args.database_url
    load_config(args.instance, **settings)  # the environment's settings too, before importing anything
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for module in args.imports:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigurationError(f"--import {module}: {exc}; is it on PYTHONPATH?") from None
    from ..engine.instance import Instance

    inst = Instance(args.instance, **settings)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.verbose:
        _log_runs(inst.name)
    engine = inst.start_engine()
    assert engine is not None
    print(f"continuum worker {engine.owner} ready (instance {inst.name}, lease TTL {inst.config.lease_ttl:g}s)", flush=True)
    while not stop.is_set():
        stop.wait(1.0)
        if not engine.running:
            print("continuum worker: engine stopped unexpectedly", file=sys.stderr, flush=True)
            return 1
    inst.stop()
    print(f"continuum worker {engine.owner} stopped", flush=True)
    return 0
