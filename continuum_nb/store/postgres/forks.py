"""The parameters of ``sql.INSERT_FORK`` (``PostgresStore.fork_run``): each kind of row as one
JSON array of arrays, built before anything is sent (a bad value fails with nothing written)."""

from __future__ import annotations

from typing import Any

from ..forks import NewFork
from ..payloads import dumps

__all__ = ["fork_params"]


def fork_params(fork: NewFork) -> dict[str, Any]:
    run = fork.run
    return {
        "id": run.id,
        "workflow": run.workflow,
        "version": run.version_hash,
        "input": dumps(run.input),
        "started": run.started_at,
        "attributes": dumps(run.attributes) if run.attributes else None,
        "retention": run.retention,
        "from": fork.forked_from,
        "at": fork.at_seq,
        # the copied journal's last seq: the fork's first wake is checked against it (last_seq)
        "last_seq": fork.events[-1].seq if fork.events else 0,
        "events": dumps([[e.seq, e.event_type, e.payload] for e in fork.events]),
        "tasks": dumps([[str(t.id), t.seq, t.args, t.activity, t.available_at.isoformat(), t.idempotency_key]
                        for t in fork.tasks]),
        "timers": dumps([[str(t.id), t.seq, t.fires_at.isoformat()] for t in fork.timers]),
    }
