"""A process that hosts an engine for the poison tests (tests/faults/test_hostile_inputs.py).

Poison that kills an engine thread can leave the interpreter in a state where later, unrelated
work fails (with CPython 3.11, an engine loop thread that died of SystemExit made every later
``ast.parse`` in the pytest process raise "AST constructor recursion depth mismatch", which
crashes pytest itself). So the poisoned engine runs here, in a child process; Hypothesis runs
in the test process and sends each example as a recipe.

Protocol: ``python -m tests.faults.poison_host DATABASE_URL``; prints ``ready`` once its engine
completed a normal run. Then, per request on stdin (a 4-byte big-endian length and a pickled
dict ``{"family": "activity"|"workflow", "recipe": (what, argument)}``),
it answers one JSON line ``{"problem": null | "..."}`` on stdout. Anything else the process
prints goes to stderr.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import struct
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import continuum_nb as cn
from continuum_nb.definitions.workflow import WorkflowDef
from tests.faults import hostile as hx

#: How long a poisoned run may take to end (it needs milliseconds on a healthy engine).
POISON_WAIT = 3.0
NORMAL_WAIT = 10.0
ATTEMPTS = 2
_RETRY = cn.Retry(max_attempts=ATTEMPTS, backoff="constant", base=cn.seconds(0.01))

POISON: dict[str, Callable[[], Any]] = {}
CALLS: dict[str, int] = {}
_calls_lock = threading.Lock()


def _poison(token: str) -> Any:
    with _calls_lock:
        CALLS[token] = CALLS.get(token, 0) + 1
    return POISON[token]()


@cn.activity(name="hx_poison_inline", retry=_RETRY)
def hx_poison_inline(token: str) -> Any:
    """Sync, no timeout, awaited alone: runs on the drive thread that committed its schedule."""
    return _poison(token)


@cn.activity(name="hx_poison_pool", retry=_RETRY, timeout=cn.seconds(30))
def hx_poison_pool(token: str) -> Any:
    """With a timeout: runs on the activity pool."""
    return _poison(token)


@cn.activity(name="hx_poison_async", retry=_RETRY)
async def hx_poison_async(token: str) -> Any:
    """Async: runs on its own event loop in the activity pool."""
    return _poison(token)


VARIANTS = {"inline": hx_poison_inline, "pool": hx_poison_pool, "async": hx_poison_async}


@cn.activity(name="hx_echo", retry=_RETRY)
def hx_echo(value: Any) -> Any:
    return value


async def hx_fine(x: int) -> int:
    return x + 1


async def hx_activity_poisoned(token: str, variant: str) -> dict[str, Any]:
    try:
        await VARIANTS[variant](token)
    except cn.ActivityFailed as exc:
        return {"caught": "ActivityFailed", "attempts": exc.attempts}
    return {"caught": None}


async def hx_workflow_poisoned(token: str, when: str) -> Any:
    if when == "after_a_step":
        await hx_echo(1)
    return await POISON[token]()


# --- recipes: what the test process sends, turned into values and bodies here -----------------


class PoisonStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("this exception cannot be turned into a string")


class CustomBase(BaseException):
    """A BaseException that is neither Exception nor one of Python's own."""


_NOT_JSON: dict[str, Callable[[], Any]] = {"object": object, "set": lambda: {1, 2}, "bytes": lambda: b"\x00",
                                           "path": lambda: Path("/"), "nan": lambda: math.nan}


def value_of(recipe: Any) -> Any:
    """``("deep", depth, shape)`` is built here (a value nested that deep cannot be pickled
    within the default recursion limit); ``("not_json", name)`` too; anything else is the value."""
    if isinstance(recipe, tuple) and recipe and recipe[0] == "deep":
        return {"x": hx.deep(recipe[1], recipe[2])}
    if isinstance(recipe, tuple) and recipe and recipe[0] == "not_json":
        return _NOT_JSON[recipe[1]]()
    return recipe


def _raise(exc: BaseException) -> Callable[[], Any]:
    def body() -> Any:
        raise exc
    return body


def _exit(code: Any) -> Callable[[], Any]:
    def body() -> Any:
        sys.exit(code)
    return body


def _returns(value: Any) -> Callable[[], Any]:
    return lambda: value


