"""A generated stream of hostile inputs against a real engine on real PostgreSQL.

The contract (what the engine is being changed to meet; these tests are written to it):

1. Poison is contained. Whatever an activity body does (raise any BaseException, sys.exit(),
   return a value that cannot be stored, raise with a NUL in the message) the attempt counts as
   failed and ``max_attempts`` ends it: the run sees ``cn.ActivityFailed``. Whatever a workflow
   body does (raise any BaseException, return something unstorable, ``await
   cn.timer(float("nan"))``) the run ends ``failed`` with a readable ``error``, on the first
   wake too (``cn.start`` returns, it does not raise). No engine thread dies: a normal run on the
   same engine completes afterwards.
2. Every value crosses one validation gate before the database: NUL, lone surrogates, names
   over the length limit, JSON nested 2,000 deep (100,000 deep refused in well under a second),
   ints beyond what JSON/numeric carry, non-finite floats, ``cn.runs(limit=-1)`` and
   ``limit=10**20``, ``cn.runs(workflow="a\\x00")`` are refused at the call with ValueError or
   TypeError (never a psycopg error, RecursionError, UnicodeEncodeError or DatabaseUnavailable)
   and nothing is written. In a magic the refusal is one line, never a traceback.
3. Settings are validated where they enter (``cn.configure``, ``cn.Instance``, ``CONTINUUM_*``,
   ``continuum worker`` options): ``cn.ConfigurationError``; the CLI prints one line and exits
   non-zero. ``cn.wait(run, timeout=nan)`` is a ValueError.
4. A stored ``%%workflow`` source that no longer hashes to its ``version_hash`` never runs.

Each test is parametrised by the *kind* of hostile value, so a failure names the kind;
Hypothesis generates the values (tests/faults/hostile.py), with the example budget of the
short/long switch (tests/faults/budget.py). The poisoned engine of part 1 runs in a child
process (tests/faults/poison_host.py says why); the rest uses an engine in this process, and
every call that might hang or raise a BaseException runs on a thread of its own with a deadline.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import pickle
import select
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import continuum_nb as cn
from continuum_nb.definitions.activity import ACTIVITIES
from continuum_nb.definitions.workflow import WorkflowDef
from tests.faults import fault_workflows as fx
from tests.faults import hostile as hx

pytestmark = pytest.mark.postgres


# ------------------------------------------------------------------------------------------------
# Workflows of the in-process engine (the validation tests)
# ------------------------------------------------------------------------------------------------


async def hx_fine(x: int) -> int:
    return x + 1


async def hx_waits() -> Any:
    return await cn.signal("go")


def _define(inst: cn.Instance, fn: Callable[..., Any]) -> WorkflowDef:
    wf = WorkflowDef(fn, name=fn.__name__)
    inst.registry.register(wf)
    return wf


# ------------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def thread_deaths() -> Iterator[list[str]]:
    """Uncaught exceptions in any thread during the test (an engine thread that died)."""
    seen: list[str] = []
    previous = threading.excepthook

    def hook(args: Any) -> None:
        seen.append(f"{args.thread.name if args.thread else '?'}: {args.exc_type.__name__}")

    threading.excepthook = hook
    try:
        yield seen
    finally:
        threading.excepthook = previous


class Engine:
    """An in-process engine on the test's database, with hx_fine and hx_waits registered."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.inst = cn.Instance(f"hx-{uuid.uuid4().hex[:8]}", database_url=url, poll_interval=0.1,
                                lease_ttl=5.0)
        self.fine = _define(self.inst, hx_fine)
        self.waits = _define(self.inst, hx_waits)

    def settle(self) -> None:
        """Wait for the engine's start-up writes (it stores a version row for every workflow it
        knows, in the background), so that row counts before and after a refused call compare
        only what the call did."""
        known = {(w.name, w.version_hash) for reg in self.inst.registries for w in reg.all()}
        fx.wait_until("the engine to store the versions it knows", lambda: fx.scalar(
            self.url, "SELECT count(*) FROM continuum_workflow_versions") >= len(known), 30, every=0.05)

    def waiting_run(self) -> cn.Run:
        """A run suspended on a signal, its first wake committed (so nothing of it is written
        while a test counts rows)."""
        run = cn.start(self.waits, {}, instance=self.inst)
        fx.wait_until("the run to wait for its signal", lambda: [e.event_type for e in cn.api.events(
            run.id, instance=self.inst)] == ["signal_awaited"] and run.state == "suspended", 30, every=0.05)
        return run


@pytest.fixture
def engine(db_url: str, thread_deaths: list[str]) -> Iterator[Engine]:
    e = Engine(db_url)
    try:
        assert cn.start(e.fine, {"x": 1}, instance=e.inst).wait(30) == 2
        e.settle()
        yield e
        assert thread_deaths == [], f"threads died: {thread_deaths}"
    finally:
        e.inst.close()


