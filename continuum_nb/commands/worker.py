"""``continuum worker``: a headless engine for workflows from importable modules and from stored
``%%workflow`` versions.

It prints one ready line naming what it runs, logs each claim, run end and lost lease (to stderr;
``--log-format json`` gives one JSON object per line), and on SIGTERM or SIGINT it drains: it
stops claiming, lets the wakes and activity attempts in flight finish for up to
``--drain-timeout`` seconds, releases its leases and exits 0. Past that bound it exits 1 anyway,
naming the runs and tasks whose leases are left to expire. A second signal exits at once."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import math
import os
import signal
import sys
import threading
import time
import traceback
from datetime import datetime, timezone
from typing import Any

from ..config import load_config, setting_from_text
from ..errors import ConfigurationError

_EPILOG = """\
examples:
  continuum worker --import myapp.workflows
  continuum worker --import myapp.workflows --no-stored-code --concurrency 16 --log-format json
  continuum worker --database-url postgresql://app@db:5432/orders --drain-timeout 20 --quiet

output: the ready line and the stop line on stdout; one log line per claim, run end and lost
lease on stderr (with --quiet only errors: failed and drifted runs, engine errors).
exit status: 0 after a clean drain; 1 when the drain bound was reached (the lines say which
leases are left to expire) or the engine stopped on its own; 2 for bad options or a module
that cannot be imported."""

log = logging.getLogger("continuum_nb.worker")


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "worker", help="run a headless engine", description=__doc__, epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    p.add_argument("--drain-timeout", metavar="S", default="30",
                   help="on SIGTERM/SIGINT, seconds to let work in flight finish before exiting anyway (default 30)")
    p.add_argument("--log-format", choices=("text", "json"), default="text",
                   help="text (default) or json: one JSON object per line, stdout and stderr alike")
    noise = p.add_mutually_exclusive_group()
    noise.add_argument("-q", "--quiet", action="store_true", help="log only errors")
    noise.add_argument("-v", "--verbose", action="store_true", help="also log the engine's own info lines")
    p.set_defaults(func=run)


# --- output ----------------------------------------------------------------------------------------

def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {"ts": _utc_now(), "level": record.levelname.lower(), "logger": record.name,
                                "message": record.getMessage()}
        data.update(getattr(record, "fields", {}))
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def _setup_logging(args: argparse.Namespace) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if args.log_format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    logging.captureWarnings(True)  # a PartitionWarning, say: formatted, and silenced by --quiet
    root.setLevel(logging.ERROR if args.quiet else logging.INFO if args.verbose else logging.WARNING)
    log.setLevel(logging.ERROR if args.quiet else logging.INFO)


def _say(args: argparse.Namespace, event: str, text: str, *, err: bool = False, **fields: Any) -> None:
    """A line of the worker's own (ready, draining, stopped) on stdout, or stderr for ``err``."""
    if args.log_format == "json":
        line = json.dumps({"ts": _utc_now(), "level": "error" if err else "info", "logger": log.name,
                           "event": event, "message": text, **fields}, default=str)
    else:
        line = text
    print(line, file=sys.stderr if err else sys.stdout, flush=True)


_RUN_EVENTS = ("claimed", "completed", "failed", "drifted", "released")


