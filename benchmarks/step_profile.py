"""Where the time of a workflow goes, step by step, one after another: one JSON object on stdout.

    python benchmarks/step_profile.py --database-url URL --workflows 500 --steps 3

Runs S-step workflows one after another (the benchmarks/throughput.py workload) with the engine's
phases wrapped by timers that read both the wall clock and the calling thread's CPU clock
(``time.thread_time_ns``: the CPU of that thread alone, so other processes on the machine do not
inflate it). Reported per workflow, in microseconds, for each phase: ``calls`` (per workflow),
``wall_us`` and ``cpu_us`` (inclusive: a phase includes the phases nested in it; the nesting is
given by ``parent``). ``latency_us`` is the caller's wall time from ``cn.start`` to ``cn.wait``
returning; ``drive_us`` the drive thread's wall time on the run (its first wake, the wakes and the
inline attempts, which run back to back on one thread, and reporting the end to the caller); ``outside_drive_us`` the rest (handing
the run to the drive thread, handing its end back to the caller, the caller's own work);
``process_cpu_us`` the CPU of the whole process per workflow, ``unaccounted_cpu_us`` what the
wrapped phases do not cover (the caller, the engine loop, the listening thread, the interpreter).

The workflows are started from the main thread, so a run's first wake too runs on the drive
thread (from any other thread it runs on the caller's: ``Drives.start``) and the drive thread's
share covers the whole run.

The wrappers cost ~1-2 µs a call each; they are counted in their parents.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import continuum_nb as cn  # noqa: E402
from continuum_nb.engine import activities as activities_mod  # noqa: E402
from continuum_nb.engine import drives as drives_mod  # noqa: E402
from continuum_nb.engine import group_commit as group_commit_mod  # noqa: E402
from continuum_nb.engine import runner as runner_mod  # noqa: E402
from continuum_nb.replay import replayer as replayer_mod  # noqa: E402
from continuum_nb.store.postgres import commits as commits_mod  # noqa: E402
from continuum_nb.store.postgres import pool as pool_mod  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import make_workflow  # noqa: E402

from continuum_nb.definitions.activity import ACTIVITIES  # noqa: E402

#: name -> (owner object, attribute, parent phase): the phases timed, in the order printed.
PHASES: list[tuple[str, Any, str, str | None]] = [
    ("first_wake (Runner.start)", runner_mod.Runner, "start", "drive thread"),
    ("wake (Runner._wake_once)", runner_mod.Runner, "_wake_once", "drive thread"),
    ("inline attempt (Activities.attempt_inline)", activities_mod.Activities, "attempt_inline", "drive thread"),
    ("replay+workflow code (Replayer.advance)", replayer_mod.Replayer, "advance", "wake"),
    ("build the wake (Runner._build)", runner_mod.Runner, "_build", "wake"),
    ("history limits (Runner._guard)", runner_mod.Runner, "_guard", "wake"),
    ("after the commit (Runner._after_commit)", runner_mod.Runner, "_after_commit", "wake"),
    ("announce (announce_committed)", runner_mod, "announce_committed", "after the commit"),
    ("group commit (GroupCommit.commit)", group_commit_mod.GroupCommit, "commit", "wake"),
    ("commit (PgCommits._commit)", commits_mod.PgCommits, "_commit", "group commit / first wake"),
    ("encode the wake (wake_args)", commits_mod, "wake_args", "commit"),
    ("round trip (PgPool.call)", pool_mod.PgPool, "call", "commit"),
    ("server call (exec_commit_wake)", commits_mod, "exec_commit_wake", "round trip"),
    ("activity body", None, "", "inline attempt"),
    ("drive thread (Drives._start_drive)", drives_mod.Drives, "_start_drive", None),
]


class Timers:
    """Per phase: calls, wall ns, thread CPU ns (a lock: the caller and drive threads both add)."""

    def __init__(self) -> None:
        self.totals: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        totals, lock = self.totals, self._lock
        totals[name] = [0, 0, 0]

        def timed(*a: Any, **k: Any) -> Any:
            w0, c0 = time.perf_counter_ns(), time.thread_time_ns()
            try:
                return fn(*a, **k)
            finally:
                w, c = time.perf_counter_ns() - w0, time.thread_time_ns() - c0
                with lock:
                    t = totals[name]
                    t[0] += 1
                    t[1] += w
                    t[2] += c

        return timed

    def reset(self) -> None:
        with self._lock:
            for t in self.totals.values():
                t[0] = t[1] = t[2] = 0


def install(timers: Timers, activity: Any) -> None:
    for name, owner, attr, _parent in PHASES:
        if owner is None:
            continue
        setattr(owner, attr, timers.wrap(name, getattr(owner, attr)))
    # the activity's body: the function its definition calls
    activity.fn = timers.wrap("activity body", activity.fn)


def warmed_up(args: argparse.Namespace) -> tuple[cn.Instance, Any]:
    """An instance with the workload's workflow registered and ``--warmup`` runs done."""
    inst = cn.Instance(f"profile-{uuid.uuid4().hex[:6]}", database_url=args.database_url, pool_size=4,
                       lease_ttl=30.0)
    wf = make_workflow(args.steps)
    inst.registry.register(wf)
    for i in range(args.warmup):
        cn.wait(cn.start(wf, {"n": i}, instance=inst).id, timeout=60, instance=inst)
    return inst, wf


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--database-url", required=True)
    p.add_argument("--workflows", type=int, default=500)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--cprofile", type=int, default=0, metavar="N",
                   help="instead of the timers: cProfile the drive thread and print its N costliest functions")
    args = p.parse_args(argv)
    if args.cprofile:
        return cprofile_drive(args)

    timers = Timers()
    install(timers, ACTIVITIES["bench.step"])  # defined by throughput.py, imported above

    inst, wf = warmed_up(args)
    timers.reset()
    latency_ns = 0
    cpu0 = time.process_time_ns()
    t0 = time.perf_counter_ns()
    for i in range(args.workflows):
        s = time.perf_counter_ns()
        result = cn.wait(cn.start(wf, {"n": i}, instance=inst).id, timeout=60, instance=inst)
        latency_ns += time.perf_counter_ns() - s
        if result != i + args.steps:
            raise AssertionError(f"workflow {i} returned {result}, expected {i + args.steps}")
    elapsed = time.perf_counter_ns() - t0
    cpu = time.process_time_ns() - cpu0
    inst.close()

    n = args.workflows
    phases = {}
    for name, _owner, _attr, parent in PHASES:
        calls, wall, tcpu = timers.totals[name]
        phases[name] = {"parent": parent, "calls": round(calls / n, 2), "wall_us": round(wall / n / 1000, 1),
                        "cpu_us": round(tcpu / n / 1000, 1)}
    _calls, drive, drive_cpu = timers.totals["drive thread (Drives._start_drive)"]
    print(json.dumps({
        "benchmark": "step_profile",
        "workflows": n,
        "steps": args.steps,
        "workflows_per_s": round(n / (elapsed / 1e9), 1),
        "latency_us": round(latency_ns / n / 1000, 1),
        "drive_us": round(drive / n / 1000, 1),
        "outside_drive_us": round((latency_ns - drive) / n / 1000, 1),
        "process_cpu_us": round(cpu / n / 1000, 1),
        "unaccounted_cpu_us": round((cpu - drive_cpu) / n / 1000, 1),
        "phases": phases,
    }, indent=1))
    return 0


def cprofile_drive(args: argparse.Namespace) -> int:
    """Function-level costs of the drive thread alone (cProfile slows it ~2x: read the shares)."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    active = threading.Event()
    original = drives_mod.Drives._start_drive

    def profiled(*a: Any, **k: Any) -> Any:
        if not active.is_set():
            return original(*a, **k)
        prof.enable()
        try:
            return original(*a, **k)
        finally:
            prof.disable()

    drives_mod.Drives._start_drive = profiled  # type: ignore[method-assign]
    inst, wf = warmed_up(args)
    active.set()
    for i in range(args.workflows):
        cn.wait(cn.start(wf, {"n": i}, instance=inst).id, timeout=60, instance=inst)
    active.clear()
    inst.close()
    pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(args.cprofile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
