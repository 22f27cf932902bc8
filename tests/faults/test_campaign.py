"""The fault campaign: several ``continuum worker`` processes run a mixed load while the test
kills them (kill -9, each replaced by a new worker), stops one past its lease TTL
(SIGSTOP ... SIGCONT; it goes on working afterwards) and restarts PostgreSQL in the middle.

Sizes: tests/faults/budget.py (short by default; ``CONTINUUM_FAULTS=long`` for 1,000 runs and
20 kills). The order of the faults is shuffled by a seed that the test prints; set
``CONTINUUM_FAULTS_SEED`` to replay one.

What must hold at the end, from the database and the workers' logs:
  1. every run ended as designed: orders, steps, timers and signalled runs completed with their
     results; runs of ``fx_doomed`` failed with a readable error; cancelled runs are cancelled;
     nothing is left running or suspended, no lease held, no task open;
  2. no ``(run_id, seq)`` twice, no gap, no activity resolved twice;
  3. activity bodies repeated only inside the documented crash window (a killed or stopped
     process, or a commit cut by the restart), and an idempotent body never after its result
     was stored;
  4. no stale owner appended after losing its lease: every journal write and task outcome was
     made under the lease of that moment (the fx_writes trigger ledger), tokens never go down
     along a journal, and a stopped worker wrote nothing on the runs it had held once resumed;
  5. no engine died: every worker that was not killed is alive at the end, its log shows no
     dead engine or thread and no traceback through user code, and SIGTERM stops it with exit 0.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from typing import Any

import pytest

import continuum_nb as cn
from tests.faults import budget
from tests.faults import fault_workflows as fx

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

TTL = 2.0
HEARTBEAT = 0.5
#: A stop lasts this long: past the lease TTL, so the other workers take its runs over.
STOP_SECONDS = 2 * TTL + 1.0
#: How long before a fault an attempt may have started and still be caught by it (its body,
#: then its result commit, under load on a small machine).
CAUGHT_BEFORE = 5.0
#: After a restart, attempts whose commit meets a connection of the old server are cut too.
RESTART_TAIL = 5.0
ACTIVITY_SECONDS = "0.15"

FINAL = ("completed", "failed", "cancelled")


class Fleet:
    """The campaign's workers: spawned, killed, stopped; what happened to each, and when."""

    def __init__(self, url: str, procs: list[fx.Worker], rng: random.Random) -> None:
        self.url = url
        self.procs = procs
        self.rng = rng
        self.alive: list[fx.Worker] = []
        self.owners: dict[str, str] = {}
        self.killed: dict[int, float] = {}  # pid -> time.time() of the kill
        self.stops: list[tuple[fx.Worker, float, float, set[str]]] = []  # worker, stop, cont, runs held
        self.restarts: list[tuple[float, float]] = []
        self.log: list[str] = []  # what each fault hit
        self._n = 0

    def spawn(self) -> fx.Worker:
        self._n += 1
        w = fx.Worker(self.url, f"W{self._n}", lease_ttl=TTL, heartbeat=HEARTBEAT,
                      env={"FX_ACTIVITY_SECONDS": ACTIVITY_SECONDS})
        self.procs.append(w)
        self.owners[w.app] = w.wait_ready()
        self.alive.append(w)
        return w

    def _holds(self, w: fx.Worker) -> str:
        runs = fx.scalar(self.url, "SELECT count(*) FROM continuum_runs WHERE lease_owner = %s", (self.owners[w.app],))
        tasks = fx.scalar(self.url, "SELECT count(*) FROM continuum_activity_tasks WHERE state = 'leased' "
                                    "AND lease_owner = %s", (self.owners[w.app],))
        return f"{runs} runs, {tasks} tasks"

    def busiest(self) -> fx.Worker:
        """The live worker running the most activity attempts (waiting up to 3 s for one that
        runs any), so that faults land on work in flight; else any live worker."""
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            busy = dict(fx.query(self.url, "SELECT lease_owner, count(*) FROM continuum_activity_tasks "
                                           "WHERE state = 'leased' GROUP BY 1"))
            loads = [(busy.get(self.owners[w.app], 0), w.label, w) for w in self.alive]
            top = max(loads, key=lambda x: (x[0], x[1]))
            if top[0] > 0:
                return top[2]
            time.sleep(0.05)
        return self.rng.choice(self.alive)

    def kill(self) -> fx.Worker:
        w = self.busiest()
        self.log.append(f"{time.time():.3f} kill -9 {w.label} (pid {w.pid}) holding {self._holds(w)}")
        self.alive.remove(w)
        w.kill()  # returns once the process is gone: nothing of it can start after this time
        self.killed[w.pid] = time.time()
        fx.wait_disconnected(self.url, w.app)
        return w

    def stop_and_continue(self) -> fx.Worker:
        w = self.busiest()
        held = {str(r) for (r,) in fx.query(self.url, "SELECT id FROM continuum_runs WHERE lease_owner = %s",
                                            (self.owners[w.app],))}
        self.log.append(f"{time.time():.3f} SIGSTOP {w.label} (pid {w.pid}) holding {self._holds(w)} "
                        f"for {STOP_SECONDS:g}s")
        t0 = time.time()
        w.send(signal.SIGSTOP)
        time.sleep(STOP_SECONDS)
        w.send(signal.SIGCONT)
        self.stops.append((w, t0, time.time(), held))
        return w

    def restart(self, server: str) -> None:
        running = fx.scalar(self.url, "SELECT count(*) FROM continuum_runs WHERE state IN ('running', 'suspended')")
        t0 = time.time()
        self.log.append(f"{t0:.3f} restart {server} with {running} runs unfinished")
        try:
            fx.restart_server(server)
        finally:
            fx.wait_until("PostgreSQL to accept connections again", lambda: fx.scalar(self.url, "SELECT true"), 120)
        self.restarts.append((t0, time.time()))
        self.log.append(f"{time.time():.3f} {server} is back")

    def interrupted(self, pid: int, started: float) -> bool:
        """Was an execution (its process, the time its body began) caught by one of the faults?"""
        if pid in self.killed and started <= self.killed[pid]:
            return True
        for w, t0, t1, _ in self.stops:
            if w.pid == pid and t0 - CAUGHT_BEFORE <= started <= t1:
                return True
        return any(t0 - CAUGHT_BEFORE <= started <= t1 + RESTART_TAIL for t0, t1 in self.restarts)


