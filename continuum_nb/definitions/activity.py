"""Activities: their definition, retry policy, and the process-wide table of them by name.

An activity called inside a workflow schedules a durable task (it returns a command awaitable);
called anywhere else it is a plain function call, which is handy in notebooks. Any engine that
knows an activity's name may run its attempts, so the table is per process, not per instance.
"""

from __future__ import annotations

import inspect
import math
import random as _random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ..errors import ConfigurationError, NonRetryableError
from ..store.payloads import MAX_KEY_LENGTH, check_name
from .commands import ActivityCommand, CommandAwaitable, as_seconds
from .context import current

__all__ = ["ACTIVITIES", "DEFAULT_RETRY", "ActivityDef", "Retry", "define_activity"]


@dataclass(frozen=True)
class Retry:
    """Activity retry policy: ``max_attempts`` in total, ``backoff`` "exponential" or "constant"
    starting at ``base``, capped at ``max_interval`` (``max_delay`` is its older name), each delay
    spread by ``jitter`` (0.2: up to 20% shorter or longer, so a crowd of failures does not retry in
    step). An exception matching ``non_retryable`` (an exception class, or a class name) ends the
    retries at once, as does :class:`cn.NonRetryableError` raised by the body."""

    max_attempts: int = 3
    backoff: str = "exponential"
    base: timedelta = timedelta(seconds=1)
    max_delay: timedelta = timedelta(minutes=5)
    factor: float = 2.0
    max_interval: timedelta | float | None = None
    jitter: float = 0.0
    non_retryable: tuple[type[BaseException] | str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ConfigurationError(f"Retry.max_attempts must be an int >= 1, not {self.max_attempts!r}")
        if self.backoff not in ("exponential", "constant"):
            raise ConfigurationError(f"Retry.backoff must be 'exponential' or 'constant', not {self.backoff!r}")
        if not isinstance(self.factor, (int, float)) or isinstance(self.factor, bool) \
                or not (math.isfinite(self.factor) and self.factor >= 1):
            raise ConfigurationError(f"Retry.factor must be a finite number >= 1, not {self.factor!r}")
        if not isinstance(self.jitter, (int, float)) or isinstance(self.jitter, bool) \
                or not (0 <= self.jitter <= 1):
            raise ConfigurationError(f"Retry.jitter must be a number from 0 to 1 (0.2: +/-20%), not {self.jitter!r}")
        try:
            as_seconds(self.base, "Retry.base")
            as_seconds(self.max_delay, "Retry.max_delay")
            if self.max_interval is not None:
                as_seconds(self.max_interval, "Retry.max_interval")
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(str(exc)) from None
        kinds = self.non_retryable
        if isinstance(kinds, (type, str)):
            kinds = (kinds,)
        if not isinstance(kinds, (tuple, list)) or not all(
                isinstance(k, str) or (isinstance(k, type) and issubclass(k, BaseException)) for k in kinds):
            raise ConfigurationError(
                "Retry.non_retryable must be a tuple of exception classes or class names, "
                f"like (ValueError, 'KeyError'), not {self.non_retryable!r}")
        object.__setattr__(self, "non_retryable", tuple(kinds))

    def cap(self) -> float:
        """The longest delay between two attempts, in seconds."""
        if self.max_interval is not None:
            return as_seconds(self.max_interval, "Retry.max_interval")
        return as_seconds(self.max_delay, "Retry.max_delay")

    def delay(self, attempt: int, rand: Callable[[], float] = _random.random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based). The delay is
        operational scheduling, never journaled, so its jitter need not replay."""
        base = as_seconds(self.base, "Retry.base")
        if self.backoff == "constant":
            d = base
        else:
            try:
                d = base * (self.factor ** max(attempt - 1, 0))
            except OverflowError:
                d = math.inf
        d = min(d, self.cap())
        if self.jitter:
            d *= 1 + self.jitter * (2 * rand() - 1)
        return max(0.0, d)

    def retries(self, exc: BaseException) -> bool:
        """Whether an attempt that raised ``exc`` may be tried again (attempts left aside)."""
        if isinstance(exc, NonRetryableError):
            return False
        for kind in self.non_retryable:
            if isinstance(kind, str):
                if any(k.__name__ == kind or f"{k.__module__}.{k.__qualname__}" == kind
                       for k in type(exc).__mro__):
                    return False
            elif isinstance(exc, kind):
                return False
        return True


#: Without ``retry=``, an activity is attempted once (Continuum's default: a retry is something
#: an activity opts into; docs/semantics.md has the note for code written against the earlier
#: default of three attempts).
DEFAULT_RETRY = Retry(max_attempts=1)

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
        self.name = check_name(name or _default_name(fn), "activity name")
        self.retry = retry or DEFAULT_RETRY
        self.timeout = None if timeout is None else as_seconds(timeout, "activity timeout")
        self.idempotency_key = idempotency_key
        self.is_async = inspect.iscoroutinefunction(fn)
        self.__name__ = getattr(fn, "__name__", self.name)
        self.__qualname__ = getattr(fn, "__qualname__", self.name)
        self.__module__ = getattr(fn, "__module__", None)  # type: ignore[assignment]
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if current() is None:
            return self.fn(*args, **kwargs)  # outside a workflow: a plain call
        # Arguments are JSON-checked when the call is journaled (replay/live.py).
        return CommandAwaitable(
            ActivityCommand("activity", self.name, activity=self, args=list(args), kwargs=dict(kwargs))
        )

    def key_for(self, args: Sequence[Any], kwargs: dict[str, Any]) -> str | None:
        """The call's idempotency key; None (no key function, or it returned None) opts out."""
        if self.idempotency_key is None:
            return None
        key = self.idempotency_key(*args, **kwargs)
        if key is None:
            return None
        return check_name(key, f"the idempotency key of activity {self.name!r}", MAX_KEY_LENGTH)

    def __repr__(self) -> str:
        return f"<continuum activity {self.name}>"


def define_activity(act: ActivityDef) -> ActivityDef:
    """Make ``act`` known to every engine of this process (by name; a redefinition replaces)."""
    ACTIVITIES[act.name] = act
    return act