def _log_runs(instance: str) -> str:
    """One log line per claim, run end and lost lease of this worker's engine (finished runs hold
    no lease, so this log is where an operator sees which engine finished a run)."""
    from .. import telemetry

    def handler(event: tuple[str, ...], measurements: dict[str, Any], meta: dict[str, Any]) -> None:
        if meta.get("instance") not in (None, instance):
            return
        what = "lease.lost" if event[1] == "lease" else f"run.{event[-1]}"
        fields: dict[str, Any] = {"event": what, "run_id": meta.get("run_id"), "workflow": meta.get("workflow"),
                                  "lease_token": meta.get("lease_token")}
        level, detail = logging.INFO, ""
        if what == "run.claimed":
            fields["resumed"] = bool(meta.get("resumed"))
            detail = f", lease {meta.get('lease_token')}" + (", resumed" if meta.get("resumed") else "")
        if "duration" in measurements:
            fields["duration_ms"] = round(measurements["duration"] / 1e6, 3)
            detail += f" in {fields['duration_ms']:.0f} ms"
        error = meta.get("error")
        if isinstance(error, dict):
            message = str(error.get("message") or "").strip().splitlines()
            fields["error"] = {"type": error.get("type"), "message": message[0] if message else ""}
            detail += f": {error.get('type')}: {fields['error']['message']}"
        if what in ("run.failed", "run.drifted"):
            level = logging.ERROR
        elif what == "lease.lost":
            level, detail = logging.WARNING, f" (stale token {meta.get('lease_token')}; another engine holds it now)"
        verb = "lost its lease" if what == "lease.lost" else event[-1]
        log.log(level, "run %s (%s) %s%s", meta.get("run_id"), meta.get("workflow"), verb, detail,
                extra={"fields": fields})

    events = [("continuum", "run", e) for e in _RUN_EVENTS] + [("continuum", "lease", "lost")]
    return telemetry.attach(f"continuum-worker-log-{os.getpid()}", events, handler)


# --- start -----------------------------------------------------------------------------------------

def _import(module: str) -> None:
    """Import ``module``; one line when it cannot be found or when importing it raised."""
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and (module == exc.name or module.startswith(exc.name + ".")):
            raise ConfigurationError(
                f"--import {module}: no module named {exc.name!r} (looked in the current directory and on "
                "PYTHONPATH; is it installed, or is the name misspelt?)"
            ) from None
        raise ConfigurationError(_raised(module, exc)) from None
    except (Exception, SystemExit) as exc:
        raise ConfigurationError(_raised(module, exc)) from None


