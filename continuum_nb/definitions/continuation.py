"""``cn.continue_as_new``: end the run and start its successor (same workflow, new input, a fresh
journal) in the same commit.

Inside a workflow it raises ``ContinueAsNew`` (a ``BaseException``, so ``except Exception`` in
workflow code cannot swallow it, as Temporal's ``ContinueAsNewError``); the run's context (the
replayer) journals ``run_continued_as_new`` at the live tail, or matches it while replaying. The
run ends ``completed`` with the result ``{"continued": next_run_id}``; the engine commits the end,
the successor, and the move of the mailbox in one transaction (docs/semantics.md).
"""

from __future__ import annotations

from typing import Any, NoReturn

from ..store.payloads import check_json
from .context import current

__all__ = ["VERSIONS", "ContinueAsNew", "continue_as_new"]

#: What ``version=`` may be: the run's own version, or the newest stored version of the workflow.
VERSIONS = ("same", "newest")


class ContinueAsNew(BaseException):
    """Raised by ``cn.continue_as_new`` inside a workflow: the run ends here and its successor
    starts with ``input``. Let it propagate (a bare ``except BaseException`` must re-raise it)."""

    def __init__(self, next_run_id: str, input: dict[str, Any], version: str) -> None:
        super().__init__(f"continued as new as run {next_run_id}")
        self.next_run_id = next_run_id
        self.input = input
        self.version = version


def continue_as_new(input: dict[str, Any] | None = None, *, version: str = "same") -> NoReturn:
    """``cn.continue_as_new({"day": day + 1})``: end this run (``completed``, result
    ``{"continued": next_run_id}``) and start its successor with ``input`` (a JSON object of the
    workflow's keyword arguments), in the same commit. The successor shares the run's
    ``correlation_id``, attributes, retention and trace context; signals still in its mailbox
    move to it. ``version="same"`` (default) keeps the run's version; ``"newest"`` starts the
    newest stored version of the workflow. ``cn.wait``/``cn.signal``/``cn.cancel`` on any run of
    the chain follow it to the current run. Never returns."""
    ctx = current()
    if ctx is None:
        raise RuntimeError(
            "cn.continue_as_new() only works inside a workflow run by the engine (it ends the run and starts "
            "its successor); outside one, start a run with cn.start(workflow, input)"
        )
    if input is None:
        input = {}
    if not isinstance(input, dict):
        raise TypeError(
            "the input of cn.continue_as_new is a JSON object (a dict of the workflow's keyword arguments), "
            f"not {type(input).__name__}"
        )
    check_json(input, "input of cn.continue_as_new")
    if version not in VERSIONS:
        raise ValueError(f"cn.continue_as_new(version=...) is 'same' or 'newest', not {version!r:.80}")
    raise ctx.continue_as_new(input, version)
