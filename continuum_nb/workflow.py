"""Defining workflows and activities, and the awaitables a workflow uses.

A workflow is an ``async def`` that never runs on an event loop: the engine drives its coroutine
with ``send()``/``throw()``. Each awaitable here (an activity call, ``signal``, ``timer``,
``gather``) yields one *command* from ``__await__``; the engine answers it from the journal
(replay) or records it (live tail). Awaiting anything else inside a workflow fails with a clear
error.
"""

from __future__ import annotations

import hashlib
import inspect
import textwrap
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar, overload

from . import _context
from .errors import ConfigurationError

__all__ = [
    "ActivityDef",
    "Retry",
    "WorkflowDef",
    "activity",
    "gather",
    "pure",
    "signal",
    "timer",
    "workflow",
]

F = TypeVar("F", bound=Callable[..., Any])


# --------------------------------------------------------------------------------------------
# commands: what a workflow's awaitables yield to the engine
# --------------------------------------------------------------------------------------------


@dataclass
class Command:
    """One effect a workflow asks for. ``kind`` + ``target`` (+ ordinal, assigned by the replayer)
    is its identity in the journal; line numbers never are."""

    kind: str  # "activity" | "signal" | "timer" | "gather"
    target: str


@dataclass
class ActivityCommand(Command):
    activity: ActivityDef | None = None
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class SignalCommand(Command):
    timeout: float | None = None


@dataclass
class TimerCommand(Command):
    seconds: float = 0.0


@dataclass
class GatherCommand(Command):
    children: list[Command] = field(default_factory=list)


class _CommandAwaitable:
    """Base of every workflow awaitable: yields its command, returns the engine's answer."""

    __slots__ = ("command",)

    def __init__(self, command: Command) -> None:
        self.command = command

    def __await__(self) -> Generator[Command, Any, Any]:
        if _context.current() is None:  # (the message is only built when it is needed)
            _context.require("await " + self._describe())
        return (yield self.command)

    def _describe(self) -> str:
        return f"{self.command.kind} {self.command.target!r}"

    def __repr__(self) -> str:
        return f"<continuum {self._describe()}>"


# --------------------------------------------------------------------------------------------
# retry policy and activities
# --------------------------------------------------------------------------------------------


def _as_seconds(value: timedelta | float | int, what: str) -> float:
    if isinstance(value, timedelta):
        secs = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        secs = float(value)
    else:
        raise TypeError(f"{what} must be a timedelta (cn.seconds(n)) or a number of seconds, not {value!r}")
    if secs < 0:
        raise ValueError(f"{what} must not be negative ({secs}s)")
    return secs


@dataclass(frozen=True)
class Retry:
    """Activity retry policy: ``max_attempts`` in total, ``backoff`` "exponential" or "constant"
    starting at ``base``, capped at ``max_delay``."""

    max_attempts: int = 3
    backoff: str = "exponential"
    base: timedelta = timedelta(seconds=1)
    max_delay: timedelta = timedelta(minutes=5)
    factor: float = 2.0

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ConfigurationError(f"Retry.max_attempts must be an int >= 1, not {self.max_attempts!r}")
        if self.backoff not in ("exponential", "constant"):
            raise ConfigurationError(f"Retry.backoff must be 'exponential' or 'constant', not {self.backoff!r}")
        _as_seconds(self.base, "Retry.base")
        _as_seconds(self.max_delay, "Retry.max_delay")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = _as_seconds(self.base, "Retry.base")
        if self.backoff == "constant":
            d = base
        else:
            d = base * (self.factor ** max(attempt - 1, 0))
        return min(d, _as_seconds(self.max_delay, "Retry.max_delay"))

    def to_json(self) -> dict[str, Any]:
        return {
            "max_attempts": self.max_attempts,
            "backoff": self.backoff,
            "base_s": _as_seconds(self.base, "base"),
            "max_delay_s": _as_seconds(self.max_delay, "max_delay"),
        }


DEFAULT_RETRY = Retry()

#: Every activity defined in this process, by name (any engine that knows the name may run it).
ACTIVITIES: dict[str, ActivityDef] = {}


def _default_name(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None) or "__main__"
    # Functions defined in a notebook cell or a script are named by qualname alone, so a worker
    # that loads the stored cell source finds the same name.
    if module in ("__main__", "builtins") or module.startswith("__continuum_cell"):
        return fn.__qualname__
    return f"{module}.{fn.__qualname__}"


class ActivityDef:
    """An activity: called inside a workflow it schedules a durable task; outside, a plain call."""

    __continuum_activity__ = True

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        retry: Retry | None = None,
        timeout: timedelta | float | None = None,
        idempotency_key: Callable[..., str] | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError("@cn.activity decorates a function")
        self.fn = fn
        self.name = name or _default_name(fn)
        self.retry = retry or DEFAULT_RETRY
        self.timeout = None if timeout is None else _as_seconds(timeout, "activity timeout")
        self.idempotency_key = idempotency_key
        self.is_async = inspect.iscoroutinefunction(fn)
        self.__name__ = getattr(fn, "__name__", self.name)
        self.__qualname__ = getattr(fn, "__qualname__", self.name)
        self.__module__ = getattr(fn, "__module__", None)  # type: ignore[assignment]
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _context.current() is None:
            return self.fn(*args, **kwargs)  # outside a workflow: a plain call
        # Arguments are JSON-checked when the call is journaled (engine/replay.py).
        return _CommandAwaitable(
            ActivityCommand("activity", self.name, activity=self, args=list(args), kwargs=dict(kwargs))
        )

    def key_for(self, args: Sequence[Any], kwargs: dict[str, Any]) -> str | None:
        if self.idempotency_key is None:
            return None
        key = self.idempotency_key(*args, **kwargs)
        if not isinstance(key, str) or not key:
            raise TypeError(f"idempotency_key of activity {self.name!r} must return a non-empty str, not {key!r}")
        return key

    def __repr__(self) -> str:
        return f"<continuum activity {self.name}>"


