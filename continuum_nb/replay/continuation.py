"""What replay makes of ``cn.continue_as_new``: at the live tail it journals
``run_continued_as_new`` (with the successor's id, drawn here, and its input); while replaying it
matches the journal's at the cursor (command identity: kind ``continue_as_new``, target the
workflow) and the input, so a run that continued on with another input is drift (as Continuum
checks the journaled input's hash). The drive then ends in ``Continued``."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from ..definitions.continuation import ContinueAsNew
from .outcomes import Continued, Drifted

if TYPE_CHECKING:
    from .replayer import Replayer

__all__ = ["ended", "request"]

KIND = "continue_as_new"


def request(rep: Replayer, input: dict[str, Any], version: str) -> BaseException:
    """The exception ``cn.continue_as_new`` raises (DriftSignal when the journal disagrees).
    Decided once per run: a second call (the first was swallowed) raises the same again."""
    if rep.continued is not None:
        return ContinueAsNew(rep.continued.next_run_id, rep.continued.input, rep.continued.version)
    ordinal = rep._next_ordinal(KIND, rep.workflow)
    ix, i = rep._ix, rep._cursor
    if i < len(ix.seqs):
        rep._match(i, KIND, rep.workflow, ordinal)
        start = ix.start_event(i)
        if start.payload.get("input") != input:
            return rep._drift(
                f"the workflow now continues as new with input {input!r:.120} where the journal has "
                f"{start.payload.get('input')!r:.120} (seq {start.seq})", i,
                {"kind": KIND, "target": rep.workflow, "ordinal": ordinal, "input": input})
        rep._cursor = i + 1
        next_id = str(start.payload["next_run_id"])
    else:
        next_id = str(uuid.uuid4())
        rep._record("run_continued_as_new", {"workflow": rep.workflow, "ordinal": ordinal, "next_run_id": next_id,
                                             "input": input, "version": version})
    rep.continued = Continued({"continued": next_id}, next_id, input, version)
    return ContinueAsNew(next_id, input, version)


def ended(rep: Replayer) -> Continued | Drifted:
    """The coroutine ended (however) after ``cn.continue_as_new``: the run continues as new,
    unless the journal holds more commands after it (drift)."""
    assert rep.continued is not None
    if rep.replaying:
        return rep._drift_end("continued as new")
    return rep._finish(rep.continued)
