"""A workflow version: the ``async def``, its name, and its version (the hash of its source)."""

from __future__ import annotations

import hashlib
import inspect
import textwrap
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from ..store.payloads import check_name
from .activity import ActivityDef
from .signals import SignalContract, normalise_contract

__all__ = ["WorkflowDef", "source_hash"]


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
        signals: Any = None,
    ) -> None:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(
                f"a workflow must be an `async def`, and {getattr(fn, '__qualname__', fn)!r} is not"
            )
        self.fn = fn
        self.name = check_name(name or fn.__name__, "workflow name")
        self.retention = retention
        #: the signal contract (``signals=``), or None: any signal is accepted
        self.signals: SignalContract | None = normalise_contract(signals, self.name)
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