EXCEPTIONS: dict[str, Callable[[Any], BaseException]] = {
    "SystemExit": SystemExit,
    "KeyboardInterrupt": KeyboardInterrupt,
    "GeneratorExit": GeneratorExit,
    "BaseException subclass": CustomBase,
    "NUL in the exception message": ValueError,
    "surrogate in the exception message": RuntimeError,
    "exception whose str() raises": lambda _: PoisonStr(),
}


def activity_body(recipe: tuple[str, Any]) -> Callable[[], Any]:
    """``(what, argument)``: raise one of EXCEPTIONS with the argument, ``sys.exit(argument)``,
    or return the value ``argument`` describes (``"result"``)."""
    what, arg = recipe
    if what == "sys.exit()":
        return _exit(arg)
    if what in EXCEPTIONS:
        return _raise(EXCEPTIONS[what](arg))
    if what == "result":
        return _returns(value_of(arg))
    raise KeyError(what)


def workflow_body(recipe: tuple[str, Any]) -> Callable[[], Any]:
    """What a workflow body does after its optional first step: what an activity body may do,
    or await a hostile timer or signal, call an activity or a side effect with a hostile value."""
    what, arg = recipe

    async def run_sync(body: Callable[[], Any]) -> Any:
        return body()

    if what in EXCEPTIONS or what in ("sys.exit()", "result"):
        sync = activity_body(recipe)
        return lambda: run_sync(sync)
    if what == "timer":
        async def timer() -> Any:
            await cn.timer(arg)
        return timer
    if what == "signal name":
        async def signal_named() -> Any:
            return await cn.signal(arg, timeout=cn.seconds(60))
        return signal_named
    if what == "signal timeout":
        async def signal_timeout() -> Any:
            return await cn.signal("go", timeout=arg)
        return signal_timeout
    value = value_of(arg)
    if what == "activity arguments":
        async def activity_with() -> Any:
            return await hx_echo(value)
        return activity_with
    if what == "side_effect":
        async def side_effect() -> Any:
            return cn.side_effect(lambda: value)
        return side_effect
    raise KeyError(what)


def text_of(exc: BaseException | None) -> str:
    """A short, printable account of an exception (whose str() may itself raise)."""
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001 - that is the point of some poisons
        message = "<str() raised>"
    return f"{type(exc).__name__}: {hx.Shown(message)!r}"


# --- the host -----------------------------------------------------------------------------------


