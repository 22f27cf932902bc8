"""Where a run's first wake runs: ``cn.start`` waits for that commit anyway, so from any thread
but the main one it runs on the caller's own thread (one thread hand-off less per run); from the
main thread, where Ctrl-C lands, on a drive thread. Either way the run goes on on a drive thread,
and an engine that stops meanwhile waits for the start and lets go of the run cleanly."""

from __future__ import annotations

import threading
from typing import Any

import continuum_nb as cn
from tests.engine.helpers import define, eventually, types

#: Thread names seen by the first segment of ``records_thread``, per input.
FIRST_SEGMENT: dict[int, str] = {}
#: Threads that ran ``start_thread.add_one``'s body, per input.
BODIES: dict[int, list[str]] = {}
GATES: dict[int, threading.Event] = {}
ENTERED: dict[int, threading.Event] = {}


@cn.activity(name="start_thread.add_one")
def add_one(n: int) -> int:
    BODIES.setdefault(n, []).append(threading.current_thread().name)
    return n + 1


async def records_thread(n: int) -> int:
    FIRST_SEGMENT.setdefault(n, threading.current_thread().name)
    return await add_one(n)


async def gated(n: int) -> int:
    ENTERED[n].set()
    assert GATES[n].wait(30), "the test never opened the gate"
    return await add_one(n)


def _start_in_thread(wf: Any, n: int, inst: cn.Instance, name: str) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def go() -> None:
        try:
            out["run"] = cn.start(wf, {"n": n}, instance=inst)
        except BaseException as exc:  # reported to the test, not lost in the thread
            out["error"] = exc

    thread = threading.Thread(target=go, name=name)
    thread.start()
    return thread, out


def test_a_start_from_a_worker_thread_runs_its_first_wake_there(make_instance: Any, store_kind: str) -> None:
    inst = make_instance()
    wf = define(inst, records_thread, "start_thread_records")
    n = 100 + len(FIRST_SEGMENT)
    thread, out = _start_in_thread(wf, n, inst, f"caller-{store_kind}")
    thread.join(30)
    assert "error" not in out
    assert FIRST_SEGMENT[n] == f"caller-{store_kind}"
    assert cn.wait(out["run"].id, timeout=30, instance=inst) == n + 1
    # the rest of the run went on on a drive thread, not on the caller's
    assert BODIES[n] and all("-drive" in name for name in BODIES[n])


def test_a_start_from_the_main_thread_hands_its_first_wake_to_a_drive_thread(make_instance: Any) -> None:
    inst = make_instance()
    wf = define(inst, records_thread, "start_thread_records_main")
    n = 200 + len(FIRST_SEGMENT)
    assert threading.current_thread() is threading.main_thread()
    run = cn.start(wf, {"n": n}, instance=inst)
    assert "-drive" in FIRST_SEGMENT[n]  # a KeyboardInterrupt here cannot reach a group commit
    assert cn.wait(run.id, timeout=30, instance=inst) == n + 1


def test_many_threads_starting_at_once_each_run_ends_once(make_instance: Any) -> None:
    inst = make_instance(wake_batch_size=64)
    wf = define(inst, records_thread, "start_thread_many")
    base = 1000 + 100 * len(FIRST_SEGMENT)
    outs = [_start_in_thread(wf, base + i, inst, f"many-{i}") for i in range(16)]
    for thread, _ in outs:
        thread.join(60)
    assert all("error" not in out for _, out in outs)
    results = [cn.wait(out["run"].id, timeout=60, instance=inst) for _, out in outs]
    assert results == [base + i + 1 for i in range(16)]
    assert all(FIRST_SEGMENT[base + i] == f"many-{i}" for i in range(16))
    assert all(len(BODIES[base + i]) == 1 for i in range(16))  # no step ran twice


def test_an_engine_stopping_during_a_start_on_the_callers_thread_waits_for_it(make_instance: Any) -> None:
    """The stop waits for the caller's first wake as for a drive, then lets go of the run: the
    caller is told it started, and another engine finishes it, its step run once."""
    first = make_instance()
    wf = define(first, gated, "start_thread_gated")
    n = 300 + len(GATES)
    GATES[n], ENTERED[n] = threading.Event(), threading.Event()
    thread, out = _start_in_thread(wf, n, first, "gated-caller")
    assert ENTERED[n].wait(30)  # its first segment runs on the caller's thread, held at the gate
    engine = first.engine
    assert engine is not None
    stopper = threading.Thread(target=first.stop, kwargs={"timeout": 20.0})
    stopper.start()
    eventually(lambda: engine.stopping, what="the engine stopping")
    GATES[n].set()
    thread.join(30)
    stopper.join(30)
    assert not stopper.is_alive()
    assert "error" not in out, out.get("error")
    run = out["run"]
    assert "activity_scheduled" in types(first, run)
    second = make_instance()
    define(second, gated, "start_thread_gated")
    assert cn.wait(run.id, timeout=60, instance=second) == n + 1
    assert len(BODIES[n]) == 1