class PoisonHost:
    """The engine of the poison tests, in a child process (tests/faults/poison_host.py): started
    on first use, and again after an example found a problem (its state is then unknown)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="hx-poison-host-", suffix=".log", delete=False)  # noqa: SIM115

    def _start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTINUUM_")}
        env["PYTHONPATH"] = os.pathsep.join([str(fx.REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        self.proc = subprocess.Popen(  # noqa: S603 - the test's own helper
            [sys.executable, "-m", "tests.faults.poison_host", self.url], cwd=fx.REPO_ROOT, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, bufsize=0)
        line = self._readline(60.0)
        if line != "ready":
            self.stop()
            raise AssertionError(f"the poison host did not start: {line!r}\n{self.log_tail()}")

    def _readline(self, timeout: float) -> str | None:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        buf = b""
        deadline = time.monotonic() + timeout
        while b"\n" not in buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return buf.decode(errors="replace") or ""
                buf += chunk
        return buf.split(b"\n", 1)[0].decode()

    def log_tail(self) -> str:
        return Path(self._log.name).read_text(errors="replace")[-1500:]

    def ask(self, family: str, recipe: tuple[str, Any]) -> str | None:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        assert self.proc is not None and self.proc.stdin is not None
        payload = pickle.dumps({"family": family, "recipe": recipe})
        try:
            self.proc.stdin.write(struct.pack(">I", len(payload)) + payload)
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        line = self._readline(HOST_ANSWER)
        if line is None:
            problem = "the engine's process gave no answer in time"
        elif not line:
            problem = f"the engine's process died (exit {self.proc.wait(10)}): {self.log_tail()[-600:]!r}"
        else:
            problem = json.loads(line)["problem"]
        if problem is not None:
            self.stop()  # a fresh engine for the next test
        return problem

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(10)
            for stream in (self.proc.stdin, self.proc.stdout):
                if stream is not None:
                    stream.close()
            self.proc = None

    def close(self) -> None:
        self.stop()
        self._log.close()
        with contextlib.suppress(OSError):
            os.unlink(self._log.name)


@pytest.fixture(scope="module")
def poison_host(pg_server: str) -> Iterator[PoisonHost]:
    """One host (and database) for all the poison tests of a server."""
    from tests import conftest as root

    name, url = root._fresh_db(pg_server, root.TEMPLATE)
    host = PoisonHost(url)
    try:
        yield host
    finally:
        host.close()
        root._drop_db(pg_server, name)


#: The first failure of each test: Hypothesis stops at the first failing example and replays it
#: once to report it; the replay must not wait out the same timeouts again (the test's later
#: examples are never run, so keying by test is enough).
_failed: dict[str, str] = {}


def _once(test: str, check: Callable[[], str | None]) -> None:
    problem = _failed.get(test)
    if problem is None:
        problem = check()
        if problem is not None:
            _failed[test] = problem
    if problem is not None:
        raise AssertionError(problem)  # one line for both: Hypothesis compares where it failed


# ------------------------------------------------------------------------------------------------
# 1. Poison is contained (the engine runs in tests/faults/poison_host.py, see there why)
# ------------------------------------------------------------------------------------------------

#: How long the test waits for the host's answer to one example (the host waits 3 s per run).
HOST_ANSWER = 60.0

_DEEP_RECIPE = st.tuples(st.just("deep"), st.integers(2_000, 3_000), st.sampled_from(["list", "dict", "mixed"]))
_EXIT_CODES = st.one_of(st.none(), st.integers(-3, 300), hx.PLAIN)


def _as(what: str, strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[str, Any]]:
    return strategy.map(lambda arg: (what, arg))


def _result(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[str, Any]]:
    return _as("result", strategy)


#: What a poisoned body raises (the same for activities and workflows), by kind; recipes
#: ``(what, argument)`` for poison_host.activity_body.
_RAISES: dict[str, st.SearchStrategy[tuple[str, Any]]] = {
    "SystemExit or sys.exit()": st.one_of(_as("SystemExit", _EXIT_CODES), _as("sys.exit()", _EXIT_CODES)),
    "KeyboardInterrupt, GeneratorExit or another BaseException": st.one_of(
        _as("KeyboardInterrupt", hx.PLAIN), _as("GeneratorExit", hx.PLAIN), _as("BaseException subclass", hx.PLAIN)),
    "NUL or a surrogate in the exception message": st.one_of(
        _as("NUL in the exception message", hx.NUL_TEXT),
        _as("surrogate in the exception message", hx.SURROGATE_TEXT)),
    "an exception whose str() raises": _as("exception whose str() raises", st.none()),
}
_NUL_OR_SURROGATE = st.one_of(hx.CARRIED["nul_string"], hx.CARRIED["nul_key"], hx.CARRIED["surrogate_string"],
                              hx.CARRIED["surrogate_key"])
_NOT_JSON = st.one_of(hx.CARRIED["non_finite"],
                      st.sampled_from([("not_json", n) for n in ("object", "set", "bytes", "path")]))

#: What a poisoned activity body does, by kind.
ACTIVITY_POISONS: dict[str, st.SearchStrategy[tuple[str, Any]]] = {
    **_RAISES,
    "unstorable result: NUL or a surrogate": _result(_NUL_OR_SURROGATE),
    "unstorable result: huge int": _result(hx.CARRIED["big_int"]),
    "unstorable result: nested 2,000 deep": _result(_DEEP_RECIPE),
    "unstorable result: non-finite float or not JSON": _result(_NOT_JSON),
}


@pytest.mark.parametrize("kind", list(ACTIVITY_POISONS))
def test_poisoned_activity_fails_its_attempts_and_the_run_sees_activity_failed(
        poison_host: PoisonHost, kind: str, request: pytest.FixtureRequest) -> None:
    """Each example runs the poisoned body as each kind of activity (inline on the drive
    thread, on the activity pool, async) at once; a failure names the kinds that failed."""

    @hx.hx_settings(short=4, long=60)
    @given(recipe=hx.shown(ACTIVITY_POISONS[kind]))
    def prop(recipe: hx.Shown) -> None:
        _once(request.node.nodeid, lambda: poison_host.ask("activity", recipe.value))

    explicit = {"unstorable result: NUL or a surrogate": ("result", "a\x00b"),
                "NUL or a surrogate in the exception message": ("NUL in the exception message", "a\x00b"),
                "SystemExit or sys.exit()": ("sys.exit()", 3)}
    if kind in explicit:
        prop = example(recipe=hx.Shown(explicit[kind]))(prop)
    prop()


#: What a poisoned workflow body does, by kind (after an optional first step).
WORKFLOW_POISONS: dict[str, st.SearchStrategy[tuple[str, Any]]] = {
    **_RAISES,
    "unstorable result: NUL or a surrogate": _result(st.one_of(hx.CARRIED["nul_string"],
                                                               hx.CARRIED["surrogate_string"])),
    "unstorable result: huge int": _result(hx.CARRIED["big_int"]),
    "unstorable result: nested 2,000 deep": _result(_DEEP_RECIPE),
    "unstorable result: non-finite or not JSON": _result(
        st.sampled_from([("not_json", "nan"), ("not_json", "object"), ("not_json", "set")])),
    "timer(nan, inf, huge)": _as("timer", st.sampled_from([math.nan, math.inf, -math.inf, 1e308, 1e300])),
    "signal with a hostile name": _as("signal name", st.one_of(*hx.NAMES.values())),
    "signal with a nan/inf timeout": _as("signal timeout", st.sampled_from([math.nan, math.inf, 1e308])),
    "activity called with unstorable arguments": _as("activity arguments", st.one_of(
        _NUL_OR_SURROGATE, hx.CARRIED["big_int"], hx.CARRIED["non_finite"], _DEEP_RECIPE)),
    "side_effect returning an unstorable value": _as("side_effect", st.one_of(
        hx.CARRIED["nul_string"], hx.CARRIED["surrogate_string"], _DEEP_RECIPE)),
}


@pytest.mark.parametrize("kind", list(WORKFLOW_POISONS))
def test_poisoned_workflow_ends_failed_with_a_readable_error(
        poison_host: PoisonHost, kind: str, request: pytest.FixtureRequest) -> None:
    """Each example runs the poisoned body on the first wake (inside cn.start) and after a
    first step, at once; a failure names which failed."""

    @hx.hx_settings(short=4, long=60)
    @given(recipe=hx.shown(WORKFLOW_POISONS[kind]))
    def prop(recipe: hx.Shown) -> None:
        _once(request.node.nodeid, lambda: poison_host.ask("workflow", recipe.value))

    if kind == "timer(nan, inf, huge)":  # the contract's own example
        prop = example(recipe=hx.Shown(("timer", math.nan)))(prop)
    prop()


# ------------------------------------------------------------------------------------------------
# 2. One validation gate before the database
# ------------------------------------------------------------------------------------------------


def _refused(url: str, call: Callable[[], Any], *,
             allowed: tuple[type[BaseException], ...] = (ValueError, TypeError), deadline: float = 5.0) -> None:
    before = hx.row_counts(url)
    r = hx.call_with_deadline(call, deadline)
    problem = hx.refusal_problem(r, allowed=allowed)
    after = hx.row_counts(url)
    written = {t: (before[t], after[t]) for t in before if before[t] != after[t]}
    if written:
        problem = f"{problem or 'refused'}; and rows were written: {written}"
    assert problem is None, problem


@pytest.mark.parametrize("where", ["cn.start input", "cn.signal payload"])
@pytest.mark.parametrize("category", list(hx.PAYLOADS))
def test_hostile_payloads_are_refused_at_the_call(engine: Engine, where: str, category: str) -> None:
    waiting = engine.waiting_run()

    @hx.hx_settings(short=5, long=100)
    @given(shown=hx.shown(hx.CARRIED[category]))
    def prop(shown: hx.Shown) -> None:
        value = shown.value
        if where == "cn.start input":
            _refused(engine.url, lambda: cn.start(engine.fine, {"x": value}, instance=engine.inst))
        else:
            _refused(engine.url, lambda: cn.signal(waiting.id, "go", value, instance=engine.inst))

    hx.with_examples(prop, "shown", [hx.Shown(v) for v in hx.EXPLICIT_PAYLOADS[category]])()
    cn.cancel(waiting.id, instance=engine.inst)


_DEEP_SCRIPT = r"""
import json, sys
import continuum_nb as cn
from continuum_nb.errors import DatabaseUnavailable
inst = cn.Instance("deep", database_url=sys.argv[1], run_engine=False, auto_migrate=False)
value = 0
for i in range(100_000):
    value = [value] if sys.argv[3] == "list" else {"d": value}
