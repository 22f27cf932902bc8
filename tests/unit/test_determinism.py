"""The determinism scan (continuum_nb/determinism/): each rule, name resolution, trust."""

from __future__ import annotations

import importlib
import logging
import sys
import textwrap
import types
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from continuum_nb.determinism import (
    BareExceptWarning,
    Finding,
    NondeterministicCallWarning,
    UntrustedCallWarning,
    check_workflow,
    is_trusted_module,
)
from continuum_nb.errors import ConfigurationError, DeterminismError

CELL = "<cell workflow wf>"


def activity(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Stands in for @cn.activity: the scan only looks for the marker attribute."""
    fn.__continuum_activity__ = True  # type: ignore[attr-defined]
    return fn


def scan_cell(
    text: str, name: str = "wf", env: dict[str, Any] | None = None, **kwargs: Any
) -> tuple[list[Finding], list[warnings.WarningMessage]]:
    """Define the cell like %%workflow does, then scan it; returns findings and warnings."""
    text = textwrap.dedent(text)
    ns: dict[str, Any] = {"__name__": "__main__", **(env or {})}
    exec(compile(text, CELL, "exec"), ns)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        findings = check_workflow(ns[name], source=text, filename=CELL, **kwargs)
    return findings, list(caught)


def kinds(findings: list[Finding]) -> list[tuple[str, str, int]]:
    return [(f.kind, f.target, f.lineno) for f in findings]


@pytest.fixture
def helper_modules(tmp_path: Path) -> Iterator[Callable[[str, str], types.ModuleType]]:
    """Write and import throwaway modules; removed from sys.modules afterwards."""
    made: list[str] = []
    sys.path.insert(0, str(tmp_path))

    def make(name: str, body: str) -> types.ModuleType:
        path = tmp_path.joinpath(*name.split("."))
        if "." in name:
            for i in range(1, len(name.split("."))):
                pkg = tmp_path.joinpath(*name.split(".")[:i])
                pkg.mkdir(exist_ok=True)
                pkg.joinpath("__init__.py").touch()
        path.with_suffix(".py").write_text(textwrap.dedent(body))
        importlib.invalidate_caches()
        made.append(name)
        return importlib.import_module(name)

    yield make
    sys.path.remove(str(tmp_path))
    for name in made:
        for mod in [m for m in sys.modules if m == name or m.startswith(name.split(".")[0])]:
            sys.modules.pop(mod, None)


# -- calls that are never deterministic ----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "target", "replacement"),
    [
        ("import time\n    x = time.time()", "time.time", "cn.now()"),
        ("import time\n    x = time.time_ns()", "time.time_ns", "cn.now()"),
        ("import time\n    x = time.monotonic()", "time.monotonic", "cn.now()"),
        ("import time\n    x = time.perf_counter()", "time.perf_counter", "cn.now()"),
        ("import time\n    time.sleep(3)", "time.sleep", "cn.timer(...)"),
        ("import datetime\n    x = datetime.datetime.now()", "datetime.datetime.now", "cn.now()"),
        ("import datetime\n    x = datetime.datetime.utcnow()", "datetime.datetime.utcnow", "cn.now()"),
        ("import datetime\n    x = datetime.date.today()", "datetime.date.today", "cn.today()"),
        ("import random\n    x = random.random()", "random.random", "cn.random()"),
        ("import random\n    x = random.choice([1, 2])", "random.choice", "cn.random()"),
        ("import uuid\n    x = uuid.uuid4()", "uuid.uuid4", "cn.uuid4()"),
        ("import uuid\n    x = uuid.uuid1()", "uuid.uuid1", "cn.uuid4()"),
        ("import os\n    x = os.urandom(8)", "os.urandom", "cn.random()"),
        ("import secrets\n    x = secrets.token_hex()", "secrets.token_hex", "cn.side_effect(...)"),
        ("import asyncio\n    await asyncio.sleep(1)", "asyncio.sleep", "cn.timer(...)"),
        ("import threading\n    threading.Thread(target=print).start()", "threading.Thread", "cn.gather(...) of activities"),
        ("x = open('f.txt').read()", "open", "move the I/O into an @cn.activity"),
        ("import socket\n    s = socket.socket()", "socket.socket", "move the I/O into an @cn.activity"),
        ("import requests\n    r = requests.get('http://x')", "requests.get", "move the I/O into an @cn.activity"),
        ("import httpx\n    r = httpx.get('http://x')", "httpx.get", "move the I/O into an @cn.activity"),
        ("import urllib.request\n    r = urllib.request.urlopen('http://x')", "urllib.request.urlopen", "move the I/O into an @cn.activity"),
    ],
)
def test_nondeterministic_calls_warn_with_their_replacement(body: str, target: str, replacement: str) -> None:
    findings, caught = scan_cell(f"async def wf():\n    {body}\n")
    assert [(f.kind, f.target, f.replacement) for f in findings] == [("nondeterministic", target, replacement)]
    assert findings[0].filename == CELL
    assert findings[0].lineno == body.count("\n") + 2  # the line of the call, cell-relative
    assert replacement in findings[0].message
    assert [(w.category, str(w.message), w.filename, w.lineno) for w in caught] == [
        (NondeterministicCallWarning, findings[0].message, CELL, findings[0].lineno)
    ]


def test_aliases_and_from_imports_are_resolved() -> None:
    findings, _ = scan_cell(
        """
        import time as t
        from datetime import datetime
        from random import randint as ri
        from uuid import uuid4

        async def wf():
            a = t.time()
            b = datetime.now()
            c = ri(1, 6)
            d = uuid4()
            return [a, b, c, d]
        """
    )
    assert kinds(findings) == [
        ("nondeterministic", "time.time", 8),
        ("nondeterministic", "datetime.datetime.now", 9),
        ("nondeterministic", "random.randint", 10),
        ("nondeterministic", "uuid.uuid4", 11),
    ]


def test_imports_inside_the_function_are_resolved() -> None:
    findings, _ = scan_cell(
        """
        async def wf():
            from time import monotonic as clock
            return clock()
        """
    )
    assert kinds(findings) == [("nondeterministic", "time.monotonic", 4)]


def test_names_only_in_globals_are_resolved_through_the_objects() -> None:
    import datetime as dt_mod
    import random as random_mod

    findings, _ = scan_cell(
        """
        async def wf():
            return [clock.now(), rng(1, 2), rnd.random()]
        """,
        env={"clock": dt_mod.datetime, "rng": random_mod.randint, "rnd": random_mod},
    )
    assert [(f.kind, f.target) for f in findings] == [
        ("nondeterministic", "datetime.datetime.now"),
        ("nondeterministic", "random.Random.randint"),
        ("nondeterministic", "random.random"),
    ]


def test_module_level_client_objects_are_classified_by_their_type() -> None:
    import httpx

    findings, _ = scan_cell("async def wf():\n    return client.get('http://x')\n", env={"client": httpx.Client()})
    assert [(f.kind, f.replacement) for f in findings] == [("nondeterministic", "move the I/O into an @cn.activity")]
    assert findings[0].target.startswith("httpx.")


def test_nested_functions_and_lambdas_are_scanned() -> None:
    findings, _ = scan_cell(
        """
        import time, random

        async def wf():
            def inner():
                return time.time()
            pick = lambda: random.random()
            return inner(), pick()
        """
    )
    assert kinds(findings) == [("nondeterministic", "time.time", 6), ("nondeterministic", "random.random", 7)]


def test_references_without_a_call_and_side_effect_bodies_are_fine() -> None:
    findings, caught = scan_cell(
        """
        import time, random
        import continuum_nb as cn

        async def wf():
            def roll():
                return random.random()
            a = cn.side_effect(time.time)
            b = cn.side_effect(lambda: time.time_ns())
            c = cn.side_effect(roll)
            return a, b, c
        """
    )
    assert findings == [] and caught == []


def test_local_variables_shadowing_modules_are_not_reported() -> None:
    findings, _ = scan_cell(
        """
        import time

        async def wf(random):
            time = {"time": lambda: 1}
            return time["time"](), random.random()
        """
    )
    assert findings == []


def test_os_path_helpers_are_deterministic_but_os_io_is_not() -> None:
    findings, _ = scan_cell(
        """
        import os

        async def wf(name):
            p = os.path.join("a", name)
            return p, os.listdir(".")
        """
    )
    assert kinds(findings) == [("nondeterministic", "os.listdir", 6)]


# -- untrusted helper modules --------------------------------------------------------------------


def test_one_untrusted_warning_per_module(helper_modules: Callable[[str, str], types.ModuleType]) -> None:
    name = f"helpers_{uuid.uuid4().hex[:8]}"
    helper_modules(name, "def score(x):\n    return x * 2\n\ndef label(x):\n    return str(x)\n")
    findings, caught = scan_cell(
        f"""
        import {name}
        from {name} import label

        async def wf(x):
            a = {name}.score(x)
            b = {name}.score(a)
            return label(b)
        """
    )
    assert kinds(findings) == [("untrusted", name, 6)]
    assert [w.category for w in caught] == [UntrustedCallWarning]
    assert f"'{name}'" in str(caught[0].message) and "trusted_modules" in str(caught[0].message)


def test_a_module_that_is_not_imported_is_judged_by_its_import_path() -> None:
    source = "from not_imported_helpers_xyz.sub import f\n\nasync def wf():\n    return f()\n"
    ns: dict[str, Any] = {}
    exec(compile("async def wf():\n    return f()\n", CELL, "exec"), ns)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        findings = check_workflow(ns["wf"], source=source, filename=CELL)
    assert kinds(findings) == [("untrusted", "not_imported_helpers_xyz.sub", 4)]


def test_stdlib_trusted_modules_and_builtins_are_fine() -> None:
    findings, caught = scan_cell(
        """
        import json, math, re, itertools, hashlib, base64, logging
        from collections import Counter
        from decimal import Decimal
        import datetime

        async def wf(xs):
            d = json.dumps({"n": math.floor(2.5), "m": re.sub("a", "b", "aa")})
            c = Counter(itertools.chain(xs, xs))
            h = hashlib.sha256(base64.b64encode(d.encode())).hexdigest()
            when = datetime.datetime(2026, 1, 1) + datetime.timedelta(days=1)
            logging.getLogger("wf")  # (a logger is fine; writing to it is output: see below)
            return len(d), sorted(c), h, Decimal("1.5"), when.isoformat(), str(max(xs))
        """,
        env={"log": logging.getLogger("test")},
    )
    assert findings == [] and caught == []


def test_trusted_modules_prefix_match(helper_modules: Callable[[str, str], types.ModuleType]) -> None:
    pkg = f"pkg_{uuid.uuid4().hex[:8]}"
    helper_modules(f"{pkg}.sub", "def f(x):\n    return x\n")
    cell = f"""
        from {pkg}.sub import f

        async def wf(x):
            return f(x)
        """
    assert kinds(scan_cell(cell)[0]) == [("untrusted", f"{pkg}.sub", 5)]
    assert scan_cell(cell, trusted_modules=[pkg])[0] == []
    assert scan_cell(cell, trusted_modules=[f"{pkg}.sub"])[0] == []
    # a prefix match is on dotted names, not on strings
    assert kinds(scan_cell(cell, trusted_modules=[pkg[:-1]])[0]) == [("untrusted", f"{pkg}.sub", 5)]


def test_pure_function_marker(helper_modules: Callable[[str, str], types.ModuleType]) -> None:
    name = f"purefn_{uuid.uuid4().hex[:8]}"
    helper_modules(
        name,
        """
        def pure(fn):
            fn.__continuum_pure__ = True
            return fn

        @pure
        def marked(x):
            return x + 1

        def unmarked(x):
            return x - 1
        """,
    )
    findings, _ = scan_cell(
        f"""
        from {name} import marked, unmarked

        async def wf(x):
            return marked(x) + marked(x)
        """
    )
    assert findings == []
    findings, _ = scan_cell(
        f"""
        from {name} import marked, unmarked

        async def wf(x):
            return marked(x) + unmarked(x)
        """
    )
    assert kinds(findings) == [("untrusted", name, 5)]


def test_pure_module_marker(helper_modules: Callable[[str, str], types.ModuleType]) -> None:
    name = f"puremod_{uuid.uuid4().hex[:8]}"
    helper_modules(name, "__continuum_pure__ = True\n\ndef f(x):\n    return x\n")
    findings, _ = scan_cell(f"import {name}\n\nasync def wf(x):\n    return {name}.f(x)\n")
    assert findings == []
    assert is_trusted_module(name)
    assert not is_trusted_module(f"not_{name}")


def test_severity_error_raises_listing_every_untrusted_module(helper_modules: Callable[[str, str], types.ModuleType]) -> None:
    a = f"mod_a_{uuid.uuid4().hex[:8]}"
    b = f"mod_b_{uuid.uuid4().hex[:8]}"
    helper_modules(a, "def f(x):\n    return x\n")
    helper_modules(b, "def g(x):\n    return x\n")
    cell = f"""
        import time, {a}, {b}

        async def wf(x):
            t = time.time()
            return {a}.f(x), {b}.g(x)
        """
    with pytest.raises(DeterminismError) as err:
        scan_cell(cell, severity="error")
    text = str(err.value)
    assert a in text and b in text and f"{CELL}:6" in text
    assert "@cn.pure" in text and "trusted_modules" in text and "@cn.activity" in text
    assert "\n" not in text
    # the other findings still warn, before the error
    with warnings.catch_warnings(record=True) as caught, pytest.raises(DeterminismError):
        warnings.simplefilter("always")
        ns: dict[str, Any] = {}
        src = textwrap.dedent(cell)
        exec(compile(src, CELL, "exec"), ns)
        check_workflow(ns["wf"], source=src, filename=CELL, severity="error")
    assert [w.category for w in caught] == [NondeterministicCallWarning]


def test_severity_error_without_untrusted_calls_returns_findings() -> None:
    findings, caught = scan_cell("import time\n\nasync def wf():\n    return time.time()\n", severity="error")
    assert kinds(findings) == [("nondeterministic", "time.time", 4)]
    assert [w.category for w in caught] == [NondeterministicCallWarning]


def test_bad_severity_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="'warn' or 'error'"):
        scan_cell("async def wf():\n    return 1\n", severity="fatal")


# -- activities and continuum primitives ---------------------------------------------------------


def test_no_false_positives_on_activities_and_cn_primitives(helper_modules: Callable[[str, str], types.ModuleType]) -> None:
    name = f"acts_{uuid.uuid4().hex[:8]}"
    helper_modules(
        name,
        """
        import time

        def charge(order_id):
            return {"at": time.time()}
        charge.__continuum_activity__ = True
        """,
    )
    findings, caught = scan_cell(
        f"""
        import continuum_nb as cn
        from {name} import charge

        @activity
        def ship(order_id):
            return open("/dev/null").read()

        async def wf(order_id):
            receipt = await charge(order_id)
            await ship(order_id)
            sent = await cn.gather(ship(order_id), charge(order_id))
            return receipt, sent, cn.now(), cn.uuid4(), cn.random(), cn.seconds(5)
        """,
        env={"activity": activity},
    )
    assert findings == [] and caught == []


# -- helpers next to the workflow ----------------------------------------------------------------


def test_helpers_defined_in_the_same_cell_are_scanned() -> None:
    findings, _ = scan_cell(
        """
        import random

        def jitter(x):
            return x + random.random()

        async def wf(x):
            return jitter(x)
        """
    )
    assert [(f.kind, f.target, f.lineno) for f in findings] == [("nondeterministic", "random.random", 5)]
    assert "jitter()" in findings[0].message


def test_activities_of_the_cell_are_not_scanned_even_before_the_cell_ran() -> None:
    source = textwrap.dedent(
        """
        import time
        import continuum_nb as cn

        @cn.activity(retry=None)
        def stamp():
            return time.time()

        async def wf():
            return await stamp()
        """
    )
    ns: dict[str, Any] = {}
    exec(compile("async def wf():\n    return await stamp()\n", CELL, "exec"), ns)
    assert check_workflow(ns["wf"], source=source, filename=CELL) == []


def test_workflow_in_a_module_file(helper_modules: Callable[[str, str], types.ModuleType]) -> None:
    name = f"wfmod_{uuid.uuid4().hex[:8]}"
    mod = helper_modules(
        name,
        """
        import time as clock
        from datetime import date

        def helper():
            return date.today()

        class Thing:
            pass

        async def wf():
            try:
                return clock.time(), helper(), Thing()
            except:
                return None
        """,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        findings = check_workflow(mod.wf)
    assert kinds(findings) == [
        ("nondeterministic", "datetime.date.today", 6),
        ("nondeterministic", "time.time", 13),
        ("bare_except", "except:", 14),
    ]
    assert all(f.filename == mod.__file__ for f in findings)
    assert {w.filename for w in caught} == {mod.__file__}


# -- bare except -------------------------------------------------------------------------------


def test_bare_except_and_base_exception_warn_unless_they_reraise() -> None:
    findings, caught = scan_cell(
        """
        async def wf(x):
            try:
                x = 1
            except:
                pass
            try:
                x = 2
            except (ValueError, BaseException):
                pass
            try:
                x = 3
            except BaseException:
                raise
            try:
                x = 4
            except Exception:
                pass
            return x
        """
    )
    assert kinds(findings) == [("bare_except", "except:", 5), ("bare_except", "except BaseException", 9)]
    assert [w.category for w in caught] == [BareExceptWarning, BareExceptWarning]
    assert "cancellation" in findings[0].message


# -- locating the source -------------------------------------------------------------------------


def test_first_line_offsets_findings() -> None:
    text = "import time\n\nasync def wf():\n    return time.time()\n"
    ns: dict[str, Any] = {}
    exec(compile(text, "nb.py", "exec"), ns)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        findings = check_workflow(ns["wf"], source=text, filename="nb.py", first_line=10)
    assert [(f.filename, f.lineno) for f in findings] == [("nb.py", 13)]


def test_the_named_function_is_picked_from_the_cell() -> None:
    findings, _ = scan_cell(
        """
        import time

        async def other():
            return time.time()

        async def order():
            return 1
        """,
        name="order",
    )
    assert findings == []


def test_no_source_means_no_findings() -> None:
    ns: dict[str, Any] = {}
    exec("import time\nasync def wf():\n    return time.time()\n", ns)
    assert check_workflow(ns["wf"]) == []


def test_print_and_logging_in_a_workflow_body_are_flagged_with_use_cn_log() -> None:
    import continuum_nb as cn

    findings, caught = scan_cell(
        """
        import logging

        async def wf(x):
            print("starting", x)
            logging.warning("careful")
            log.info("scored %s", x)
            cn.log("journaled once", x=x)
            logging.getLogger("wf")
            return x
        """,
        env={"log": logging.getLogger("test"), "cn": cn},
    )
    assert kinds(findings) == [("output", "print", 5), ("output", "logging.warning", 6),
                               ("output", "logging.Logger.info", 7)]
    assert all("use cn.log(...)" in f.message and f.replacement == "cn.log(...)" for f in findings)
    assert len(caught) == 3


def test_an_awaited_signal_outside_the_contract_is_refused_when_defined() -> None:
    import continuum_nb as cn

    text = """
        async def wf(x):
            ok = await cn.signal("approve", timeout=cn.hours(1))
            return await cn.signal("aprove")
        """
    assert scan_cell(text, env={"cn": cn})[0] == []  # no contract: any name
    with pytest.raises(ConfigurationError, match=r"awaits signal 'aprove' \(<cell workflow wf>:4\).*declares 'approve'"):
        scan_cell(text, env={"cn": cn}, signals={"approve": None})
    assert scan_cell(text, env={"cn": cn}, signals={"approve": None, "aprove": None})[0] == []