def _plan(rng: random.Random) -> list[str]:
    faults = ["kill"] * budget.CAMPAIGN_KILLS + ["stop"] * budget.CAMPAIGN_STOPS
    rng.shuffle(faults)
    for k in range(budget.CAMPAIGN_RESTARTS):  # spread over the middle of the load
        faults.insert((k + 1) * len(faults) // (budget.CAMPAIGN_RESTARTS + 1), "restart")
    return faults


def _kind(i: int) -> str:
    """The workflow of run number i: 40% orders (idempotent charge), 20% steps, 10% timers,
    20% runs waiting for a signal (a quarter of them are cancelled instead), 10% doomed."""
    return ("order", "order", "order", "order", "steps", "steps", "timer", "signal", "signal", "doomed")[i % 10]


def _start(inst: cn.Instance, i: int) -> tuple[str, str, Any]:
    """Start run i; returns (run id, what should become of it, its expected result)."""
    tag = f"c{i:05d}"
    kind = _kind(i)
    if kind == "order":
        rid = cn.start("fx_order", {"order_id": tag}, instance=inst).id
        return rid, "completed", {"order": tag, "receipt": {"charged": tag}, "shipped": f"shipped:{tag}"}
    if kind == "steps":
        return cn.start("fx_steps", {"tag": tag, "n": 3}, instance=inst).id, "completed", 3
    if kind == "timer":
        return cn.start("fx_timer", {"tag": tag, "seconds": 1.0}, instance=inst).id, "completed", 2
    if kind == "doomed":
        return cn.start("fx_doomed", {"tag": tag}, instance=inst).id, "failed", None
    rid = cn.start("fx_signal", {"tag": tag}, instance=inst).id
    if (i // 10) % 4 == 3:
        return rid, "cancelled", None
    return rid, "completed", {"got": {"n": i}, "step": 1}


def _client(url: str) -> cn.Instance:
    return cn.Instance(f"fx-campaign-{os.getpid()}-{time.monotonic_ns() % 10**6}", database_url=url,
                       run_engine=False, auto_migrate=False)


def test_fault_campaign(db_url: str, request: pytest.FixtureRequest) -> None:
    server = request.node.callspec.params["pg_server"]
    seed = int(os.environ.get("CONTINUUM_FAULTS_SEED") or random.randrange(10**6))
    rng = random.Random(seed)
    plan = _plan(rng)
    n_runs = budget.CAMPAIGN_RUNS
    print(f"fault campaign ({budget.MODE}) seed {seed}: {n_runs} runs, {budget.CAMPAIGN_WORKERS} workers, "
          f"faults {plan}")
    fx.install(db_url)
    batches = [list(range(n_runs))[k::len(plan) + 1] for k in range(len(plan) + 1)]
    batches = [sorted(b) for b in batches]
    expected: dict[str, tuple[str, Any, int]] = {}  # run id -> (final state, result, run number)
    inst = _client(db_url)
    try:
        with fx.workers() as procs:
            fleet = Fleet(db_url, procs, rng)
            for _ in range(budget.CAMPAIGN_WORKERS):
                fleet.spawn()
            pending_signals: list[tuple[str, int, str]] = []
            t_start = time.monotonic()
            for step, fault in enumerate([*plan, None]):
                for i in batches[step]:
                    rid, state, result = _start(inst, i)
                    expected[rid] = (state, result, i)
                    if _kind(i) == "signal":
                        pending_signals.append((rid, i, state))
                # Signal (or cancel) the runs of the earlier batches: they had time to suspend.
                ready = [p for p in pending_signals if expected[p[0]][2] not in batches[step]]
                for rid, i, state in ready:
                    if state == "cancelled":
                        cn.cancel(rid, instance=inst)
                    else:
                        cn.signal(rid, "go", {"n": i}, instance=inst)
                pending_signals = [p for p in pending_signals if p not in ready]
                time.sleep(rng.uniform(0.2, 0.8))  # let the batch get in flight
                if fault == "kill":
                    fleet.kill()
                    fleet.spawn()
                elif fault == "stop":
                    fleet.stop_and_continue()
                elif fault == "restart":
                    fleet.restart(server)
                    inst.close()  # its pooled connections died with the server
                    inst = _client(db_url)
            for rid, i, state in pending_signals:
                if state == "cancelled":
                    cn.cancel(rid, instance=inst)
                else:
                    cn.signal(rid, "go", {"n": i}, instance=inst)
            chaos_seconds = time.monotonic() - t_start
            try:
                fx.wait_until(f"all {n_runs} runs to end", lambda: fx.scalar(
                    db_url, "SELECT count(*) FROM continuum_runs WHERE state = ANY(%s)", (list(FINAL),)) == n_runs,
                    pick_timeout(), every=0.5)
            except AssertionError as exc:
                raise AssertionError(f"seed {seed}: {exc}\n{fx.diagnose(db_url, fleet.alive)}") from None
            total_seconds = time.monotonic() - t_start

            # 5. No engine died: the workers that were not killed are alive, their logs clean.
            survivors = [w for w in procs if w.pid not in fleet.killed]
            dead = [(w.label, w.proc.poll(), w.stderr()[-1500:]) for w in survivors if not w.alive()]
            assert dead == [], f"seed {seed}: workers that were not killed have exited: {dead}"
            for w in survivors:
                assert w.terminate(60) == 0, f"seed {seed}: {w.label} did not stop cleanly: {w.stderr()}"
            problems = [p for w in procs for p in w.engine_problems()]
            assert problems == [], f"seed {seed}: {problems}"
    finally:
        inst.close()

    # 1. Every run ended as designed.
    rows = fx.query(db_url, "SELECT id::text, workflow, state, result, error, lease_owner FROM continuum_runs")
    assert len(rows) == n_runs
    wrong = []
    for rid, workflow, state, result, error, lease_owner in rows:
        want_state, want_result, i = expected[rid]
        if state != want_state or lease_owner is not None:
            wrong.append((i, workflow, state, lease_owner, error))
        elif state == "completed" and result != want_result:
            wrong.append((i, workflow, "result", result, want_result))
        elif state == "failed" and not (isinstance(error, dict) and "doomed" in json.dumps(error)):
            wrong.append((i, workflow, "error", error))
    assert wrong == [], f"seed {seed}: runs that did not end as designed: {wrong[:10]}"
    open_tasks = fx.query(db_url, "SELECT run_id, seq, state, lease_owner FROM continuum_activity_tasks "
                                  "WHERE state NOT IN ('completed', 'failed', 'cancelled')")
    assert open_tasks == [], f"seed {seed}: tasks left open: {open_tasks[:10]}"
    undelivered = fx.query(db_url, """
        SELECT s.run_id FROM continuum_signals s JOIN continuum_runs r ON r.id = s.run_id
         WHERE NOT s.delivered AND r.state <> 'cancelled'""")
    assert undelivered == [], f"seed {seed}: signals never delivered: {undelivered[:10]}"

    # 2. The journal: no (run_id, seq) twice, no gap, nothing resolved twice.
    assert fx.journal_problems(db_url) == [], f"seed {seed}"
    duplicate_keys = fx.query(db_url, "SELECT run_id, seq, count(*) FROM continuum_events GROUP BY 1, 2 "
                                      "HAVING count(*) > 1")
    assert duplicate_keys == [], f"seed {seed}"

    # 4. No stale owner appended after losing its lease.
    assert fx.fencing_problems(db_url, fleet.owners) == [], f"seed {seed}"
    assert fx.token_order_problems(db_url) == [], f"seed {seed}"
    for w, _, resumed, held in fleet.stops:
        late = fx.query(db_url, """
            SELECT kind, run_id, seq, detail, lease_token FROM fx_writes
             WHERE writer = %s AND at >= to_timestamp(%s) AND run_id::text = ANY(%s)
               AND lease_token IN (SELECT lease_token FROM fx_writes v WHERE v.writer = %s AND v.at < to_timestamp(%s))""",
            (w.app, resumed, list(held), w.app, resumed))
        assert late == [], f"seed {seed}: {w.label} appended under a lease it had before it was stopped: {late}"

    # 3. Activity bodies repeated only inside the crash window.
    problems, counts = fx.execution_problems(db_url, fleet.interrupted, {"fx_doom": fx.DOOM_ATTEMPTS})
    if problems:
        stories = [fx.key_story(db_url, *p.split(": ", 1)[0].split(" ", 1)) for p in problems[:3]]
        raise AssertionError(f"seed {seed}: {problems[:10]}\nfaults: {fleet.log}\nworkers: "
                             + ", ".join(f"{w.label}={w.pid}" for w in procs) + "\n" + "\n".join(stories))
    stored = dict(fx.query(db_url, "SELECT idempotency_key, count(*) FROM continuum_activity_results "
                                   "WHERE activity_module = 'fx_charge' GROUP BY 1"))
    orders = sum(1 for i in range(n_runs) if _kind(i) == "order")
    assert len(stored) == orders and set(stored.values()) == {1}, f"seed {seed}"

    states = dict(fx.query(db_url, "SELECT state, count(*) FROM continuum_runs GROUP BY 1"))
    print(f"seed {seed}: {states}; faults done in {chaos_seconds:.0f}s, all runs ended after {total_seconds:.0f}s; "
          f"{len(fleet.killed)} kills, {len(fleet.stops)} stops, {len(fleet.restarts)} restarts; "
          f"{counts['executions']} executions of {counts['keys']} activity keys, "
          f"{counts['repeated_keys']} keys ran more than once (inside a crash window); "
          f"{fx.tasks_applied_without_task_lease(db_url, fleet.owners)} outcomes committed by the run holder "
          "after the task lease had expired")
    print("faults: " + "; ".join(fleet.log))


def pick_timeout() -> float:
    return float(budget.pick(180, 900))
