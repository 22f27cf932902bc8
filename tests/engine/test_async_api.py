"""cn.start_async / wait_async / signal_async / cancel_async: the sync API's twins for asyncio.
They never block the event loop: other tasks keep running while a call waits (here the task
that sends the signal the awaited run needs: if the loop were blocked, it could not)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

import continuum_nb as cn
from tests.engine.helpers import define, eventually


async def needs_approval(order: str) -> dict[str, Any]:
    approval = await cn.signal("approve")
    return {"order": order, "by": approval["by"]}


def test_the_loop_keeps_running_while_a_run_is_awaited(make_instance: Any) -> None:
    inst = make_instance()
    wf = define(inst, needs_approval)
    ticks: list[int] = []

    async def main() -> Any:
        run = await cn.start_async(wf, {"order": "A1"}, instance=inst)

        async def ticker() -> None:
            # ticks while wait_async waits, then approves: only a free loop gets here
            while len(ticks) < 5:
                ticks.append(len(ticks))
                await asyncio.sleep(0.01)
            await cn.signal_async(run.id, "approve", {"by": "ana"}, instance=inst)

        waiting = asyncio.create_task(cn.wait_async(run.id, timeout=30, instance=inst))
        await ticker()
        return await waiting

    assert asyncio.run(main()) == {"order": "A1", "by": "ana"}
    assert ticks == [0, 1, 2, 3, 4]


def test_cancel_async_and_the_errors_of_the_sync_api(make_instance: Any) -> None:
    inst = make_instance()
    wf = define(inst, needs_approval)

    async def main() -> None:
        run = await cn.start_async(wf, {"order": "B2"}, instance=inst)
        eventually(lambda: cn.get_run(run.id, instance=inst).state == "suspended", what="suspended")
        await cn.cancel_async(run.id, instance=inst)
        with pytest.raises(cn.RunCancelled):
            await cn.wait_async(run.id, timeout=30, instance=inst)
        with pytest.raises(cn.RunNotFound):
            await cn.signal_async(str(uuid.uuid4()), "approve", instance=inst)
        with pytest.raises(TimeoutError, match="did not end within 0.2s"):
            other = await cn.start_async(wf, {"order": "C3"}, instance=inst)
            await cn.wait_async(other.id, timeout=0.2, instance=inst)
        with pytest.raises(TypeError, match="timeout must be"):
            await cn.wait_async(run.id, timeout="soon", instance=inst)

    asyncio.run(main())


def test_a_cancelled_wait_async_lets_the_loop_go_on(make_instance: Any) -> None:
    inst = make_instance()
    wf = define(inst, needs_approval)

    async def main() -> str:
        run = await cn.start_async(wf, {"order": "D4"}, instance=inst)
        waiting = asyncio.create_task(cn.wait_async(run.id, instance=inst))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        return "loop still running"

    assert asyncio.run(main()) == "loop still running"
