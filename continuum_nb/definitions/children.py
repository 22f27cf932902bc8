"""Child workflows: ``await cn.child(wf, input)`` and ``handle = await cn.start_child(wf, input)``.

A child is a command like an activity: kind ``child``, target the child's workflow name. Its
start (``child_started``) is journaled by the parent's wake, and the child's run row is inserted
in that same commit; the child's end wakes the parent, which journals ``child_completed`` /
``child_failed`` / ``child_cancelled`` under its own lease. ``cn.start_child`` returns a handle at
once (the workflow goes on); ``await handle`` waits for the child's outcome. The child's run id
is derived from the parent's run id and the command identity (and ``run_id=``), so a replay
never starts a second child.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Generator
from dataclasses import dataclass
from typing import Any

from ..store.payloads import check_name
from .commands import Command, CommandAwaitable
from .context import current, require

__all__ = [
    "ON_PARENT_CANCEL",
    "ChildCommand",
    "ChildHandle",
    "ChildResultCommand",
    "StartChildCommand",
    "child",
    "child_run_id",
    "child_target",
    "start_child",
]

#: What happens to a child when its parent is cancelled.
ON_PARENT_CANCEL = ("cancel", "abandon")

#: The namespace of derived child run ids (uuid5).
_NAMESPACE = uuid.UUID("6b1d0c52-3f7e-4c55-9d0e-0c1a5d2f7a11")


@dataclass
class ChildCommand(Command):
    """``cn.child``: start a child workflow and wait for its outcome. Its target is the
    workflow's name, or ``name/run_id`` when ``run_id=`` is given (``child_target``)."""

    workflow: str = ""
    input: Any = None
    run_key: str | None = None  # the ``run_id=`` given to cn.child / cn.start_child
    on_parent_cancel: str = "cancel"


@dataclass
class StartChildCommand(ChildCommand):
    """``cn.start_child``: the same start, answered at once with the child's handle."""


@dataclass
class ChildResultCommand(Command):
    """``await handle``: wait for the outcome of the child started at ``started_seq``. Not a
    command start (nothing is matched or journaled for it but the child's outcome)."""

    started_seq: int = 0
    child_run_id: str = ""


def child_target(workflow: str, run_key: str | None) -> str:
    """The target of a child's command identity: the workflow, and ``run_id=`` when given."""
    return workflow if run_key is None else f"{workflow}/{run_key}"


def child_run_id(parent_run_id: str, workflow: str, ordinal: int, run_key: str | None) -> uuid.UUID:
    """The child's run id: derived from the parent's id and the command identity (kind
    ``child``, the workflow name and ``run_id=`` when given, the ordinal)."""
    return uuid.uuid5(_NAMESPACE, f"{parent_run_id}/child/{child_target(workflow, run_key)}/{ordinal}")


def _command(cls: type[ChildCommand], what: str, workflow: Any, input: Any, run_id: Any,
             on_parent_cancel: str) -> ChildCommand:
    name = workflow if isinstance(workflow, str) else getattr(workflow, "name", None)
    if not isinstance(name, str) or not (isinstance(workflow, str) or hasattr(workflow, "version_hash")):
        raise TypeError(f"cn.{what} takes a @cn.workflow (or a workflow's name) and its input, not {workflow!r}")
    check_name(name, "workflow name")
    if run_id is not None and not isinstance(run_id, (str, uuid.UUID)):
        raise TypeError(f"cn.{what}(run_id=) is a string (a key naming this child among its siblings), not {run_id!r}")
    if on_parent_cancel not in ON_PARENT_CANCEL:
        raise ValueError(f"cn.{what}(on_parent_cancel=) is 'cancel' or 'abandon', not {on_parent_cancel!r}")
    if input is not None and not isinstance(input, dict):
        raise TypeError(
            f"the input of child workflow {name!r} is a JSON object (a dict of its keyword arguments), "
            f"not {type(input).__name__}"
        )
    key = None if run_id is None else str(run_id)
    return cls("child", child_target(name, key), workflow=name, input=input, run_key=key,
               on_parent_cancel=on_parent_cancel)


def child(workflow: Any, input: Any = None, *, run_id: str | None = None,
          on_parent_cancel: str = "cancel") -> Awaitable[Any]:
    """Inside a workflow: ``result = await cn.child(ship, {"order": o})`` starts a child run of
    ``ship`` and returns its result; its failure (or cancellation) raises ``cn.ChildFailed``."""
    return CommandAwaitable(_command(ChildCommand, "child", workflow, input, run_id, on_parent_cancel))


def start_child(workflow: Any, input: Any = None, *, run_id: str | None = None,
                on_parent_cancel: str = "cancel") -> Awaitable[ChildHandle]:
    """Inside a workflow: ``handle = await cn.start_child(ship, {...})`` starts a child run and
    returns at once; ``await handle`` (or ``await handle.result()``) waits for its result."""
    return _StartChild(_command(StartChildCommand, "start_child", workflow, input, run_id, on_parent_cancel))


class _StartChild(CommandAwaitable):
    """The awaitable of ``cn.start_child``: the engine answers with the child's id and the seq
    of its ``child_started``; this wraps them in a ``ChildHandle``."""

    __slots__ = ()

    def __await__(self) -> Generator[Command, Any, ChildHandle]:
        if current() is None:
            require("await cn.start_child(...)")
        answer = yield self.command
        assert isinstance(self.command, ChildCommand)
        return ChildHandle(self.command.workflow, str(answer["run_id"]), int(answer["seq"]))


class ChildHandle(CommandAwaitable):
    """A started child: ``run_id`` (its run's id), ``workflow``; ``await handle`` (or
    ``await handle.result()``) returns its result or raises ``cn.ChildFailed``. A handle may be
    passed to ``cn.gather`` and ``cn.first``."""

    __slots__ = ("run_id", "workflow")

    def __init__(self, workflow: str, run_id: str, started_seq: int) -> None:
        super().__init__(ChildResultCommand("child_result", workflow, started_seq=started_seq,
                                            child_run_id=run_id))
        self.run_id = run_id
        self.workflow = workflow

    def result(self) -> Awaitable[Any]:
        """The child's outcome (the same as awaiting the handle)."""
        return self

    def _describe(self) -> str:
        return f"child {self.workflow!r} ({self.run_id})"