def _raised(module: str, exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<frozen")]
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    message = (str(exc).strip().splitlines() or [""])[0]
    return f"--import {module}: importing it raised {type(exc).__name__}: {message}{where}"


def _drain_timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 86400:
        raise ValueError(f"--drain-timeout must be a number of seconds from 0 to 86400, not {text!r}")
    return value


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    settings: dict[str, Any] = {"run_engine": True}
    if args.concurrency is not None:
        settings["activity_concurrency"] = setting_from_text("activity_concurrency", args.concurrency, "--concurrency")
    if args.lease_ttl is not None:
        settings["lease_ttl"] = setting_from_text("lease_ttl", args.lease_ttl, "--lease-ttl")
    if args.no_stored_code:
        settings["allow_stored_code"] = False
    if args.database_url:
        settings["database_url"] = args.database_url
    return settings


def _names(items: list[str]) -> str:
    return ", ".join(items) if items else "none"


def _ready(args: argparse.Namespace, inst: Any, owner: str, drain: float) -> None:
    from ..definitions.activity import ACTIVITIES

    imported = sorted({n for reg in inst.registries for n in reg.names()})
    stored: list[str] = []
    stored_text = "refused (stored code not allowed)"
    if inst.config.allow_stored_code:
        try:
            stored = sorted(set(inst.store.stored_workflow_names()) - set(imported))
            stored_text = _names(stored)
        except Exception as exc:  # the database is away right now: the engine retries, say so here
            stored_text = f"unknown ({(str(exc).strip().splitlines() or [type(exc).__name__])[0]})"
    activities = sorted(ACTIVITIES)
    _say(args, "ready",
         f"continuum worker {owner} ready (instance {inst.name}, lease TTL {inst.config.lease_ttl:g}s, "
         f"drain {drain:g}s; workflows: {_names(imported)}; stored %%workflow: {stored_text}; "
         f"activities: {_names(activities)})",
         owner=owner, instance=inst.name, lease_ttl=inst.config.lease_ttl, drain_timeout=drain,
         workflows=imported, stored_workflows=stored, stored_code=inst.config.allow_stored_code,
         activities=activities)


# --- run and drain ---------------------------------------------------------------------------------

def run(args: argparse.Namespace) -> int:
    drain = _drain_timeout(args.drain_timeout)
    _setup_logging(args)
    settings = _settings(args)
    config = load_config(args.instance, **settings)  # the environment's settings too, before importing anything
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for module in args.imports:
        _import(module)
    from ..engine.instance import Instance

    inst = Instance(args.instance, **settings)
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        if stop.is_set():
            _say(args, "abandoned", f"continuum worker: second {signal.Signals(signum).name}: exiting now; the "
                 "leases still held expire within the lease TTL", err=True)
            os._exit(1)
        received.append(signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if drain > config.lease_ttl:
        log.warning("--drain-timeout %gs is longer than the lease TTL %gs: leases are not renewed while draining, "
                    "so work still running after %gs may be taken over by another engine", drain,
                    config.lease_ttl, config.lease_ttl)
    _log_runs(inst.name)
    engine = inst.start_engine()
    assert engine is not None
    _ready(args, inst, engine.owner, drain)
    while not stop.is_set():
        stop.wait(1.0)
        if not engine.running and not stop.is_set():
            _say(args, "crashed", "continuum worker: engine stopped unexpectedly", err=True)
            return 1
    return _drain(args, inst, engine, drain, signal.Signals(received[0]).name if received else "signal")


def _drain(args: argparse.Namespace, inst: Any, engine: Any, drain: float, why: str) -> int:
    owner = engine.owner
    _say(args, "draining", f"continuum worker {owner} draining on {why}: claiming nothing new, waiting up to "
         f"{drain:g}s for {len(engine.held)} held run(s) and {len(engine.activities.inflight)} activity "
         "attempt(s) in flight", owner=owner, signal=why, drain_timeout=drain)
    conninfo = inst.conninfo
    # Should the engine thread not come back (a database call stuck past its own timeouts), the
    # process still ends within a bound it printed.
    watchdog = threading.Timer(drain + 30, _give_up, (args, owner, drain))
    watchdog.daemon = True
    watchdog.start()
    t0 = time.monotonic()
    inst.stop(timeout=drain)
    took = time.monotonic() - t0
    busy = [f for f in engine.drives.running if not f.done()]
    left, error = _leases_left(conninfo, owner)
    watchdog.cancel()
    if error is None and not left and not busy and not engine.activities.inflight:
        _say(args, "stopped", f"continuum worker {owner} stopped: drained in {took:.1f}s, no lease left",
             owner=owner, drained_s=round(took, 3))
        return 0
    if error is not None:
        detail = f"could not check which leases are left ({error})"
    elif left:
        detail = "left to lease expiry: " + "; ".join(
            f"run {i} ({name})" if kind == "run" else f"task {i} ({name}) of run {run_id}"
            for kind, i, name, run_id, _ in left)
    else:
        detail = "every lease was released; the wakes still running will find their leases gone"
    _say(args, "drain_timeout", f"continuum worker {owner}: drain bound of {drain:g}s reached ({took:.1f}s); "
         f"abandoning what still runs ({len(busy)} wake thread(s), {len(engine.activities.inflight)} activity "
         f"attempt(s)); {detail}",
         err=True, owner=owner, left=[{"kind": k, "id": i, "name": n, "run_id": r} for k, i, n, r, _ in left])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)  # the abandoned threads would keep the interpreter from exiting


def _leases_left(conninfo: str, owner: str) -> tuple[list[Any], str | None]:
    from ..store.health_sql import leases_held_by
    from ..store.migrate import connect

    try:
        with connect(conninfo, autocommit=True, application_name="continuum_nb worker drain") as conn:
            return leases_held_by(conn, owner), None
    except Exception as exc:  # the database is down: say so rather than guess
        return [], (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _give_up(args: argparse.Namespace, owner: str, drain: float) -> None:
    _say(args, "drain_timeout", f"continuum worker {owner}: still stopping {drain + 30:g}s after the signal; "
         "exiting now, the leases still held expire within the lease TTL", err=True, owner=owner)
    os._exit(1)
