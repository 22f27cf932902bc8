"""Replay: driving a workflow's coroutine against its journal, with no I/O.

``journal`` indexes a journal by command identity; ``replayer`` drives the coroutine and matches
each command at the cursor; ``live`` decides what a command journals past the end (the live
tail) and when it is resolved; ``drift`` reports a mismatch; ``outcomes`` holds what a drive ends
in and what a wake records; ``snapshots`` compacts a journal prefix and reads it back. The engine
decides when to wake a run; this package decides what the wake does.
"""

from __future__ import annotations

from .outcomes import Blocked, Completed, Drifted, Failed, LiveOutcome, error_dict
from .replayer import Replayer

__all__ = ["Blocked", "Completed", "Drifted", "Failed", "LiveOutcome", "Replayer", "error_dict"]
