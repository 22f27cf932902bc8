"""Activities: their definition, retry policy, and the process-wide table of them by name.

An activity called inside a workflow schedules a durable task (it returns a command awaitable);
called anywhere else it is a plain function call, which is handy in notebooks. Any engine that
knows an activity's name may run its attempts, so the table is per process, not per instance.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ..errors import ConfigurationError
from ..store.payloads import MAX_KEY_LENGTH, check_name
from .commands import ActivityCommand, CommandAwaitable, as_seconds
from .context import current

__all__ = ["ACTIVITIES", "DEFAULT_RETRY", "ActivityDef", "Retry", "define_activity"]


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
        if not isinstance(self.factor, (int, float)) or isinstance(self.factor, bool) \
                or not (math.isfinite(self.factor) and self.factor >= 1):
            raise ConfigurationError(f"Retry.factor must be a finite number >= 1, not {self.factor!r}")
        try:
            as_seconds(self.base, "Retry.base")
            as_seconds(self.max_delay, "Retry.max_delay")
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(str(exc)) from None

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = as_seconds(self.base, "Retry.base")
        if self.backoff == "constant":
            d = base
        else:
            try:
                d = base * (self.factor ** max(attempt - 1, 0))
            except OverflowError:
                d = math.inf
        return min(d, as_seconds(self.max_delay, "Retry.max_delay"))


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
