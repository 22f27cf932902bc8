"""Workflows and activities for the real-process fault tests.

Subprocess workers import this module (``continuum worker --import tests.faults.fault_workflows``)
and so does the test process, so both know the same definitions. Every activity records each
execution of its body in ``fx_effects``, a table of the tests' own (not a continuum table), on the
database named by ``FX_DATABASE_URL``: the tests count side effects there, independently of what
the engine journals.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import psycopg

import continuum_nb as cn

#: The side-effect ledger: one row per execution of an activity body (not per journaled result).
FX_DDL = """
CREATE TABLE IF NOT EXISTS fx_effects (
    id bigserial PRIMARY KEY,
    activity text NOT NULL,
    key text NOT NULL,
    pid integer NOT NULL,
    executed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- When the body was entered (the process's clock, same machine): a process stopped between
    -- entering the body and this insert still shows when its attempt began.
    started_at timestamptz
)
"""

_local = threading.local()


def _conn() -> psycopg.Connection[Any]:
    conn: psycopg.Connection[Any] | None = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = psycopg.connect(os.environ["FX_DATABASE_URL"], autocommit=True)
        _local.conn = conn
    return conn


def record_effect(activity: str, key: str, started: float | None = None) -> None:
    """The activity's external effect: a row in fx_effects, committed before the body returns.
    ``started`` (``time.time()`` at the body's first line) is stored as ``started_at``."""
    try:
        _conn().execute(
            "INSERT INTO fx_effects (activity, key, pid, started_at) "
            "VALUES (%s, %s, %s, coalesce(to_timestamp(%s::float8), clock_timestamp()))",
            (activity, key, os.getpid(), started),
        )
    except psycopg.OperationalError:
        _local.conn = None  # the server restarted: reconnect on the next attempt
        raise


def _pause() -> None:
    # How long each activity body takes: long enough that a kill lands while attempts are in flight.
    time.sleep(float(os.environ.get("FX_ACTIVITY_SECONDS", "0.02")))


_RETRY = cn.Retry(max_attempts=20, backoff="constant", base=cn.seconds(0.2))


@cn.activity(name="fx_charge", retry=_RETRY, timeout=cn.seconds(30),
             idempotency_key=lambda order_id: f"charge:{order_id}")
def fx_charge(order_id: str) -> dict[str, Any]:
    started = time.time()
    record_effect("fx_charge", f"charge:{order_id}", started)
    _pause()
    return {"charged": order_id}


@cn.activity(name="fx_ship", retry=_RETRY, timeout=cn.seconds(30))
def fx_ship(order_id: str) -> str:
    started = time.time()
    record_effect("fx_ship", f"ship:{order_id}", started)
    _pause()
    return f"shipped:{order_id}"


@cn.activity(name="fx_step", retry=_RETRY, timeout=cn.seconds(30))
def fx_step(tag: str, i: int) -> int:
    started = time.time()
    record_effect("fx_step", f"{tag}:{i}", started)
    return i


@cn.activity(name="fx_sleep", retry=_RETRY, timeout=cn.seconds(60))
def fx_sleep(tag: str, seconds: float) -> str:
    record_effect("fx_sleep", tag)
    time.sleep(seconds)
    return f"slept:{tag}"


#: fx_doom fails every attempt: a run of fx_doomed ends ``failed`` by design.
DOOM_ATTEMPTS = 2


@cn.activity(name="fx_doom", retry=cn.Retry(max_attempts=DOOM_ATTEMPTS, backoff="constant", base=cn.seconds(0.1)),
             timeout=cn.seconds(30))
def fx_doom(tag: str) -> str:
    started = time.time()
    record_effect("fx_doom", tag, started)
    raise ValueError(f"doomed:{tag}")


@cn.workflow(name="fx_order")
async def fx_order(order_id: str) -> dict[str, Any]:
    receipt = await fx_charge(order_id)
    shipped = await fx_ship(order_id)
    return {"order": order_id, "receipt": receipt, "shipped": shipped}


@cn.workflow(name="fx_steps")
async def fx_steps(tag: str, n: int) -> int:
    total = 0
    for i in range(n):
        total += await fx_step(tag, i)
    return total


@cn.workflow(name="fx_slow")
async def fx_slow(tag: str, seconds: float) -> str:
    first = await fx_sleep(tag, seconds)
    second = await fx_step(tag, 1)
    return f"{first}+{second}"


@cn.workflow(name="fx_signal")
async def fx_signal(tag: str) -> dict[str, Any]:
    got = await cn.signal("go")
    done = await fx_step(tag, 1)
    return {"got": got, "step": done}


@cn.workflow(name="fx_timer")
async def fx_timer(tag: str, seconds: float) -> int:
    await cn.timer(cn.seconds(seconds))
    return int(await fx_step(tag, 2))


@cn.activity(name="fx_link", retry=_RETRY, timeout=cn.seconds(30),
             idempotency_key=lambda tag, i: f"link:{tag}:{i}")
def fx_link(tag: str, i: int) -> int:
    return _idempotent_step("fx_link", f"link:{tag}:{i}", i)


def _idempotent_step(activity: str, key: str, i: int) -> int:
    started = time.time()
    record_effect(activity, key, started)
    _pause()
    return i


@cn.workflow(name="fx_chain")
async def fx_chain(tag: str, n: int) -> int:
    """n idempotent steps in a row, each taking FX_ACTIVITY_SECONDS."""
    total = 0
    for i in range(n):
        total += await fx_link(tag, i)
    return total


@cn.workflow(name="fx_kid")
async def fx_kid(tag: str, i: int) -> int:
    return await fx_step(f"{tag}-kid", i)


@cn.workflow(name="fx_parent")
async def fx_parent(tag: str) -> list[int]:
    """A step, then three children started in one commit (the crash test of child starts)."""
    await fx_step(tag, 0)
    return await cn.gather(*(cn.child("fx_kid", {"tag": tag, "i": i}) for i in range(1, 4)))


@cn.workflow(name="fx_cycles")
async def fx_cycles(tag: str, cycle: int, n: int, total: int = 0) -> dict[str, Any]:
    """One idempotent step per run, continuing as new until cycle n, which waits for "done"."""
    total += await fx_link(tag, cycle)
    if cycle < n:
        cn.continue_as_new({"tag": tag, "cycle": cycle + 1, "n": n, "total": total})
    done = await cn.signal("done")
    return {"tag": tag, "total": total, "done": done}


@cn.workflow(name="fx_race")
async def fx_race(tag: str) -> list[Any]:
    """A step, then the first of two idempotent steps and a long timer (the crash test of
    cn.first): the winner is whichever the journal resolved first."""
    await fx_step(tag, 0)
    index, value = await cn.first(fx_link(tag, 1), fx_link(tag, 2), cn.timer(cn.seconds(120)))
    return [index, value]


@cn.activity(name="fx_undo", retry=_RETRY, timeout=cn.seconds(30),
             idempotency_key=lambda tag, i: f"undo:{tag}:{i}")
def fx_undo(tag: str, i: int) -> int:
    return _idempotent_step("fx_undo", f"undo:{tag}:{i}", i)


@cn.workflow(name="fx_saga")
async def fx_saga(tag: str, steps: int) -> str:
    """``steps`` steps, each registering its compensation, then a step that always fails: the
    saga compensates them all, last first, and the run fails (the crash test of compensation)."""
    async with cn.saga() as saga:
        for i in range(1, steps + 1):
            await fx_link(tag, i)
            saga.add(fx_undo, tag, i)
        await fx_doom(tag)
    return "unreachable"


@cn.workflow(name="fx_doomed")
async def fx_doomed(tag: str) -> str:
    await fx_step(tag, 0)
    await fx_doom(tag)
    return "unreachable"


# ------------------------------------------------------------------------------------------------
# Test-side machinery (used by the test process only): worker subprocesses, the write log, waits.
# ------------------------------------------------------------------------------------------------

import contextlib  # noqa: E402
import signal as _signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

from psycopg.conninfo import make_conninfo  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
MODULE = "tests.faults.fault_workflows"

#: Who wrote what: a trigger logs every journal insert and every task outcome with the writing
#: connection's application_name (each worker gets its own) and the lease the run/task had at that
#: moment, inside the writing transaction. Run-state transitions are logged too. "The lease at that
#: moment" is the lease the transaction found (the one its fence checked): a wake may insert its
#: events and release the run in one statement, in either order, so the first update of a run row
#: in a transaction stashes the old lease in a transaction-local setting that the loggers read.
WRITE_LOG_DDL = """
CREATE TABLE IF NOT EXISTS fx_writes (
    id bigserial PRIMARY KEY,
    kind text NOT NULL,
    run_id uuid NOT NULL,
    seq bigint,
    writer text NOT NULL,
    lease_owner text,
    lease_token bigint,
    run_owner text,
    detail text,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE OR REPLACE FUNCTION fx_lease_key(run uuid) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT 'fx.lease_' || replace(run::text, '-', '')
$$;
-- The run's lease as this transaction found it: stashed (transaction-local) by the first update
-- of the run row in the transaction, else read from the row, which is then not yet updated.
CREATE OR REPLACE FUNCTION fx_lease_of(run uuid, OUT owner text, OUT token bigint) LANGUAGE plpgsql AS $$
DECLARE
    v text := current_setting(fx_lease_key(run), true);
BEGIN
    IF v IS NULL OR v = '' THEN
        SELECT r.lease_owner, r.lease_token INTO owner, token FROM continuum_runs r WHERE r.id = run;
    ELSE
        owner := nullif(split_part(v, '|', 1), '');
        token := nullif(split_part(v, '|', 2), '')::bigint;
    END IF;
END $$;
CREATE OR REPLACE FUNCTION fx_stash_lease() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v text := current_setting(fx_lease_key(OLD.id), true);
BEGIN
    IF v IS NULL OR v = '' THEN
        PERFORM set_config(fx_lease_key(OLD.id),
                           coalesce(OLD.lease_owner, '') || '|' || coalesce(OLD.lease_token::text, ''), true);
    END IF;
    RETURN NEW;
END $$;
CREATE OR REPLACE FUNCTION fx_log_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    l record := fx_lease_of(NEW.run_id);
BEGIN
    INSERT INTO fx_writes (kind, run_id, seq, writer, lease_owner, lease_token, detail)
    VALUES ('event', NEW.run_id, NEW.seq, current_setting('application_name'), l.owner, l.token,
            NEW.event_type);
    RETURN NEW;
END $$;
CREATE OR REPLACE FUNCTION fx_log_task() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    l record := fx_lease_of(NEW.run_id);
BEGIN
    INSERT INTO fx_writes (kind, run_id, seq, writer, lease_owner, lease_token, run_owner, detail)
    VALUES ('task', NEW.run_id, NEW.seq, current_setting('application_name'), OLD.lease_owner,
            OLD.lease_token, l.owner, NEW.state);
    RETURN NEW;
END $$;
CREATE OR REPLACE FUNCTION fx_log_run() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO fx_writes (kind, run_id, writer, lease_owner, lease_token, detail)
    VALUES ('state', NEW.id, current_setting('application_name'), OLD.lease_owner, OLD.lease_token,
            NEW.state);
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS fx_log_event ON continuum_events;
CREATE TRIGGER fx_log_event BEFORE INSERT ON continuum_events FOR EACH ROW EXECUTE FUNCTION fx_log_event();
DROP TRIGGER IF EXISTS fx_log_task ON continuum_activity_tasks;
CREATE TRIGGER fx_log_task BEFORE UPDATE ON continuum_activity_tasks FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state AND NEW.state IN ('completed', 'failed'))
    EXECUTE FUNCTION fx_log_task();
DROP TRIGGER IF EXISTS fx_stash_lease ON continuum_runs;
CREATE TRIGGER fx_stash_lease BEFORE UPDATE ON continuum_runs FOR EACH ROW EXECUTE FUNCTION fx_stash_lease();
DROP TRIGGER IF EXISTS fx_log_run ON continuum_runs;
CREATE TRIGGER fx_log_run AFTER UPDATE ON continuum_runs FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION fx_log_run();
"""


def install(url: str, *, write_log: bool = True) -> None:
    """Create the side-effect ledger (and the write log) in a migrated test database."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(FX_DDL)
        if write_log:
            conn.execute(WRITE_LOG_DDL)


def query(url: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return list(conn.execute(sql, params).fetchall())


def scalar(url: str, sql: str, params: Any = None) -> Any:
    rows = query(url, sql, params)
    return rows[0][0] if rows else None


def wait_until(what: str, pred: Callable[[], Any], timeout: float, *, every: float = 0.1) -> Any:
    """Poll ``pred`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = pred()
        except psycopg.OperationalError as exc:  # the server is restarting: keep waiting
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")


def completed_count(url: str, workflow: str | None = None) -> int:
    if workflow is None:
        return int(scalar(url, "SELECT count(*) FROM continuum_runs WHERE state = 'completed'"))
    return int(scalar(url, "SELECT count(*) FROM continuum_runs WHERE state = 'completed' AND workflow = %s",
                      (workflow,)))


class Worker:
    """One ``continuum worker`` subprocess, its own application_name on every connection."""

    def __init__(self, url: str, label: str, *, lease_ttl: float = 2.0, heartbeat: float = 0.5,
                 concurrency: int = 8, extra: tuple[str, ...] = (), env: dict[str, str] | None = None,
                 imports: tuple[str, ...] = (MODULE,)) -> None:
        self.label = label
        self.app = f"fx-{label}"
        self.url = make_conninfo(url, application_name=self.app)
        self.owner: str | None = None
        self._log = tempfile.NamedTemporaryFile(prefix=f"fx-worker-{label}-", suffix=".log", delete=False)  # noqa: SIM115
        argv = [sys.executable, "-m", "continuum_nb", "worker", "--database-url", self.url,
                "--lease-ttl", str(lease_ttl), "--concurrency", str(concurrency), *extra]
        for module in imports:
            argv += ["--import", module]
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("CONTINUUM_")}
        child_env.update({
            "FX_DATABASE_URL": url,
            "CONTINUUM_HEARTBEAT": str(heartbeat),
            "CONTINUUM_POLL_INTERVAL": "0.25",
            "PYTHONUNBUFFERED": "1",
        })
        child_env.update(env or {})
        self.proc = subprocess.Popen(  # noqa: S603 - our own CLI
            argv, cwd=REPO_ROOT, env=child_env, stdout=subprocess.PIPE, stderr=self._log, text=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 60.0) -> str:
        """Block until the worker prints its ready line; returns its lease owner string."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.startswith("continuum worker ") and " ready " in line:
                self.owner = line.split()[2]
                return self.owner
        raise AssertionError(f"worker {self.label} did not become ready: {self.stderr()}")

    def stderr(self) -> str:
        return Path(self._log.name).read_text(errors="replace")[-4000:]

    def log_text(self) -> str:
        """The worker's whole log (its stderr)."""
        return Path(self._log.name).read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def engine_problems(self) -> list[str]:
        """Signs in the log that an engine (or one of its threads) died, or that user code's
        exception escaped into the engine: "engine stopped unexpectedly", a crashed engine loop,
        an uncaught exception in a thread, a fatal error, or a traceback through this module
        (the activities and workflows are user code). Tracebacks of database errors that the
        engine logs and survives (a PostgreSQL restart) are not problems."""
        text = self.log_text()
        problems = [f"{self.label}: {line.strip()}" for line in text.splitlines()
                    if any(m in line for m in _DEATH_MARKS) or ("engine loop" in line and "crashed" in line)]
        block: list[str] = []
        for line in [*text.splitlines(), ""]:
            if line.startswith("Traceback (most recent call last):"):
                block = [line]
            elif block and (line.startswith(" ") or not line.strip()):
                block.append(line)
            elif block:
                block.append(line)
                if any("fault_workflows.py" in b for b in block):
                    problems.append(f"{self.label}: a traceback through user code: {line.strip()}")
                block = []
        return problems

    def send(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(_signal.SIGKILL)
            self.proc.wait(30)

    def terminate(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(_signal.SIGCONT)  # a stopped process cannot handle SIGTERM
            self.proc.send_signal(_signal.SIGTERM)
        return self.proc.wait(timeout)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.kill()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()
        with contextlib.suppress(OSError):
            os.unlink(self._log.name)


#: Log lines that say an engine, one of its threads or the process died.
_DEATH_MARKS = ("engine stopped unexpectedly", "Exception in thread", "Fatal Python error")


@contextlib.contextmanager
def workers(*ws: Worker) -> Iterator[list[Worker]]:
    """Make sure every worker process is gone at the end of a test, whatever happened (workers
    started later are appended to the yielded list)."""
    started = list(ws)
    try:
        yield started
    finally:
        for w in started:
            w.close()


def wait_disconnected(url: str, app: str, timeout: float = 30.0) -> None:
    """Wait until the server has no session of ``app`` left (a killed process's transactions are
    then either committed or rolled back, so the database state is final for it)."""
    wait_until(f"the sessions of {app} to end", lambda: scalar(
        url, "SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = %s", (app,)), timeout)


@contextlib.contextmanager
def taken_over(url: str, start: Callable[[Any], None], *, killed_when: tuple[str, Callable[[], Any]],
               done_when: tuple[str, Callable[[], Any]], env: dict[str, str], lease_ttl: float = 2.0,
               done_timeout: float = 150.0) -> Iterator[tuple[Any, dict[str, str]]]:
    """Worker A runs what ``start(client)`` starts and is killed with SIGKILL once
    ``killed_when`` holds (not ``done_when`` yet); worker B then finishes until ``done_when``
    holds. Yields the client instance and {application name: owner} of both workers (for
    ``fencing_problems``), the workers still running."""
    a = Worker(url, "A", lease_ttl=lease_ttl, env=env)
    with workers(a) as procs, client(url) as inst:
        owner_a = a.wait_ready()
        start(inst)
        wait_until(killed_when[0], killed_when[1], 90)
        a.kill()
        wait_disconnected(url, a.app)
        assert not done_when[1](), f"A was done before it was killed: {done_when[0]}"
        b = Worker(url, "B", lease_ttl=lease_ttl, env=env)
        procs.append(b)
        owner_b = b.wait_ready()
        wait_until(done_when[0], done_when[1], done_timeout)
        yield inst, {a.app: owner_a, b.app: owner_b}


@contextlib.contextmanager
def client(url: str) -> Iterator[Any]:
    """A pure client instance (run_engine=False): it starts and signals runs, workers execute them."""
    import uuid as _uuid

    inst = cn.Instance(f"fx-client-{_uuid.uuid4().hex[:8]}", database_url=url, run_engine=False,
                       auto_migrate=False)
    try:
        yield inst
    finally:
        inst.close()


def restart_server(server: str) -> None:
    """Restart the test server (``pg15``: the machine's PostgreSQL 15 with ``pg_ctlcluster``; it
    disturbs other sessions on that server for a second or two. ``pg18``: stop + start of this
    session's embedded PostgreSQL 18). Skips the test when pg_ctlcluster is missing."""
    import shutil

    import pytest

    if server == "pg15":
        ctl = shutil.which("pg_ctlcluster")
        if ctl is None:
            pytest.skip("pg_ctlcluster is not available to restart PostgreSQL 15")
        subprocess.run([ctl, "--skip-systemctl-redirect", "15", "main", "restart"], check=True, timeout=120)  # noqa: S603
        return
    from continuum_nb.store.embedded import EmbeddedPostgres
    from tests import servers

    mine = [
        root for root in Path(tempfile.gettempdir()).glob("cn-test-pg18-*")
        if (root / "owner.pid").exists() and (root / "owner.pid").read_text().strip() == str(os.getpid())
    ]
    assert len(mine) == 1, f"cannot find this session's embedded PostgreSQL 18: {mine}"
    server_ = EmbeddedPostgres(mine[0], settings=servers._TEST_SETTINGS)
    assert server_.stop()
    server_.start()


def journal_problems(url: str) -> list[str]:
    """Every way the journal could be broken: a (run_id, seq) twice, or a seq gap (seq is 1..n)."""
    problems = [
        f"(run {r}, seq {s}) appears {n} times"
        for r, s, n in query(url, "SELECT run_id, seq, count(*) FROM continuum_events GROUP BY 1, 2 HAVING count(*) > 1")
    ]
    problems += [
        f"run {r}: seqs are not 1..{n} (min {lo}, max {hi}, distinct {d})"
        for r, n, lo, hi, d in query(url, """
            SELECT run_id, count(*), min(seq), max(seq), count(DISTINCT seq) FROM continuum_events
             GROUP BY run_id HAVING min(seq) <> 1 OR max(seq) <> count(*) OR count(DISTINCT seq) <> count(*)""")
    ]
    problems += [
        f"run {r}: activity scheduled at seq {s} resolved {n} times"
        for r, s, n in query(url, """
            SELECT run_id, (payload->>'scheduled_seq')::bigint, count(*) FROM continuum_events
             WHERE event_type IN ('activity_completed', 'activity_failed') GROUP BY 1, 2 HAVING count(*) > 1""")
    ]
    return problems


def fencing_problems(url: str, owners: dict[str, str]) -> list[str]:
    """Writes made by a process that did not hold the lease at that moment.

    ``owners`` maps application_name -> lease owner string of each worker. A journal insert must
    come from the process whose owner held the run row's lease inside that transaction; a task
    outcome from the process holding the task lease, or the run lease (an attempt that ran on
    the engine holding the run is committed with the run's next wake, fenced by the run token).
    """
    out = []
    for kind, run_id, seq, writer, owner, token, run_owner, detail in query(
        url, "SELECT kind, run_id, seq, writer, lease_owner, lease_token, run_owner, detail FROM fx_writes "
             "WHERE kind IN ('event', 'task') ORDER BY id"
    ):
        if writer not in owners:
            continue  # not one of the test's workers (e.g. the test's own client)
        if owner != owners[writer] and not (kind == "task" and run_owner == owners[writer]):
            out.append(f"{kind} {detail} of run {run_id} seq {seq} written by {writer} "
                       f"({owners[writer]}) while the lease was {owner!r} token {token}")
    return out


def diagnose(url: str, ws: list[Worker]) -> str:
    """What is stuck, for a failure message: unfinished runs, their open tasks, worker logs."""
    states = query(url, "SELECT state, count(*) FROM continuum_runs GROUP BY 1")
    lines = [f"states: {states}"]
    for row in query(url, """
            SELECT r.id, r.state, r.lease_owner, r.lease_expires_at, r.next_wakeup_at,
                   (SELECT max(seq) FROM continuum_events e WHERE e.run_id = r.id),
                   (SELECT array_agg(t.seq || ':' || t.state || ':' || coalesce(t.lease_owner, '-'))
                      FROM continuum_activity_tasks t WHERE t.run_id = r.id AND t.state <> 'completed')
              FROM continuum_runs r WHERE r.state NOT IN ('completed') ORDER BY r.started_at LIMIT 10"""):
        lines.append(f"  {row}")
    lines.append(f"now: {scalar(url, 'SELECT now()')}")
    for w in ws:
        lines.append(f"--- worker {w.label} ({w.owner}, exit {w.proc.poll()}):\n{w.stderr()[-2500:]}")
    return "\n".join(lines)


def tasks_applied_without_task_lease(url: str, owners: dict[str, str]) -> int:
    """Task outcomes a run holder committed after the task's own lease had expired (and the task
    had been made available again, or claimed by another engine): the attempt may have run twice."""
    return sum(
        1 for writer, owner in query(url, "SELECT writer, lease_owner FROM fx_writes WHERE kind = 'task'")
        if writer in owners and owner != owners[writer]
    )


#: Activities with an idempotency key: once a key's result is stored, no engine runs the body again.
IDEMPOTENT = ("fx_charge", "fx_link")


def execution_problems(url: str, interrupted: Callable[[int, float], bool],
                       allowed: dict[str, int] | None = None) -> tuple[list[str], dict[str, int]]:
    """Activity bodies that ran outside the documented crash window.

    docs/operations.md ("What happens when something fails"): an attempt runs again when the
    process running it died (or stalled past its lease, or lost its commit to a server restart)
    after the body's effect but before its result was stored; nothing else repeats a body.
    ``interrupted(pid, started)`` says whether an execution (the process, the time its body was
    entered) was caught by such a fault. Then, per activity and key:
      - at most ``allowed[activity]`` (default 1) executions were not interrupted: a healthy
        engine never runs a body twice, and two engines never both run it;
      - for the idempotent activities, no uninterrupted execution started after the key's result
        was stored (the stored result is returned instead).
    Returns the problems and counts (keys, executions, keys that ran more often than allowed,
    all inside a crash window when there is no problem).
    """
    allowed = allowed or {}
    rows = query(url, """
        SELECT e.activity, e.key, e.pid, extract(epoch FROM e.started_at)::float8,
               extract(epoch FROM r.completed_at)::float8
          FROM fx_effects e
          LEFT JOIN continuum_activity_results r ON r.activity_module = e.activity AND r.idempotency_key = e.key
         ORDER BY e.id""")
    by_key: dict[tuple[str, str], list[tuple[int, float, float | None]]] = {}
    for activity, key, pid, started, stored in rows:
        by_key.setdefault((activity, key), []).append((pid, started, stored))
    problems: list[str] = []
    repeated = 0
    for (activity, key), ex in by_key.items():
        repeated += len(ex) > allowed.get(activity, 1)
        healthy = [(pid, started, stored) for pid, started, stored in ex if not interrupted(pid, started)]
        if len(healthy) > allowed.get(activity, 1):
            problems.append(f"{activity} {key}: {len(healthy)} executions outside any crash window "
                            f"(pid, started): {[(p, round(s, 3)) for p, s, _ in healthy]}")
        if activity in IDEMPOTENT:
            late = [(pid, started) for pid, started, stored in healthy if stored is not None and started > stored]
            if late:
                problems.append(f"{activity} {key}: ran after its result was stored ({ex[0][2]:.3f}): {late}")
    return problems, {"keys": len(by_key), "executions": len(rows), "repeated_keys": repeated}


def token_order_problems(url: str) -> list[str]:
    """A stale lease that appended after a newer one: along each journal (by seq) the lease token
    the write was made under never goes down."""
    toks: dict[Any, list[int]] = {}
    for run_id, token in query(url, "SELECT run_id, lease_token FROM fx_writes WHERE kind = 'event' "
                                    "AND lease_token IS NOT NULL ORDER BY run_id, seq"):
        toks.setdefault(run_id, []).append(token)
    return [f"run {r}: an older lease wrote after a newer one: {t}" for r, t in toks.items() if t != sorted(t)]


def key_story(url: str, activity: str, key: str) -> str:
    """Everything the ledgers know about one activity key, for a failure message: its executions,
    its stored result, its task rows, and the writes to its run."""
    lines = [f"--- {activity} {key}"]
    lines += [f"  effect pid {pid} started {s:.3f} executed {e:.3f}" for pid, s, e in query(url, """
        SELECT pid, extract(epoch FROM started_at)::float8, extract(epoch FROM executed_at)::float8
          FROM fx_effects WHERE activity = %s AND key = %s ORDER BY id""", (activity, key))]
    lines += [f"  stored result for run {r} seq {q} at {c:.3f}" for r, q, c in query(url, """
        SELECT run_id, seq, extract(epoch FROM completed_at)::float8 FROM continuum_activity_results
         WHERE activity_module = %s AND idempotency_key = %s""", (activity, key))]
    tag = next((part for part in key.split(":") if part[:1] in "chsgt" and part[1:2].isdigit()), key)
    runs = [r for (r,) in query(url, """
        SELECT DISTINCT run_id FROM continuum_events WHERE event_type = 'activity_scheduled'
           AND payload->>'activity' = %s AND payload::text LIKE %s""", (activity, f'%"{tag}"%'))]
    for run_id in runs[:3]:
        lines += [f"  task seq {row[0]} {row[1:]}" for row in query(url, """
            SELECT * FROM continuum_activity_tasks WHERE run_id = %s ORDER BY seq""", (run_id,))]
        lines += [f"  write {k} seq {q} {d} by {w} under {o} token {t} at {a:.3f}" for k, q, d, w, o, t, a in query(url, """
            SELECT kind, seq, detail, writer, lease_owner, lease_token, extract(epoch FROM at)::float8
              FROM fx_writes WHERE run_id = %s ORDER BY id""", (run_id,))]
    return "\n".join(lines)
