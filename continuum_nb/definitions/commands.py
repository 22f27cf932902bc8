"""Commands: what a workflow's awaitables yield to whoever drives its coroutine.

A workflow is an ``async def`` that never runs on an event loop: the engine drives its coroutine
with ``send()``/``throw()``. Each awaitable here (an activity call, ``signal``, ``timer``,
``gather``) yields one *command* from ``__await__``; the replayer answers it from the journal or
records it at the live tail. Awaiting anything else inside a workflow fails with a clear error.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Generator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..store.payloads import check_name
from .context import current, require

if TYPE_CHECKING:
    from .activity import ActivityDef

__all__ = [
    "ActivityCommand",
    "Command",
    "CommandAwaitable",
    "CompensationCommand",
    "FirstCommand",
    "GatherCommand",
    "SignalCommand",
    "TimerCommand",
    "as_seconds",
    "gather",
    "signal",
    "timer",
]


@dataclass
class Command:
    """One effect a workflow asks for. ``kind`` + ``target`` (+ ordinal, assigned by the replayer)
    is its identity in the journal; line numbers never are."""

    kind: str  # "activity" | "compensation" | "signal" | "timer" | "gather" | "first"
    target: str


@dataclass
class ActivityCommand(Command):
    activity: ActivityDef | None = None
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class CompensationCommand(ActivityCommand):
    """An activity run as a saga's compensation: journaled as ``compensation_scheduled``."""


@dataclass
class SignalCommand(Command):
    timeout: float | None = None


@dataclass
class TimerCommand(Command):
    seconds: float = 0.0


@dataclass
class GatherCommand(Command):
    children: list[Command] = field(default_factory=list)
    return_exceptions: bool = False


@dataclass
class FirstCommand(GatherCommand):
    """``cn.first``: the first of its children to finish, by journal order."""

    cancel_others: bool = True


class CommandAwaitable:
    """Base of every workflow awaitable: yields its command, returns the engine's answer."""

    __slots__ = ("command",)

    def __init__(self, command: Command) -> None:
        self.command = command

    def __await__(self) -> Generator[Command, Any, Any]:
        if current() is None:  # (the message is only built when it is needed)
            require("await " + self._describe())
        return (yield self.command)

    def _describe(self) -> str:
        return f"{self.command.kind} {self.command.target!r}"

    def __repr__(self) -> str:
        return f"<continuum {self._describe()}>"


#: The longest duration a timer, timeout or retry delay may have: 100 years (PostgreSQL stores
#: timestamps far beyond that; Python's datetime does not).
MAX_SECONDS = 100 * 365.25 * 86400


def as_seconds(value: timedelta | float | int, what: str) -> float:
    """A duration given as a timedelta or a number of seconds, checked and in seconds: finite,
    not negative, at most MAX_SECONDS."""
    if isinstance(value, timedelta):
        secs = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            secs = float(value)
        except OverflowError:
            secs = float("inf")
    else:
        raise TypeError(f"{what} must be a timedelta (cn.seconds(n)) or a number of seconds, not {value!r}")
    if not 0 <= secs <= MAX_SECONDS:  # also refuses NaN
        raise ValueError(f"{what} must be between 0 and {MAX_SECONDS:.0f} seconds (100 years), not {value!r}")
    return secs


def signal(name: str, timeout: timedelta | float | None = None) -> Awaitable[Any]:
    """Inside a workflow: ``await cn.signal(name, timeout=...)`` → the signal's payload, or
    ``SignalTimeout``. (Outside a workflow, ``cn.signal(run_id, name, payload)`` sends one; that
    is ``continuum_nb.api.signal``, which dispatches here when called inside a workflow.)"""
    check_name(name, "signal name")
    secs = None if timeout is None else as_seconds(timeout, "signal timeout")
    return CommandAwaitable(SignalCommand("signal", name, timeout=secs))


def timer(duration: timedelta | float) -> Awaitable[None]:
    """``await cn.timer(cn.minutes(5))``: a durable sleep that survives restarts."""
    return CommandAwaitable(TimerCommand("timer", "timer", seconds=as_seconds(duration, "timer duration")))


def gather(*awaitables: Awaitable[Any], return_exceptions: bool = False) -> Awaitable[list[Any]]:
    """Run activities (or timers/signals) in parallel: all are journaled in one commit and the
    workflow suspends once; returns their results in argument order. If any fails, the first
    failure (in argument order) is raised once all have finished, unless ``return_exceptions``:
    then each failure takes its place in the list."""
    children = commands_of("gather", awaitables)
    return CommandAwaitable(GatherCommand("gather", "gather", children=children,
                                          return_exceptions=bool(return_exceptions)))


def commands_of(what: str, awaitables: tuple[Any, ...]) -> list[Command]:
    """The commands of ``cn.gather``/``cn.first``'s arguments, or one clear error (an awaited
    call, a coroutine, anything else)."""
    children: list[Command] = []
    for i, aw in enumerate(awaitables):
        if not isinstance(aw, CommandAwaitable) or (what == "first" and isinstance(aw.command, GatherCommand)):
            for other in awaitables:
                if inspect.iscoroutine(other):
                    other.close()
            raise TypeError(
                f"cn.{what} argument {i} is {aw!r}; {what} takes activity calls, cn.timer() and "
                f"cn.signal() awaitables (call the activity without awaiting it: cn.{what}(a(x), b(y)))"
            )
        children.append(aw.command)
    return children
