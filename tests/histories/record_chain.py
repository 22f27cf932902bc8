"""Re-record the histories of a continue-as-new chain (``cn.testing.environment()``):

    python -m tests.histories.record_chain

``subscription_first.json`` (the chain's first run: it continued as new, its last event is
``run_continued_as_new``) and ``subscription_last.json`` (the chain's third and last run, which
returned its result).
"""

from __future__ import annotations

import uuid
from typing import Any

import continuum_nb as cn
from continuum_nb.workflow import WorkflowDef

from .record import START, save
from .workflows import subscription


def record() -> dict[str, dict[str, Any]]:
    with cn.testing.environment(start_at=START) as env:
        wf = WorkflowDef(subscription, name="subscription")
        env.instance.registry.register(wf)
        first = env.start(wf, {"customer": "c-17"})
        env.wait(first)
        last = env.instance.store.chain_current(uuid.UUID(first.id))  # type: ignore[attr-defined]
        return {"subscription_first": cn.export_history(first.id, instance=env.instance),
                "subscription_last": cn.export_history(str(last), instance=env.instance)}


def main() -> None:
    save(record())


if __name__ == "__main__":
    main()
