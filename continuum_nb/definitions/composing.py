"""Composing a workflow: the first of several awaitables, sagas, patches and replay-safe logs.

``cn.first`` is a command like ``cn.gather`` (the replayer decides its winner from the journal);
a saga's compensations are ordinary activities journaled as ``compensation_scheduled``;
``cn.patched``/``cn.deprecate_patch`` and ``cn.log`` ask the run's context (the replayer), which
journals ``patched`` and ``workflow_log`` at the live tail only.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Generator
from typing import TYPE_CHECKING, Any

from ..store.payloads import check_json, check_name
from .commands import (
    CommandAwaitable,
    CompensationCommand,
    FirstCommand,
    GatherCommand,
    commands_of,
)
from .context import current, require

if TYPE_CHECKING:
    from .activity import ActivityDef

__all__ = ["LOG_LEVELS", "Saga", "deprecate_patch", "first", "log", "patched", "saga"]

#: The levels ``cn.log(level=...)`` accepts (Python logging's names).
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def first(*awaitables: Awaitable[Any], cancel_others: bool = True) -> Awaitable[tuple[int, Any]]:
    """``index, value = await cn.first(a(x), cn.signal("stop"), cn.timer(cn.hours(1)))``: the
    (argument index, value) of the one that finished first, decided by the journal. A failure of
    the winner is raised. ``cancel_others`` journals the others as cancelled (their timers are
    dropped; an activity's task is not withdrawn, but its outcome is never used)."""
    if not awaitables:
        raise ValueError("cn.first() needs at least one awaitable: cn.first(a(x), cn.timer(cn.minutes(5)))")
    children = commands_of("first", awaitables)
    return CommandAwaitable(FirstCommand("first", "first", children=children, cancel_others=bool(cancel_others)))


# --- patching -----------------------------------------------------------------------------------
def patched(name: str) -> bool:
    """``if cn.patched("fix-rounding"):`` new code ``else:`` old code. True (and journaled as
    ``patched``) when first reached live; False, consuming nothing, when replaying a history
    recorded before the patch. The answer is remembered for the rest of the run."""
    check_name(name, "patch name")
    return require(f"cn.patched({name!r})").patched(name, False)


def deprecate_patch(name: str) -> None:
    """Where ``cn.patched(name)`` was once the old branch is gone: histories with or without the
    marker both replay here; new runs still journal it (for engines running the older code)."""
    check_name(name, "patch name")
    require(f"cn.deprecate_patch({name!r})").patched(name, True)


# --- replay-safe logging --------------------------------------------------------------------------
def log(message: str, *, level: str = "info", **fields: Any) -> None:
    """Inside a workflow: journal ``workflow_log`` and log it (logger ``continuum_nb.workflow``,
    telemetry, the observer) once, at the live tail; a replay logs nothing again. Outside a
    workflow: an ordinary log record."""
    if not isinstance(message, str):
        raise TypeError(f"cn.log message must be a str, not {type(message).__name__}")
    if level not in LOG_LEVELS:
        raise ValueError(f"cn.log level must be one of {', '.join(LOG_LEVELS)}, not {level!r}")
    check_json(fields, "cn.log fields")
    ctx = current()
    if ctx is None:
        logging.getLogger("continuum_nb.workflow").log(
            logging.getLevelName(level.upper()), "%s", message, extra={"continuum_fields": fields})
        return
    ctx.log(message, fields, level)


# --- sagas ------------------------------------------------------------------------------------------
class Saga:
    """Compensations registered as the workflow goes (``saga.add``) and run in reverse
    (``await saga.compensate()``); ``async with cn.saga() as saga:`` compensates on an exception
    and re-raises it."""

    def __init__(self) -> None:
        self._pending: list[tuple[ActivityDef, list[Any], dict[str, Any]]] = []

    def add(self, activity: Any, *args: Any, **kwargs: Any) -> None:
        """Register ``activity(*args, **kwargs)`` as the compensation of the step just done."""
        from .activity import ActivityDef  # (activity.py imports commands; no cycle at import)

        if not isinstance(activity, ActivityDef):
            raise TypeError(f"saga.add takes an @cn.activity and its arguments, not {activity!r}")
        check_json(list(args), f"arguments of compensation {activity.name!r}")
        check_json(dict(kwargs), f"keyword arguments of compensation {activity.name!r}")
        self._pending.append((activity, list(args), dict(kwargs)))

    def __len__(self) -> int:
        return len(self._pending)

    def _commands(self) -> list[CompensationCommand]:
        todo, self._pending = self._pending[::-1], []  # last in, first out; each runs once
        return [CompensationCommand("compensation", act.name, activity=act, args=args, kwargs=kwargs)
                for act, args, kwargs in todo]

    def compensate(self, parallel: bool = False) -> Awaitable[list[Any]]:
        """Run the registered compensations, last in first out (``parallel``: all at once, in
        one commit). Returns their results in that order; a failed one is journaled
        (``compensation_failed``), its ``ActivityFailed`` takes its place, and the rest still run."""
        return _Compensation(self._commands(), parallel)

    async def __aenter__(self) -> Saga:
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc is not None and isinstance(exc, Exception):
            await self.compensate()
        return False  # the exception goes on


class _Compensation:
    """The awaitable of ``saga.compensate()``: one command at a time, or one gather."""

    def __init__(self, commands: list[CompensationCommand], parallel: bool) -> None:
        self.commands = commands
        self.parallel = parallel

    def __await__(self) -> Generator[Any, Any, list[Any]]:
        if current() is None:
            require("await saga.compensate()")
        if not self.commands:
            return []
        if self.parallel:
            gathered = GatherCommand("gather", "gather", children=list(self.commands), return_exceptions=True)
            return (yield from CommandAwaitable(gathered).__await__())
        out: list[Any] = []
        for cmd in self.commands:
            try:
                out.append((yield from CommandAwaitable(cmd).__await__()))
            except Exception as exc:  # noqa: BLE001 - journaled as compensation_failed; the rest still run
                out.append(exc)
        return out


def saga() -> Saga:
    """``saga = cn.saga()`` or ``async with cn.saga() as saga:``."""
    return Saga()
