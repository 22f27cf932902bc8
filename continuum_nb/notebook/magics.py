"""IPython magics: ``%%workflow``, ``%continuum ...`` and ``%%continuum_sql``.

``%load_ext continuum_nb`` registers them; no engine starts until an API call needs one (the
first ``%%workflow`` stores its version, the first ``%continuum start`` ...). ``%unload_ext
continuum_nb`` stops every engine thread this process started.

Errors the user can fix print ONE line, never a traceback: malformed arguments raise IPython's
``UsageError``; a failed operation (unknown run, finished run, timeout, missing extra) raises
``MagicError``, which IPython renders through ``_render_traceback_`` as its message alone.
The magics only call the public API (``continuum_nb`` and ``continuum_nb.api``).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
import warnings
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class, no_var_expand
from IPython.display import display
from traitlets import Bool, Float, Int, Unicode
from traitlets.config import Configurable

from ..errors import ContinuumError
from . import display as views
from .cell import CellError, analyse_cell, free_name_messages, select_workflow
from .parser import (
    ArgumentError,
    HelpShown,
    build_continuum_parser,
    build_sql_parser,
    build_workflow_parser,
    parse,
)

__all__ = ["ContinuumMagics", "MagicError", "load_ipython_extension", "unload_ipython_extension"]

#: Outdated runs checked for a clean replay in one %%workflow summary (each check replays a journal).
UPGRADE_CHECK_LIMIT = 20


class MagicError(Exception):
    """A failed magic; IPython shows only this one-line message."""

    def _render_traceback_(self) -> list[str]:
        return [str(self)]


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _extra_missing(exc: ImportError, extra: str) -> MagicError:
    return MagicError(
        f"{exc.name or 'a package'} is not installed; pip install 'continuum-nb[{extra}]'"
    )


@magics_class
class ContinuumMagics(Magics, Configurable):
    """The continuum_nb magics. Options: ``%config ContinuumMagics.<option> = value``."""

    default_instance = Unicode(
        None, allow_none=True,
        help="Instance used when a magic gets no --instance (None: the default instance).",
    ).tag(config=True)  # fmt: skip
    show_summary = Bool(True, help="Show the %%workflow summary after registering.").tag(
        config=True
    )
    runs_limit = Int(50, help="Rows `%continuum runs` shows without --limit.").tag(config=True)
    wait_timeout = Float(
        60.0, allow_none=True,
        help="Seconds `%continuum wait` (and start --wait) waits without --timeout; None: forever.",
    ).tag(config=True)  # fmt: skip
    check_cell_names = Bool(
        True, help="Tell when a %%workflow cell uses names it neither defines nor imports."
    ).tag(config=True)
    strict_cells = Bool(
        False, help="Refuse (instead of warn about) %%workflow cells that are not self-contained."
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self._parser = build_continuum_parser()
        self._workflow_parser = build_workflow_parser()
        self._sql_parser = build_sql_parser()
        #: (instance, workflow) -> the version the last %%workflow registered, to say "unchanged".
        self._versions: dict[tuple[str | None, str], str] = {}

    # ---- helpers

    def _instance(self, args: argparse.Namespace) -> str | None:
        return args.instance or self.default_instance or None

    def _parse(self, parser: argparse.ArgumentParser, line: str) -> argparse.Namespace | None:
        try:
            return parse(parser, line, self.shell.user_ns if self.shell is not None else None)
        except ArgumentError as exc:
            raise UsageError(str(exc)) from None
        except HelpShown:
            return None

    # ---- %%workflow

    @no_var_expand
    @cell_magic
    def workflow(self, line: str, cell: str) -> None:
        args = self._parse(self._workflow_parser, line)
        if args is None:
            return
        try:
            info = analyse_cell(cell)
            name = select_workflow(info, args.name)
        except CellError as exc:
            raise UsageError(str(exc)) from None
        except SyntaxError as exc:
            raise UsageError(
                f"%%workflow: line {exc.lineno}: {exc.msg} (a workflow cell must be plain Python: "
                "no %magics or !commands)"
            ) from None
        user_ns = self.shell.user_ns if self.shell is not None else {}
        problems = free_name_messages(info.free_names, user_ns) if self.check_cell_names else []
        if problems and self.strict_cells:
            raise UsageError(f"%%workflow: {problems[0]} (ContinuumMagics.strict_cells is on)")

        code = compile(cell, self._cell_filename(cell), "exec")
        exec(code, user_ns)  # noqa: S102 - the user's own cell, run like any other cell
        fn = user_ns.get(name)
        fn = getattr(fn, "fn", fn)  # tolerate a cell that also decorated it with @cn.workflow
        if not inspect.iscoroutinefunction(fn):
            raise UsageError(f"%%workflow: `{name}` is no longer an async def after the cell ran")

        instance = self._instance(args)
        wf = self._register(fn, name, cell, instance)
        previous = self._versions.get((instance, wf.name))
        self._versions[(instance, wf.name)] = wf.version_hash
        user_ns[name] = wf  # like a decorator: cn.start(order, ...) works on the name
        if not self.show_summary:
            for problem in problems:
                warnings.warn(f"%%workflow {name}: {problem}", UserWarning, stacklevel=1)
            return
        outdated = self._outdated(wf.name, instance)
        summary = views.WorkflowSummary(
            name=wf.name,
            version_hash=wf.version_hash,
            instance=instance,
            activities=list(getattr(wf, "activities", []) or []),
            findings=[_finding_text(f) for f in getattr(wf, "findings", []) or []],
            cell_problems=problems,
            outdated=outdated,
            previous_version=previous,
        )
        display(summary)
        buttons = views.upgrade_buttons(
            outdated, lambda run_id: self._api().upgrade(run_id, instance=instance)
        )
        if buttons is not None:
            display(buttons)

    def _cell_filename(self, cell: str) -> str:
        # Registering the cell with IPython's compiler cache makes tracebacks show its lines.
        try:
            return str(self.shell.compile.cache(cell))  # type: ignore[union-attr]
        except Exception:
            return "<workflow cell>"

    def _register(self, fn: Callable[..., Any], name: str, cell: str, instance: str | None) -> Any:
        from ..determinism import DeterminismWarning
        from ..workflow import workflow as define_workflow

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                wf = define_workflow(fn, name=name, source=cell, instance=instance)
            except ContinuumError as exc:
                raise MagicError(f"%%workflow {name}: {_one_line(exc)}") from None
        for w in caught:
            # Determinism findings appear in the summary (wf.findings); anything else is re-shown.
            if not (issubclass(w.category, DeterminismWarning) and self.show_summary):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return wf

    def _outdated(self, workflow: str, instance: str | None) -> list[views.OutdatedRun]:
        from .. import api

        try:
            runs = api.outdated_runs(workflow, instance=instance)
        except ContinuumError as exc:
            raise MagicError(f"%%workflow {workflow}: registered, but runs on older versions "
                             f"could not be listed: {_one_line(exc)}") from None  # fmt: skip
        out = []
        for i, r in enumerate(runs):
            upgradable: bool | None = None
            note = (
                f"over {UPGRADE_CHECK_LIMIT} outdated runs; use %continuum upgrade RUN_ID --check"
            )
            if i < UPGRADE_CHECK_LIMIT:
                note = ""
                try:
                    upgradable = bool(api.upgrade(str(r.id), instance=instance, check_only=True))
                except ContinuumError as exc:
                    upgradable, note = False, _one_line(exc)
            out.append(views.OutdatedRun(str(r.id), r.state, r.version_hash, upgradable, note))
        return out

    @staticmethod
    def _api() -> Any:
        return importlib.import_module("continuum_nb.api")

    # ---- %continuum

    @no_var_expand
    @line_magic
    def continuum(self, line: str) -> Any:
        args = self._parse(self._parser, line)
        if args is None:
            return None
        handler = getattr(self, "_cmd_" + args.command.replace("-", "_"))
        prefix = f"%continuum {args.command}"
        try:
            return handler(args, self._instance(args))
        except MagicError:
            raise
        except ImportError as exc:
            extra = "notebook" if args.command == "observe" else "analytics"
            raise _extra_missing(exc, extra) from None
        except ContinuumError as exc:
            raise MagicError(f"{prefix}: {_one_line(exc)}") from None
        except TimeoutError as exc:
            raise MagicError(
                f"{prefix}: {_one_line(exc)}; wait again, or pass --timeout SECONDS"
            ) from None
        except (TypeError, ValueError) as exc:  # a value the API refused (docs/semantics.md)
            raise MagicError(f"{prefix}: {_one_line(exc)}") from None

    def _cmd_start(self, args: argparse.Namespace, instance: str | None) -> Any:
        if args.many is not None:
            return self._start_many(args, instance)
        api = self._api()
        run = api.start(args.workflow, args.input, instance=instance, run_id=args.run_id,
                        idempotency_key=args.key, attributes=dict(args.attrs) or None)
        if args.wait:
            return api.wait(run.id, timeout=self._timeout(args), instance=instance)
        if getattr(run, "existing", False):
            print(f"run {run.id} of {args.workflow} already started with key {args.key!r} (not started again)")
        else:
            print(f"started run {run.id} of {args.workflow}")
        return run

    def _start_many(self, args: argparse.Namespace, instance: str | None) -> Any:
        given = [flag for flag, value in (("an input", args.input), ("--run-id", args.run_id), ("--key", args.key),
                                          ("--wait", args.wait)) if value]
        if given:
            raise MagicError(f"%continuum start --many: {given[0]} cannot be combined with --many "
                             "(each input of FILE is one run; wait on the returned runs)")
        from ..bulk import read_inputs, start_many

        runs = start_many(args.workflow, read_inputs(args.many), attributes=dict(args.attrs) or None,
                          instance=instance)
        print(f"started {len(runs)} runs of {args.workflow} from {args.many}")
        return runs

    def _cmd_signal(self, args: argparse.Namespace, instance: str | None) -> None:
        self._api().signal(args.run_id, args.name, args.payload, instance=instance)
        print(f"sent signal {args.name!r} to run {args.run_id}")

    def _cmd_cancel(self, args: argparse.Namespace, instance: str | None) -> None:
        self._api().cancel(args.run_id, instance=instance)
        print(f"cancelled run {args.run_id}")

    def _cmd_wait(self, args: argparse.Namespace, instance: str | None) -> Any:
        from . import progress

        wait = progress.wait if progress.in_kernel_main_thread() else self._api().wait   # a live line in Jupyter
        return wait(args.run_id, timeout=self._timeout(args), instance=instance)

    def _timeout(self, args: argparse.Namespace) -> float | None:
        return args.timeout if args.timeout is not None else self.wait_timeout

    def _cmd_resume(self, args: argparse.Namespace, instance: str | None) -> None:
        self._api().resume(args.run_id, instance=instance)
        print(f"resumed run {args.run_id}")

    def _cmd_upgrade(self, args: argparse.Namespace, instance: str | None) -> bool:
        api = self._api()
        if args.check:
            ok = bool(api.upgrade(args.run_id, instance=instance, check_only=True))
            print(
                f"run {args.run_id} {'replays cleanly on the newest version' if ok else 'would drift'}"
            )
            return ok
        api.upgrade(args.run_id, instance=instance)
        info = api.get_run(args.run_id, instance=instance)
        print(f"run {args.run_id} upgraded to version {views.short_hash(info.version_hash)}")
        return True

    def _cmd_replay(self, args: argparse.Namespace, instance: str | None) -> Any:
        travel = importlib.import_module("continuum_nb.timetravel")
        return travel.replay(args.run_id, upto=args.upto, instance=instance)

    def _cmd_fork(self, args: argparse.Namespace, instance: str | None) -> Any:
        forks = importlib.import_module("continuum_nb.forks")
        run = forks.fork(args.run_id, at_seq=args.at_seq, version=args.version, instance=instance)
        print(f"forked run {run.id} from {args.run_id} at event {args.at_seq}")
        return run

    def _cmd_runs(self, args: argparse.Namespace, instance: str | None) -> Any:
        limit = args.limit if args.limit is not None else self.runs_limit
        if args.attrs:
            runs = self._api().list_runs(
                state=args.state, workflow=args.workflow, attributes=dict(args.attrs), limit=limit,
                instance=instance,
            ).runs
        else:
            runs = self._api().runs(
                state=args.state, workflow=args.workflow, limit=limit, instance=instance
            )
        return views.RunsTable(runs)

    def _cmd_show(self, args: argparse.Namespace, instance: str | None) -> Any:
        return views.RunDetail(self._api().get_run(args.run_id, instance=instance))

    def _cmd_events(self, args: argparse.Namespace, instance: str | None) -> Any:
        events = self._api().events(args.run_id, instance=instance)
        return views.table(views.event_rows(events), views.EVENT_COLUMNS, index="seq")

    def _cmd_observe(self, args: argparse.Namespace, instance: str | None) -> Any:
        from ..observer import observer

        return observer(instance=instance, read_only=args.read_only)

    def _cmd_partitions(self, args: argparse.Namespace, instance: str | None) -> Any:
        from . import operations

        return operations.partitions(args.action, instance, month=getattr(args, "month", None),
                                     execute=getattr(args, "execute", False))  # fmt: skip

    def _cmd_analytics(self, args: argparse.Namespace, instance: str | None) -> Any:
        from . import operations

        return operations.analytics(args.query, instance, plot=args.plot)

    # ---- %%continuum_sql

    @no_var_expand
    @cell_magic
    def continuum_sql(self, line: str, cell: str) -> Any:
        args = self._parse(self._sql_parser, line)
        if args is None:
            return None
        if not cell.strip():
            raise UsageError(
                "%%continuum_sql: the cell is empty; write a query, e.g. SELECT state, count(*) FROM runs GROUP BY 1"
            )
        try:
            import duckdb

            from .. import analytics
        except ImportError as exc:
            raise _extra_missing(exc, "analytics") from None
        try:
            frame = analytics.sql(cell, instance=self._instance(args))
        except (ContinuumError, duckdb.Error) as exc:
            # SQL mistakes (unknown column, syntax, a write to a read-only view) are the user's to fix.
            raise MagicError(f"%%continuum_sql: {_one_line(exc)}") from None
        if args.out and self.shell is not None:
            self.shell.user_ns[args.out] = frame
        return frame


def _finding_text(finding: Any) -> str:
    message = getattr(finding, "message", None) or str(finding)
    line = getattr(finding, "lineno", None)
    return f"line {line}: {message}" if line else str(message)


# %continuum? shows the full grammar.
ContinuumMagics.continuum.__doc__ = build_continuum_parser().format_help()
ContinuumMagics.workflow.__doc__ = build_workflow_parser().format_help()
ContinuumMagics.continuum_sql.__doc__ = build_sql_parser().format_help()

_MAGIC_NAMES = {"line": ("continuum",), "cell": ("workflow", "continuum_sql")}


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext continuum_nb``: register the magics (no engine starts yet)."""
    magics = ContinuumMagics(shell=ipython, config=ipython.config)
    ipython.register_magics(magics)
    ipython.configurables.append(magics)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext continuum_nb``: remove the magics and stop every instance of this process."""
    manager = ipython.magics_manager
    for kind, names in _MAGIC_NAMES.items():
        for name in names:
            manager.magics[kind].pop(name, None)
    manager.registry.pop(ContinuumMagics.__name__, None)
    ipython.configurables[:] = [
        c for c in ipython.configurables if not isinstance(c, ContinuumMagics)
    ]
    stop_engines()


def stop_engines() -> None:
    """Stop every instance of this process: its engine thread, listeners and connection pool.

    Instances are closed, not just stopped, so that no thread is left behind (a pool keeps worker
    threads). The default instance is created again on the next API call; named instances must be
    created again with ``cn.Instance(...)``.
    """
    module = sys.modules.get("continuum_nb.engine.instance")
    if module is not None:  # else no instance was ever created, so no thread exists
        for inst in module.all_instances():
            inst.close()
    analytics = sys.modules.get("continuum_nb.analytics")
    if analytics is not None:
        analytics.close_shared()  # DuckDB connections attached to those databases
