"""Stubbed activity bodies for tests: ``env.stub(activity, fn_or_value)`` swaps the body of an
activity (the process-wide definition every engine of the process runs) and the environment
puts the real one back when it closes."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ..definitions.activity import ACTIVITIES, ActivityDef
from ..errors import ConfigurationError

__all__ = ["Stubs"]


def _body(value: Any) -> Callable[..., Any]:
    """What an attempt runs instead: the function itself, an exception raised, or a value returned."""
    if callable(value) and not isinstance(value, ActivityDef) and not isinstance(value, type):
        return value
    if isinstance(value, BaseException):
        def raising(*_args: Any, **_kwargs: Any) -> Any:
            raise value

        return raising

    def returning(*_args: Any, **_kwargs: Any) -> Any:
        return value

    return returning


class Stubs:
    """The activities whose bodies were replaced, with their real bodies."""

    def __init__(self) -> None:
        self._real: dict[str, tuple[ActivityDef, Callable[..., Any], bool]] = {}

    def replace(self, activity: ActivityDef | str, value: Any) -> None:
        if isinstance(activity, str):
            act = ACTIVITIES.get(activity)
            if act is None:
                raise ConfigurationError(f"no activity named {activity!r} is defined; stub an @cn.activity or its name")
        elif isinstance(activity, ActivityDef):
            act = activity
        else:
            raise ConfigurationError(f"env.stub takes an @cn.activity or its name, not {type(activity).__name__}")
        if act.name not in self._real:
            self._real[act.name] = (act, act.fn, act.is_async)
        body = _body(value)
        act.fn = body
        act.is_async = inspect.iscoroutinefunction(body)

    def restore(self) -> None:
        for act, fn, is_async in self._real.values():
            act.fn, act.is_async = fn, is_async
        self._real.clear()