class Host:
    def __init__(self, url: str) -> None:
        self.deaths: list[str] = []
        threading.excepthook = self._thread_died
        self.inst = cn.Instance(f"hx-host-{uuid.uuid4().hex[:6]}", database_url=url, poll_interval=0.1,
                                lease_ttl=5.0)
        self.fine = self._define(hx_fine)
        self.activity_poisoned = self._define(hx_activity_poisoned)
        self.workflow_poisoned = self._define(hx_workflow_poisoned)

    def _thread_died(self, args: Any) -> None:
        self.deaths.append(f"{args.thread.name if args.thread else '?'}: {text_of(args.exc_value)}")

    def _define(self, fn: Callable[..., Any]) -> WorkflowDef:
        wf = WorkflowDef(fn, name=fn.__name__)
        self.inst.registry.register(wf)
        return wf

    def healthy(self) -> str | None:
        """None if no thread died and a normal run completes on this engine, else why not."""
        if self.deaths:
            return f"engine threads died: {self.deaths}"
        r = hx.call_with_deadline(lambda: cn.start(self.fine, {"x": 41}, instance=self.inst).wait(NORMAL_WAIT),
                                  NORMAL_WAIT + 5)
        if r.timed_out or r.raised is not None or r.result != 42:
            what = f"raised {text_of(r.raised)}" if r.raised is not None else \
                f"returned {r.result!r} (timed out: {r.timed_out})"
            return f"a normal run afterwards did not complete: {what}"
        if not self.inst.engine_running:
            return "the engine is not running any more"
        if self.deaths:
            return f"engine threads died: {self.deaths}"
        return None

    def _all_at_once(self, checks: dict[str, Callable[[], str | None]]) -> str | None:
        """Run the checks concurrently (a hung one costs its timeout once, not once per check);
        None if all passed and the engine is still healthy, else every problem found."""
        problems: dict[str, str | None] = {}

        def run(label: str, check: Callable[[], str | None]) -> None:
            try:
                problems[label] = check()
            except BaseException as exc:  # noqa: BLE001
                problems[label] = f"the check failed: {text_of(exc)}"

        threads = [threading.Thread(target=run, args=item, daemon=True) for item in checks.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(POISON_WAIT + 20)
        found = [f"[{label}] {problems.get(label, 'no answer')}" for label in checks
                 if problems.get(label, "no answer") is not None]
        if not found:
            problem = self.healthy()
            if problem is not None:
                found.append(problem)
        return "; ".join(found) or None

    def activity(self, recipe: tuple[str, Any]) -> str | None:
        """The poisoned body as each kind of activity (inline on the drive thread, on the pool,
        async): each attempt fails, max_attempts ends it, the run catches ActivityFailed."""

        def check(variant: str) -> str | None:
            token = uuid.uuid4().hex
            POISON[token] = activity_body(recipe)
            r = hx.call_with_deadline(lambda: cn.start(self.activity_poisoned, {"token": token, "variant": variant},
                                                       instance=self.inst).wait(POISON_WAIT), POISON_WAIT + 5)
            if r.timed_out or r.raised is not None:
                what = "no answer" if r.timed_out else text_of(r.raised)
                return f"the run did not end with the activity failed: {what}"
            if r.result != {"caught": "ActivityFailed", "attempts": ATTEMPTS}:
                return f"the run returned {hx.Shown(r.result)!r}, not ActivityFailed after {ATTEMPTS} attempts"
            if CALLS.get(token) != ATTEMPTS:
                return f"the body ran {CALLS.get(token)} times, not max_attempts={ATTEMPTS}"
            return None

        return self._all_at_once({f"{v} activity": (lambda v=v: check(v)) for v in VARIANTS})

    def workflow(self, recipe: tuple[str, Any]) -> str | None:
        """The poisoned workflow body on its first wake (inside cn.start) and after a first step:
        the run ends failed with a readable error; cn.start returns."""

        def check(when: str) -> str | None:
            token = uuid.uuid4().hex
            POISON[token] = workflow_body(recipe)
            started = hx.call_with_deadline(
                lambda: cn.start(self.workflow_poisoned, {"token": token, "when": when}, instance=self.inst))
            if started.timed_out or started.raised is not None:
                what = "no answer" if started.timed_out else text_of(started.raised)
                return f"cn.start raised instead of returning a run: {what}"
            run = started.result
            waited = hx.call_with_deadline(lambda: run.wait(POISON_WAIT), POISON_WAIT + 5)
            info = cn.get_run(run.id, instance=self.inst)
            if not isinstance(waited.raised, cn.RunFailed):
                got = "no answer" if waited.timed_out else (
                    text_of(waited.raised) if waited.raised is not None else f"result {hx.Shown(waited.result)!r}")
                return f"the run did not end failed: wait gave {got}; state {info.state}"
            if info.state != "failed":
                return f"the run ended {info.state}, not failed: {hx.Shown(info.error)!r}"
            error = info.error
            if not isinstance(error, dict) or not any(
                    isinstance(error.get(k), str) and error.get(k, "").strip() for k in ("message", "type")):
                return f"the run's error is not readable (a message or a type): {hx.Shown(error)!r}"
            return None

        return self._all_at_once({w: (lambda w=w: check(w)) for w in ("first_wake", "after_a_step")})


def main() -> None:
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # whatever else prints must not mix with the answers
    host = Host(sys.argv[1])
    problem = host.healthy()
    if problem is not None:
        print(json.dumps({"problem": f"the host's engine is not healthy at start: {problem}"}), file=out)
        return
    print("ready", file=out)
    stdin = sys.stdin.buffer
    while True:
        head = stdin.read(4)
        if len(head) < 4:
            return
        request = pickle.loads(stdin.read(struct.unpack(">I", head)[0]))  # noqa: S301 - from the test process
        try:
            if request["family"] == "activity":
                problem = host.activity(request["recipe"])
            else:
                problem = host.workflow(request["recipe"])
        except BaseException as exc:  # noqa: BLE001 - the host must answer whatever happened
            problem = f"the test host itself failed: {text_of(exc)}"
        print(json.dumps({"problem": problem}), file=out)


if __name__ == "__main__":
    main()