try:
    if sys.argv[2] == "input":
        cn.start("hx_stored", {"x": value}, instance=inst)
    else:
        cn.signal(sys.argv[4], "go", value, instance=inst)
    out = {"raised": None}
except BaseException as exc:
    chain, cur = [], exc
    while cur is not None and len(chain) < 10:
        chain.append(type(cur).__module__ + "." + type(cur).__name__)
        cur = cur.__cause__ or cur.__context__
    out = {"raised": chain, "validation": isinstance(exc, (ValueError, TypeError)),
           "message": str(exc)[:200]}
print(json.dumps(out), flush=True)
"""


@pytest.mark.parametrize(("where", "shape"), [("input", "list"), ("signal", "dict")])
def test_json_100000_deep_is_refused(db_url: str, where: str, shape: str) -> None:
    """In a subprocess with a deadline: a gate that walks the value recursively (or lets the
    encoder do it) could hang or overflow the stack here, and must not hold up the suite. How
    fast the refusal is lives in ``benchmarks/refusal.py``, not here."""
    with fx.client(db_url) as inst:
        inst.store.save_version("hx_stored", "0" * 64, "async def hx_stored(x): ...", "module")
        run_id = str(uuid.uuid4()) if where == "input" else cn.start("hx_stored", {"x": 1}, instance=inst).id
    before = hx.row_counts(db_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTINUUM_")}
    env["PYTHONPATH"] = os.pathsep.join([str(fx.REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    try:
        done = subprocess.run([sys.executable, "-c", _DEEP_SCRIPT, db_url, where, shape, run_id],  # noqa: S603
                              cwd=fx.REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("a value nested 100,000 deep was not refused within 60 s, starting the process included "
                    "(it was killed): the gate hangs on it")
    lines = done.stdout.strip().splitlines()
    assert lines, f"the process printed nothing (exit {done.returncode}): {done.stderr[-2000:]}"
    out = json.loads(lines[-1])
    assert out["raised"] is not None, f"a value nested 100,000 deep was accepted: {out}"
    assert not any(n.startswith("psycopg") or n.endswith(("RecursionError", "UnicodeEncodeError",
                   "DatabaseUnavailable")) for n in out["raised"]), out
    assert out["validation"], f"refused with {out['raised'][0]}, not ValueError/TypeError: {out}"
    assert hx.row_counts(db_url) == before


NAME_ENTRIES = ["cn.start workflow", "cn.signal name", "cn.runs workflow", "cn.Instance name",
                "@cn.workflow name", "@cn.activity name"]


@pytest.mark.parametrize("entry", NAME_ENTRIES)
@pytest.mark.parametrize("category", list(hx.NAMES))
def test_hostile_names_are_refused_at_the_call(engine: Engine, entry: str, category: str) -> None:
    waiting = engine.waiting_run()

    @hx.hx_settings(short=5, long=100)
    @given(shown=hx.shown(hx.NAMES[category]))
    def prop(shown: hx.Shown) -> None:
        name = shown.value
        if entry == "cn.start workflow":
            _refused(engine.url, lambda: cn.start(name, {}, instance=engine.inst))
        elif entry == "cn.signal name":
            _refused(engine.url, lambda: cn.signal(waiting.id, name, 1, instance=engine.inst))
        elif entry == "cn.runs workflow":
            _refused(engine.url, lambda: cn.runs(workflow=name, instance=engine.inst))
        elif entry == "cn.Instance name":
            made: list[cn.Instance] = []
            try:
                _refused(engine.url, lambda: made.append(cn.Instance(name, database_url=engine.url)))
            finally:
                for i in made:
                    i.close()
        elif entry == "@cn.workflow name":
            _workflow_name_refused(engine, name)
        else:
            try:
                _refused(engine.url, lambda: cn.activity(name=name)(lambda x: x))
            finally:
                ACTIVITIES.pop(name, None)  # if it was accepted: no engine of this process may see it

    hx.with_examples(prop, "shown", [hx.Shown(n) for n in hx.EXPLICIT_NAMES[category]])()
    cn.cancel(waiting.id, instance=engine.inst)


def _workflow_name_refused(engine: Engine, name: str) -> None:
    """Refused at the definition, or at the latest when a run of it is started."""

    async def hostile_named(x: int) -> int:
        return x

    defined = hx.call_with_deadline(lambda: cn.workflow(name=name, instance=engine.inst)(hostile_named))
    if defined.raised is None and not defined.timed_out:
        _refused(engine.url, lambda: cn.start(defined.result, {"x": 1}, instance=engine.inst))
    else:
        problem = hx.refusal_problem(defined)
        assert problem is None, f"at the definition: {problem}"


RUN_ID_CALLS: dict[str, Callable[[Engine, Any], Any]] = {
    "cn.start run_id": lambda e, rid: cn.start(e.fine, {"x": 1}, run_id=rid, instance=e.inst),
    "cn.signal": lambda e, rid: cn.signal(rid, "go", 1, instance=e.inst),
    "cn.wait": lambda e, rid: cn.wait(rid, 1, instance=e.inst),
    "cn.cancel": lambda e, rid: cn.cancel(rid, instance=e.inst),
    "cn.get_run": lambda e, rid: cn.get_run(rid, instance=e.inst),
}


@pytest.mark.parametrize("entry", list(RUN_ID_CALLS))
@pytest.mark.parametrize("category", list(hx.NAMES))
def test_hostile_run_ids_are_refused_at_the_call(engine: Engine, entry: str, category: str) -> None:
    @hx.hx_settings(short=5, long=100)
    @given(shown=hx.shown(hx.NAMES[category]))
    def prop(shown: hx.Shown) -> None:
        _refused(engine.url, lambda: RUN_ID_CALLS[entry](engine, shown.value))

    hx.with_examples(prop, "shown", [hx.Shown(n) for n in hx.EXPLICIT_NAMES[category]])()


@example(limit=-1)
@example(limit=10**20)
@hx.hx_settings(short=10, long=200)
@given(limit=st.one_of(st.integers(max_value=-1), st.integers(min_value=2**63, max_value=10**30)))
def test_runs_limit_out_of_range_is_refused(engine: Engine, limit: int) -> None:
    _refused(engine.url, lambda: cn.runs(limit=limit, instance=engine.inst))


@example(shown=hx.Shown("a\x00"))
@hx.hx_settings(short=5, long=100)
@given(shown=hx.shown(st.one_of(*hx.NAMES.values())))
def test_runs_hostile_state_is_refused(engine: Engine, shown: hx.Shown) -> None:
    _refused(engine.url, lambda: cn.runs(state=shown.value, instance=engine.inst))


@pytest.mark.parametrize("timeout", [math.nan], ids=["nan"])
def test_wait_with_a_nan_timeout_is_a_value_error(engine: Engine, timeout: float) -> None:
    waiting = engine.waiting_run()
    r = hx.call_with_deadline(lambda: cn.wait(waiting.id, timeout, instance=engine.inst), 5.0)
    assert hx.refusal_problem(r, allowed=(ValueError,)) is None, hx.refusal_problem(r, allowed=(ValueError,))
    cn.cancel(waiting.id, instance=engine.inst)


# --- in a magic: one line, never a traceback ----------------------------------------------------


@pytest.fixture
def shell(engine: Engine) -> Iterator[Any]:
    from IPython.testing import globalipapp

    globalipapp.start_ipython()
    ip = globalipapp.get_ipython()
    ip.run_line_magic("load_ext", "continuum_nb")
    try:
        yield ip
    finally:
        ip.run_line_magic("unload_ext", "continuum_nb")  # closes every instance of the process
        ip.config.pop("ContinuumMagics", None)


def _magic_refused(ip: Any, url: str, line: str) -> None:
    """``%continuum LINE`` as a cell runs it (IPython turns the line into this call, with the line
    as a string literal, so NUL and surrogates reach the magic as they are)."""
    from IPython.core.error import UsageError
    from IPython.utils.capture import capture_output

    from continuum_nb.notebook.magics import MagicError

    def run_cell() -> tuple[Any, str]:
        with capture_output() as out:
            result = ip.run_cell(f"get_ipython().run_line_magic('continuum', {line!r})")
        return result, out.stdout + out.stderr

    before = hx.row_counts(url)
    # On a thread of its own: a RecursionError in the magic must not happen on the test's
    # thread (see hostile.Shown), and a magic that hangs must not hang the suite.
    ran = hx.call_with_deadline(run_cell, 20.0)
    assert not ran.timed_out and ran.raised is None, f"the cell did not run: {ran.raised!r:.300}"
    result, text = ran.result
    lines = [x for x in text.splitlines() if x.strip()]
    shown = line if len(line) < 120 else line[:100] + f"...({len(line)} chars)"
    assert result.error_in_exec is not None, f"%continuum {shown!r} was accepted: {text[-300:]!r}"
    assert isinstance(result.error_in_exec, (UsageError, MagicError)), (
        f"%continuum {shown!r} raised {type(result.error_in_exec).__name__}: {str(result.error_in_exec)[:200]!r}")
    assert len(lines) == 1 and "Traceback" not in text, f"%continuum {shown!r} printed {len(lines)} lines: {text[-600:]!r}"
    assert hx.row_counts(url) == before, f"%continuum {shown!r} wrote rows"


def _json_text(value: Any) -> str:
    """JSON text as a user would type it: NUL and surrogates as \\u escapes, non-finite floats as
    1e400 (which json.loads reads as infinity), deep nesting as brackets."""
    def default(o: Any) -> Any:
        raise TypeError(o)

    text = json.dumps(value, ensure_ascii=True, allow_nan=True, default=default)
    return text.replace("-Infinity", "-1e400").replace("Infinity", "1e400").replace("NaN", "1e400")


_MAGIC_PAYLOADS = {
    "nul_string": hx.CARRIED["nul_string"],
    "surrogate_string": hx.CARRIED["surrogate_string"],
    "nul_key": hx.CARRIED["nul_key"],
    "non_finite (1e400)": hx.PAYLOADS["non_finite"].map(lambda f: {"x": f}),
}


def _deep_text(depth: int) -> str:
    return '{"x": ' + "[" * depth + "]" * depth + "}"


_MAGIC_EXPLICIT = {
    "nul_string": ['{"x": "a\\u0000b"}'],
    "surrogate_string": ['{"x": "\\ud800"}'],
    "nul_key": ['{"a\\u0000": 1}'],
    "non_finite (1e400)": ['{"x": 1e400}'],
    "nested 2,000 to 100,000 deep": [_deep_text(2_000), _deep_text(100_000)],
}


@pytest.mark.parametrize("where", ["start input", "signal payload"])
@pytest.mark.parametrize("category", [*_MAGIC_PAYLOADS, "nested 2,000 to 100,000 deep"])
def test_hostile_magic_payloads_print_one_line(engine: Engine, shell: Any, where: str, category: str) -> None:
    waiting = engine.waiting_run()
    name = engine.inst.name
    strategy = (st.sampled_from([2_000, 3_000, 100_000]).map(_deep_text) if category.startswith("nested")
                else _MAGIC_PAYLOADS[category].map(lambda v: {"x": v}).map(_json_text))

    @hx.hx_settings(short=4, long=60)
    @given(shown=hx.shown(strategy))
    def prop(shown: hx.Shown) -> None:
        text = shown.value
        quoted = "'" + text.replace("'", "'\"'\"'") + "'"
        if where == "start input":
            _magic_refused(shell, engine.url, f"start hx_fine {quoted} --instance {name}")
        else:
            _magic_refused(shell, engine.url, f"signal {waiting.id} go {quoted} --instance {name}")

    hx.with_examples(prop, "shown", [hx.Shown(t) for t in _MAGIC_EXPLICIT[category]])()


@pytest.mark.parametrize("category", list(hx.NAMES))
@pytest.mark.parametrize("template", ["start {q} --instance {i}", "runs --workflow {q} --instance {i}",
                                      "signal {run} {q} --instance {i}"])
def test_hostile_magic_names_print_one_line(engine: Engine, shell: Any, template: str, category: str) -> None:
    waiting = engine.waiting_run()

    @hx.hx_settings(short=4, long=60)
    @given(shown=hx.shown(hx.NAMES[category].filter(lambda n: not n.startswith("-") and n.strip())))
    def prop(shown: hx.Shown) -> None:
        name = shown.value
        quoted = "'" + name.replace("'", "'\"'\"'") + "'"
        _magic_refused(shell, engine.url, template.format(q=quoted, i=engine.inst.name, run=waiting.id))

    hx.with_examples(prop, "shown", [hx.Shown(n) for n in hx.EXPLICIT_NAMES[category]])()


@pytest.mark.parametrize("limit", ["100000000000000000000", str(2**63)])
def test_magic_runs_limit_out_of_range_prints_one_line(engine: Engine, shell: Any, limit: str) -> None:
    _magic_refused(shell, engine.url, f"runs --limit {limit} --instance {engine.inst.name}")


# ------------------------------------------------------------------------------------------------
# 3. Settings are validated where they enter
# ------------------------------------------------------------------------------------------------

_NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
_NON_POSITIVE = st.floats(max_value=0.0, allow_nan=False, allow_infinity=False)
_NEGATIVE = st.floats(max_value=-1e-6, allow_nan=False, allow_infinity=False)
_ABSURD = st.floats(min_value=1e300, allow_nan=False, allow_infinity=False)
_TINY = st.floats(min_value=1e-300, max_value=1e-9, allow_nan=False, allow_infinity=False)
_FRACTION = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6).filter(
    lambda f: not f.is_integer())
_STRINGS = st.one_of(st.sampled_from(["false", "False", "no", "0", "off", "", "true", "yes"]), hx.PLAIN)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


#: Strings where a number is expected (a numeric string might fairly be read as its number).
_NOT_NUMBERS = _STRINGS.filter(lambda t: not _is_number(t))

#: setting -> hostile values (explicit ones from the contract first).
SETTINGS: dict[str, st.SearchStrategy[Any]] = {
    "lease_ttl": st.one_of(st.sampled_from([math.nan, math.inf, 1e308, 1e-9]), _NON_FINITE, _NON_POSITIVE, _ABSURD,
                           _TINY, _NOT_NUMBERS),
    "heartbeat": st.one_of(_NON_FINITE, _NON_POSITIVE, _NOT_NUMBERS),
    "poll_interval": st.one_of(st.just(math.nan), _NON_FINITE, _NON_POSITIVE, _ABSURD, _NOT_NUMBERS),
    "release_after": st.one_of(st.just(-5), _NEGATIVE, st.just(math.nan), st.just(-math.inf), _NOT_NUMBERS),
    "pool_size": st.one_of(st.just(2.5), _FRACTION, st.integers(max_value=0), _NON_FINITE, _NOT_NUMBERS),
    "activity_concurrency": st.one_of(_FRACTION, st.integers(max_value=0), _NOT_NUMBERS),
    "run_concurrency": st.one_of(_FRACTION, st.integers(max_value=0), _NOT_NUMBERS),
    "max_cached_runs": st.one_of(_FRACTION, st.integers(max_value=0), _NOT_NUMBERS),
    "snapshot_threshold": st.one_of(_FRACTION, st.integers(max_value=0), _NOT_NUMBERS),
    "allow_stored_code": st.one_of(st.just("false"), _STRINGS),
    "run_engine": st.one_of(st.just("no"), _STRINGS),
    "auto_migrate": st.one_of(st.just("off"), _STRINGS),
    "trusted_modules": st.one_of(st.just("abc"), hx.PLAIN.filter(bool), st.lists(st.integers(), min_size=1)),
}

#: The contract's own examples.
EXPLICIT_SETTINGS: dict[str, list[Any]] = {
    "lease_ttl": [math.nan, math.inf, 1e308, 1e-9], "allow_stored_code": ["false"], "run_engine": ["no"],
    "trusted_modules": ["abc"], "pool_size": [2.5], "release_after": [-5], "poll_interval": [math.nan],
}

#: Environment variable forms: the text of hostile values (explicit ones from the contract first).
ENV_SETTINGS: dict[str, st.SearchStrategy[str]] = {
    "CONTINUUM_LEASE_TTL": st.sampled_from(["nan", "inf", "-inf", "1e308", "1e-9", "0", "-5", "NaN"]),
    "CONTINUUM_HEARTBEAT": st.sampled_from(["nan", "inf", "-1", "0"]),
    "CONTINUUM_POLL_INTERVAL": st.sampled_from(["nan", "inf", "-1", "0", "1e308"]),
    "CONTINUUM_RELEASE_AFTER": st.sampled_from(["-5", "nan", "-inf"]),
    "CONTINUUM_POOL_SIZE": st.sampled_from(["2.5", "0", "-1", "nan", "four"]),
    "CONTINUUM_MAX_CACHED_RUNS": st.sampled_from(["0", "-3", "1.5"]),
    "CONTINUUM_ALLOW_STORED_CODE": st.sampled_from(["maybe", "2", "nope"]),
}


@pytest.fixture
def default_settings() -> Iterator[None]:
    """cn.configure changes the default instance's settings for the whole process: put them
    back whatever the test did (an accepted hostile value must not leak into later tests)."""
    from continuum_nb.engine import instance as instances

    saved = dict(instances._default_settings)
    default = instances._instances.get("default")
    saved_config = default.config if default is not None else None
    try:
        yield
    finally:
        instances._default_settings.clear()
        instances._default_settings.update(saved)
        if default is not None and saved_config is not None:
            default.config = saved_config


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_hostile_settings_are_refused_by_configure(default_settings: None, setting: str) -> None:
    from continuum_nb.engine import instance as instances

    default = instances._instances.get("default")
    if default is not None and default.engine_running:
        pytest.skip("the default instance's engine runs in this process: cn.configure refuses everything")

    @hx.hx_settings(short=6, long=100)
    @given(value=SETTINGS[setting])
    def prop(value: Any) -> None:
        saved = dict(instances._default_settings)
        try:
            r = hx.call_with_deadline(lambda: cn.configure(**{setting: value}))
            problem = hx.refusal_problem(r, allowed=(cn.ConfigurationError,))
            assert problem is None, f"cn.configure({setting}={value!r:.60}): {problem}"
        finally:
            instances._default_settings.clear()
            instances._default_settings.update(saved)

    hx.with_examples(prop, "value", EXPLICIT_SETTINGS.get(setting, []))()


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_hostile_settings_are_refused_by_instance(db_url: str, setting: str) -> None:
    @hx.hx_settings(short=6, long=100)
    @given(value=SETTINGS[setting])
    def prop(value: Any) -> None:
        made: list[cn.Instance] = []
        try:
            r = hx.call_with_deadline(lambda: made.append(
                cn.Instance(f"hx-cfg-{uuid.uuid4().hex[:6]}", database_url=db_url, **{setting: value})))
            problem = hx.refusal_problem(r, allowed=(cn.ConfigurationError,))
            assert problem is None, f"cn.Instance({setting}={value!r:.60}): {problem}"
        finally:
            for i in made:
                i.close()

    hx.with_examples(prop, "value", EXPLICIT_SETTINGS.get(setting, []))()


@pytest.mark.parametrize("var", list(ENV_SETTINGS))
def test_hostile_environment_settings_are_refused(db_url: str, var: str) -> None:
    @hx.hx_settings(short=5, long=20)
    @given(text=ENV_SETTINGS[var])
    def prop(text: str) -> None:
        made: list[cn.Instance] = []
        old = os.environ.get(var)
        os.environ[var] = text
        try:
            r = hx.call_with_deadline(lambda: made.append(
                cn.Instance(f"hx-env-{uuid.uuid4().hex[:6]}", database_url=db_url)))
            problem = hx.refusal_problem(r, allowed=(cn.ConfigurationError,))
            assert problem is None, f"{var}={text!r}: {problem}"
        finally:
            if old is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = old
            for i in made:
                i.close()

    hx.with_examples(prop, "text", ["nan"] if var == "CONTINUUM_LEASE_TTL" else [])()


@pytest.mark.parametrize(("args", "env"), [
    (["--lease-ttl", "nan"], {}),
    (["--lease-ttl", "inf"], {}),
    (["--lease-ttl", "1e308"], {}),
    (["--lease-ttl", "1e-9"], {}),
    ([], {"CONTINUUM_LEASE_TTL": "nan"}),
    ([], {"CONTINUUM_POLL_INTERVAL": "nan"}),
    (["--concurrency", "0"], {}),
], ids=["lease-ttl nan", "lease-ttl inf", "lease-ttl 1e308", "lease-ttl 1e-9", "env lease ttl nan",
        "env poll interval nan", "concurrency 0"])
def test_worker_refuses_hostile_settings_in_one_line(db_url: str, args: list[str], env: dict[str, str]) -> None:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("CONTINUUM_")}
    child_env.update(env)
    child_env["PYTHONPATH"] = os.pathsep.join([str(fx.REPO_ROOT), child_env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.Popen([sys.executable, "-m", "continuum_nb", "worker", "--database-url", db_url, *args],  # noqa: S603
                            cwd=fx.REPO_ROOT, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killer = threading.Timer(30.0, proc.kill)  # a worker that neither starts nor exits
    killer.start()
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the ready line, if it started, else "" when it exited
        if " ready " in first:
            pytest.fail(f"continuum worker {' '.join(args)} {env or ''} started: {first.strip()}")
        code = proc.wait(30)
        err = proc.stderr.read() if proc.stderr is not None else ""
    finally:
        killer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    lines = [x for x in err.splitlines() if x.strip()]
    assert code != 0, f"exit 0: {err}"
    assert len(lines) == 1 and "Traceback" not in err, f"stderr is not one line: {err[-1500:]}"
    assert "error" in lines[0].lower(), lines[0]


# ------------------------------------------------------------------------------------------------
# 4. A tampered stored %%workflow source never runs
# ------------------------------------------------------------------------------------------------

_CELL = '''\
import continuum_nb as cn
{top}

@cn.workflow(name="{name}")
async def {name}(x: int) -> int:
    {body}
    return x * 2
'''


def _marker_line(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('ran')"


#: name -> (what is stored as the source, what the version hash was computed from)
def _tampered_rows(tmp: Path) -> dict[str, tuple[str, str, Path]]:
    rows = {}

    def add(name: str, top: str, body: str, *, hash_of: str | None = None) -> None:
        marker = tmp / f"{name}.ran"
        top, body = top.replace("MARKER", _marker_line(marker)), body.replace("MARKER", _marker_line(marker))
        source = _CELL.format(name=name, top=top, body=body)
        honest = _CELL.format(name=name, top="", body="pass")
        rows[name] = (source, hash_of if hash_of is not None else honest, marker)

    add("hx_t_exit", "MARKER\nraise SystemExit(3)", "pass")
    add("hx_t_marker_top", "MARKER", "pass")
    add("hx_t_marker_body", "", "MARKER")
    add("hx_t_os_exit", "MARKER\nimport os\nos._exit(17)", "pass")
    add("hx_t_keyboard", "MARKER\nraise KeyboardInterrupt", "pass")
    add("hx_t_trailing_space", "MARKER", "pass", hash_of=_CELL.format(name="hx_t_trailing_space", top="MARKER",
                                                                        body="pass") + " ")
    return rows


def test_tampered_stored_source_never_runs(db_url: str, tmp_path: Path) -> None:
    """Rows of continuum_workflow_versions whose source no longer hashes to version_hash (code
    added that writes a marker file, exits the process, raises SystemExit or KeyboardInterrupt;
    one row tampered after it was stored honestly) are refused by a worker that allows stored
    code: no marker file appears, the worker stays alive and keeps working, and each run stays
    visible, not running, with nothing journaled."""
    fx.install(db_url)
    rows = _tampered_rows(tmp_path)
    with fx.client(db_url) as inst:
        runs = {}
        for name, (source, hashed, _) in rows.items():
            digest = hashlib.sha256(hashed.encode()).hexdigest()
            inst.store.save_version(name, digest, source, "cell")
            runs[name] = cn.start(name, {"x": 21}, instance=inst).id
        # Stored honestly, then altered in place before any engine loaded it.
        late_marker = tmp_path / "hx_t_altered.ran"
        honest = _CELL.format(name="hx_t_altered", top="", body="pass")
        inst.store.save_version("hx_t_altered", hashlib.sha256(honest.encode()).hexdigest(), honest, "cell")
        runs["hx_t_altered"] = cn.start("hx_t_altered", {"x": 21}, instance=inst).id
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("UPDATE continuum_workflow_versions SET source = %s WHERE name = 'hx_t_altered'",
                         (honest.replace("    pass", "    " + _marker_line(late_marker)),))
        markers = [m for _, _, m in rows.values()] + [late_marker]
        # The control: an honest stored cell, which the same worker must load and run.
        control = _CELL.format(name="hx_t_honest", top="", body="pass")
        inst.store.save_version("hx_t_honest", hashlib.sha256(control.encode()).hexdigest(), control, "cell")
        honest_run = cn.start("hx_t_honest", {"x": 21}, instance=inst).id

        w = fx.Worker(db_url, "T")
        with fx.workers(w):
            w.wait_ready()
            # A known run started after the tampered ones is finished: the claim passes went over them.
            for i in range(2):
                rid = cn.start("fx_steps", {"tag": f"after-{i}", "n": 1}, instance=inst).id
                assert cn.wait(rid, 60, instance=inst) == 0
                time.sleep(1.0)
            assert cn.wait(honest_run, 60, instance=inst) == 42, "the worker does not run stored cells at all"
            assert [m.name for m in markers if m.exists()] == [], "tampered stored code ran"
            assert w.alive(), f"the worker died: {w.stderr()}"
            assert w.engine_problems() == []
            listed = {r.id: r for r in cn.runs(limit=1000, instance=inst)}
            for name, rid in runs.items():
                info = cn.api.get_run(rid, instance=inst)
                assert rid in listed, f"{name}: run not listed"
                # Not running (an engine that refused the source may hold its lease meanwhile).
                assert info.state != "running", f"{name}: {info.state} {info.lease_owner}"
                assert cn.api.events(rid, instance=inst) == [], f"{name}: something was journaled"
            assert w.terminate(30) == 0, w.stderr()
        assert [m.name for m in markers if m.exists()] == []