@overload
def activity(fn: F) -> ActivityDef: ...
@overload
def activity(
    fn: None = None,
    *,
    name: str | None = None,
    retry: Retry | None = None,
    timeout: timedelta | float | None = None,
    idempotency_key: Callable[..., str] | None = None,
) -> Callable[[F], ActivityDef]: ...


def activity(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    retry: Retry | None = None,
    timeout: timedelta | float | None = None,
    idempotency_key: Callable[..., str] | None = None,
) -> Any:
    """Define an activity (sync or async function). See DESIGN §2."""

    def wrap(f: Callable[..., Any]) -> ActivityDef:
        a = ActivityDef(f, name=name, retry=retry, timeout=timeout, idempotency_key=idempotency_key)
        ACTIVITIES[a.name] = a
        return a

    return wrap(fn) if fn is not None else wrap


def pure(fn: F) -> F:
    """Mark a helper function deterministic, so the determinism scan trusts calls to it."""
    fn.__continuum_pure__ = True  # type: ignore[attr-defined]
    return fn


# --------------------------------------------------------------------------------------------
# workflow-side awaitables
# --------------------------------------------------------------------------------------------


def signal(name: str, timeout: timedelta | float | None = None) -> Awaitable[Any]:
    """Inside a workflow: ``await cn.signal(name, timeout=...)`` → the signal's payload, or
    ``SignalTimeout``. (Outside a workflow, ``cn.signal(run_id, name, payload)`` sends one; that
    is ``continuum_nb.api.signal``, which dispatches here when called inside a workflow.)"""
    if not isinstance(name, str) or not name:
        raise TypeError(f"signal name must be a non-empty str, not {name!r}")
    secs = None if timeout is None else _as_seconds(timeout, "signal timeout")
    return _CommandAwaitable(SignalCommand("signal", name, timeout=secs))


def timer(duration: timedelta | float) -> Awaitable[None]:
    """``await cn.timer(cn.minutes(5))``: a durable sleep that survives restarts."""
    return _CommandAwaitable(TimerCommand("timer", "timer", seconds=_as_seconds(duration, "timer duration")))


def gather(*awaitables: Awaitable[Any]) -> Awaitable[list[Any]]:
    """Run activities (or timers/signals) in parallel; returns their results in order. If any
    fails, the first failure (in argument order) is raised once all have finished."""
    children: list[Command] = []
    for i, aw in enumerate(awaitables):
        if not isinstance(aw, _CommandAwaitable):
            if inspect.iscoroutine(aw):
                aw.close()
            raise TypeError(
                f"cn.gather argument {i} is {aw!r}; gather takes activity calls, cn.timer() and "
                "cn.signal() awaitables (call the activity without awaiting it: cn.gather(a(x), b(y)))"
            )
        children.append(aw.command)
    return _CommandAwaitable(GatherCommand("gather", "gather", children=children))


# --------------------------------------------------------------------------------------------
# workflows
# --------------------------------------------------------------------------------------------


def source_hash(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


class WorkflowDef:
    """A registered workflow version."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        retention: timedelta | None = None,
        source: str | None = None,
        origin: str | None = None,
    ) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(
                f"a workflow must be an `async def`, and {getattr(fn, '__qualname__', fn)!r} is not"
            )
        self.fn = fn
        self.name = name or fn.__name__
        self.retention = retention
        if source is None:
            try:
                source = textwrap.dedent(inspect.getsource(fn))
            except (OSError, TypeError):
                source = fn.__qualname__
            self.origin = origin or "module"
        else:
            self.origin = origin or "cell"
        self.source = source
        self.version_hash = source_hash(source)
        self.findings: list[Any] = []
        self.activities: list[str] = _called_activities(fn)
        self.__name__ = fn.__name__
        self.__qualname__ = fn.__qualname__
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    @property
    def short_version(self) -> str:
        return self.version_hash[:12]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<continuum workflow {self.name} version {self.short_version} ({self.origin})>"


def _called_activities(fn: Callable[..., Any]) -> list[str]:
    """Names of the activities the workflow's code refers to (for summaries)."""
    names: list[str] = []
    code = getattr(fn, "__code__", None)
    glb = getattr(fn, "__globals__", {})

    def walk(c: Any) -> None:
        for n in c.co_names:
            obj = glb.get(n)
            if isinstance(obj, ActivityDef) and obj.name not in names:
                names.append(obj.name)
        for const in c.co_consts:
            if inspect.iscode(const):
                walk(const)

    if code is not None:
        walk(code)
    return names


def workflow(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    retention: timedelta | None = None,
    source: str | None = None,
    instance: Any = None,
) -> Any:
    """Define a workflow: ``@cn.workflow`` or ``@cn.workflow(name=..., retention=cn.days(30))``.

    ``source`` (used by ``%%workflow``) is the whole cell text: the version is its hash, and it is
    stored so any engine can load it. ``instance`` registers it in that instance only (default:
    every instance of this process)."""

    def wrap(f: Callable[..., Any]) -> WorkflowDef:
        from .engine import registry

        if isinstance(f, WorkflowDef):
            f = f.fn
        wf = WorkflowDef(f, name=name, retention=retention, source=source)
        return registry.define(wf, instance=instance)

    return wrap(fn) if fn is not None else wrap
