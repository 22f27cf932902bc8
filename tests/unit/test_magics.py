"""The magics in a real IPython shell, without a database: argument errors, JSON validation,
%%workflow name resolution and the self-contained-cell check, options, display objects.

Operations that need the engine are exercised against a recording stand-in for
``continuum_nb.api`` (to see exactly what the magic passes on); tests/integration/test_magics_engine.py
runs the same magics against real PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.testing import globalipapp
from IPython.utils.capture import capture_output

from continuum_nb.errors import RunNotActive, RunNotFound
from continuum_nb.notebook import display as views
from continuum_nb.notebook.cell import CellError, analyse_cell, free_name_messages, select_workflow
from continuum_nb.notebook.magics import ContinuumMagics, MagicError
from continuum_nb.notebook.parser import build_continuum_parser, parse

RUN = "3f2b8c1e-0000-4000-8000-000000000001"


@pytest.fixture
def ip() -> Iterator[Any]:
    shell = shell_instance()
    shell.run_line_magic("load_ext", "continuum_nb")
    try:
        yield shell
    finally:
        shell.run_line_magic("unload_ext", "continuum_nb")
        shell.config.pop("ContinuumMagics", None)  # %config in one test must not leak into the next


def shell_instance() -> Any:
    """IPython's test shell (one per process; later calls return the same shell)."""
    globalipapp.start_ipython()
    return globalipapp.get_ipython()


def magics(shell: Any) -> ContinuumMagics:
    return shell.find_magic("continuum").__self__  # type: ignore[no-any-return]


def run(shell: Any, source: str) -> tuple[Any, str, str]:
    with capture_output() as out:
        result = shell.run_cell(source)
    return result, out.stdout, out.stderr


def error_lines(stdout: str, stderr: str) -> list[str]:
    return [line for line in (stdout + stderr).splitlines() if line.strip()]


# ---- argument errors: one line, never a traceback

BAD = [
    ("%continuum start order '{\"order_id\": A1}'", "is not valid JSON"),
    ("%continuum start order '[1, 2]'", "must be a JSON object"),
    ("%continuum start order '{\"x\": NaN}'", "is not valid JSON"),
    ("%continuum signal not-a-uuid approve", "is not a run id"),
    (f'%continuum signal {RUN} approve \'{{"by":"ana"\'', "is not valid JSON"),
    (f"%continuum signal {RUN}", "the following arguments are required: name"),
    ("%continuum frobnicate", "invalid choice: 'frobnicate'"),
    ("%continuum", "the following arguments are required: COMMAND"),
    ("%continuum runs --limit 0", "is not a positive integer"),
    ("%continuum runs --state sleeping", "invalid choice: 'sleeping'"),
    (f"%continuum wait {RUN} --timeout soon", "is not a number of seconds"),
    ("%continuum partitions create 2026-13", "is not a month"),
    ("%continuum partitions", "the following arguments are required: ACTION"),
    ('%continuum start order \'{"a": 1}', "cannot split the arguments"),
    ("%continuum cancel", "the following arguments are required: run_id"),
    ("%continuum runs --attr customer", "is not KEY=VALUE"),
    ("%continuum start order --attr 'k=\"a\\u0000\"'", "NUL character"),
    # values that cannot be stored are refused while parsing, in one line
    (f"%continuum signal {RUN} approve 1e400", "NaN/Infinity are not JSON"),
    (f"%continuum signal {RUN} approve '\"a\\u0000b\"'", "NUL character"),
    (f"%continuum signal {RUN} approve '\"\\ud800\"'", "lone surrogate"),
    (f"%continuum signal {RUN} approve '{'[' * 200_000}'", "nested too deeply"),
    (f"%continuum signal {RUN} approve '{'[' * 150}{']' * 150}'", "nested more than 100 levels"),
    (f"%continuum signal {RUN} approve {'9' * 1001}", "more than 1000 digits"),
]


@pytest.mark.parametrize(("line", "expected"), BAD)
def test_malformed_arguments_print_one_line(ip: Any, line: str, expected: str) -> None:
    result, out, err = run(ip, line)
    assert isinstance(result.error_in_exec, UsageError)
    lines = error_lines(out, err)
    assert len(lines) == 1, lines
    assert expected in lines[0]
    assert "Traceback" not in out + err


def test_help_prints_the_subcommand_usage(ip: Any) -> None:
    result, out, _ = run(ip, "%continuum start --help")
    assert result.success
    assert "usage: %continuum start" in out
    assert "--instance NAME" in out
    assert "as registered by %%workflow" in out


def test_magic_docstrings_are_the_grammar(ip: Any) -> None:
    doc = ip.find_magic("continuum").__doc__
    for sub in ("start", "signal", "cancel", "wait", "resume", "upgrade", "runs", "show", "observe",
                "events", "partitions", "analytics"):  # fmt: skip
        assert f"    {sub}" in doc
    assert "usage: %%workflow" in ip.find_cell_magic("workflow").__doc__
    assert "--instance" in ip.find_cell_magic("continuum_sql").__doc__


def test_json_arguments_are_decoded() -> None:
    parser = build_continuum_parser()
    args = parse(parser, 'start order \'{"order_id": "A1", "cents": 500}\' --instance billing')
    assert (args.workflow, args.input, args.instance) == (
        "order",
        {"order_id": "A1", "cents": 500},
        "billing",
    )
    args = parse(parser, f'signal {RUN.upper()} approve \'{{"by":"ana"}}\'')
    assert (args.run_id, args.name, args.payload) == (RUN, "approve", {"by": "ana"})
    assert parse(parser, f"signal {RUN} go 42").payload == 42
    assert parse(parser, f"signal {RUN} go").payload is None


# ---- the magics call the API with what they parsed


@dataclass
class FakeRun:
    id: str
    workflow: str


class RecordingApi:
    """Stands in for continuum_nb.api; records each call's arguments."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.raise_on: dict[str, BaseException] = {}

    def _record(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((name, args, kwargs))
        if name in self.raise_on:
            raise self.raise_on[name]

    def start(self, wf: str, input: Any = None, **kw: Any) -> FakeRun:
        self._record("start", wf, input, **kw)
        return FakeRun(kw.get("run_id") or RUN, wf)

    def signal(self, run_id: str, name: str, payload: Any = None, **kw: Any) -> None:
        self._record("signal", run_id, name, payload, **kw)

    def cancel(self, run_id: str, **kw: Any) -> None:
        self._record("cancel", run_id, **kw)

    def wait(self, run_id: str, timeout: float | None = None, **kw: Any) -> Any:
        self._record("wait", run_id, timeout=timeout, **kw)
        return {"status": "done"}


@pytest.fixture
def api(ip: Any, monkeypatch: pytest.MonkeyPatch) -> RecordingApi:
    fake = RecordingApi()
    monkeypatch.setattr(ContinuumMagics, "_api", staticmethod(lambda: fake))
    return fake


def test_start_and_signal_pass_decoded_json_and_instance(ip: Any, api: RecordingApi) -> None:
    result, out, _ = run(ip, '%continuum start order \'{"order_id": "A1"}\' --instance billing')
    assert result.success and f"started run {RUN} of order" in out
    assert api.calls[-1] == (
        "start",
        ("order", {"order_id": "A1"}),
        {"instance": "billing", "run_id": None, "idempotency_key": None, "attributes": None},
    )
    # a key and search attributes (JSON values where they are JSON, else text)
    result, out, _ = run(ip, "%continuum start order --key 2026-12-06 --attr customer=acme --attr n=3")
    assert result.success
    assert api.calls[-1] == ("start", ("order", None), {
        "instance": None, "run_id": None, "idempotency_key": "2026-12-06",
        "attributes": {"customer": "acme", "n": 3}})
    # No $var / {expr} expansion: JSON braces reach the parser untouched.
    result, _, _ = run(ip, f'%continuum signal {RUN} approve \'{{"by": "ana"}}\'')
    assert result.success
    assert api.calls[-1] == ("signal", (RUN, "approve", {"by": "ana"}), {"instance": None})


def test_options_apply_through_config(ip: Any, api: RecordingApi) -> None:
    run(ip, "%config ContinuumMagics.default_instance = 'billing'")
    run(ip, "%config ContinuumMagics.wait_timeout = 5.0")
    assert magics(ip).default_instance == "billing"
    result, _, _ = run(ip, f"x = %continuum wait {RUN}")
    assert result.success and ip.user_ns["x"] == {"status": "done"}
    assert api.calls[-1] == ("wait", (RUN,), {"timeout": 5.0, "instance": "billing"})
    run(ip, f"%continuum wait {RUN} --timeout 1.5 --instance other")
    assert api.calls[-1] == ("wait", (RUN,), {"timeout": 1.5, "instance": "other"})
    run(ip, "%config ContinuumMagics.runs_limit = 20")
    assert magics(ip).runs_limit == 20
    _, out, _ = run(ip, "%config ContinuumMagics")
    for option in (
        "default_instance",
        "show_summary",
        "runs_limit",
        "wait_timeout",
        "strict_cells",
    ):
        assert option in out


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (RunNotFound(f"run {RUN} not found in instance 'default'"), "not found"),
        (RunNotActive(f"run {RUN} is completed;\nit accepts no signal"), "it accepts no signal"),
        (TimeoutError(f"run {RUN} did not finish within 5s"), "pass --timeout SECONDS"),
        (ValueError("signal name is 10000 characters long ('xx'...); the limit is 200"), "the limit is 200"),
    ],
)
def test_api_errors_print_one_line(
    ip: Any, api: RecordingApi, exc: BaseException, expected: str
) -> None:
    api.raise_on["signal"] = exc
    api.raise_on["wait"] = exc
    command = "wait" if isinstance(exc, TimeoutError) else "signal"
    line = f"%continuum wait {RUN}" if command == "wait" else f"%continuum signal {RUN} approve"
    result, out, err = run(ip, line)
    assert isinstance(result.error_in_exec, MagicError)
    lines = error_lines(out, err)
    assert lines == [f"%continuum {command}: {' '.join(str(exc).split())}" + (
        "; wait again, or pass --timeout SECONDS" if command == "wait" else "")]  # fmt: skip
    assert expected in lines[0]


# ---- %%workflow: which async def, and is the cell self-contained


def test_workflow_name_resolution_errors(ip: Any) -> None:
    cases = [
        ("%%workflow\nasync def a():\n    pass\nasync def b():\n    pass\n",
         "the cell defines 2 async defs (`a`, `b`); name the workflow, e.g. `%%workflow a`"),
        ("%%workflow\nx = 1\n", "the cell defines no top-level `async def`"),
        ("%%workflow c\nasync def a():\n    pass\n", "no top-level `async def c`; it defines `a`"),
        ("%%workflow\nasync def a(:\n    pass\n", "line 1: invalid syntax"),
        ("%%workflow\n%time x = 1\nasync def a():\n    pass\n", "must be plain Python"),
        ("%%workflow a b\nasync def a():\n    pass\n", "unrecognized arguments: b"),
    ]  # fmt: skip
    for source, expected in cases:
        result, out, err = run(ip, source)
        assert isinstance(result.error_in_exec, UsageError), source
        lines = error_lines(out, err)
        assert len(lines) == 1 and expected in lines[0], (source, lines)


def test_select_workflow() -> None:
    info = analyse_cell("async def a():\n    pass\nasync def b():\n    pass\ndef c():\n    pass\n")
    assert info.async_defs == ["a", "b"]
    assert select_workflow(info, "b") == "b"
    with pytest.raises(CellError, match="defines 2 async defs"):
        select_workflow(info, None)
    with pytest.raises(CellError, match="no top-level `async def c`"):
        select_workflow(info, "c")  # a plain def is not a workflow
    nested = analyse_cell("def outer():\n    async def inner():\n        pass\n")
    with pytest.raises(CellError, match="no top-level `async def`"):
        select_workflow(nested, None)


CELL = """
import json
import continuum_nb as cn
from collections import Counter as C
LIMIT = 3

@cn.activity
def charge(order_id: str, cents: int) -> dict:
    return {"id": order_id, "c": cents}

class Box:
    size = 1
    def area(self):
        return size * self.size

def helper_here(xs):
    total = 0
    def add(v):
        nonlocal total
        total += v
    for v in xs:
        add(v)
    return [x for x in xs if x < LIMIT and x > threshold] + [total]

def setter():
    global LATER
    LATER = 1

async def order(order_id: str, cents: int = 0, *args, **kw) -> Result:
    receipt = await charge(order_id, cents)
    try:
        pass
    except ValueError as exc:
        print(exc)
    counts = C(k for k in kw)
    data = {k: v for k, v in json.loads("{}").items()}
    squared = (lambda q: q * q)(cents)
    return {"r": receipt, "tax": tax(cents), "later": LATER, "n": len(counts), "d": data, "s": squared}
"""


def test_free_names_cover_every_scope_kind() -> None:
    info = analyse_cell(CELL)
    # `size` in a method is not the class attribute; `threshold` (comprehension), `Result`
    # (annotation), `tax` (workflow body) are used and never bound. Imports, params, locals,
    # nonlocal, `global LATER; LATER = ...`, lambda and comprehension variables and builtins are fine.
    assert info.free_names == ["size", "threshold", "Result", "tax"]
    assert info.async_defs == ["order"]


def test_free_names_edge_cases() -> None:
    assert analyse_cell("from os.path import *\nasync def a():\n    return join(x)\n").star_import
    assert analyse_cell("async def a():\n    return __name__, len([])\n").free_names == []
    assert analyse_cell("async def a():\n    del b\n").free_names == []  # del binds b locally
    walrus = "async def a(xs):\n    if (n := len(xs)) > 1:\n        return n\n    return m\n"
    assert analyse_cell(walrus).free_names == ["m"]


def test_free_name_messages_say_where_the_name_lives() -> None:
    msgs = free_name_messages(["helper", "ghost"], {"helper": object()})
    assert msgs == [
        "cell uses `helper`, defined elsewhere in the notebook; import or define it in this cell",
        "cell uses `ghost`, which is not defined anywhere; import or define it in this cell",
    ]


def test_strict_cells_refuses_a_cell_that_is_not_self_contained(ip: Any) -> None:
    run(ip, "def helper(x):\n    return x\n")
    run(ip, "%config ContinuumMagics.strict_cells = True")
    try:
        result, out, err = run(ip, "%%workflow\nasync def wf_strict(x):\n    return helper(x)\n")
    finally:
        run(ip, "%config ContinuumMagics.strict_cells = False")
    assert isinstance(result.error_in_exec, UsageError)
    assert error_lines(out, err) == [
        "UsageError: %%workflow: cell uses `helper`, defined elsewhere in the notebook; "
        "import or define it in this cell (ContinuumMagics.strict_cells is on)"
    ]
    assert "wf_strict" not in ip.user_ns  # refused before the cell ran


# ---- loading and unloading


def test_unload_removes_the_magics_and_the_configurable() -> None:
    shell = shell_instance()
    before = set(threading.enumerate())
    shell.run_line_magic("load_ext", "continuum_nb")
    # Loading starts nothing: the engine starts on the first call that needs it.
    assert set(threading.enumerate()) == before
    assert any(isinstance(c, ContinuumMagics) for c in shell.configurables)
    shell.run_line_magic("unload_ext", "continuum_nb")
    assert shell.find_magic("continuum") is None
    assert shell.find_cell_magic("workflow") is None
    assert shell.find_cell_magic("continuum_sql") is None
    assert not any(isinstance(c, ContinuumMagics) for c in shell.configurables)


def test_sql_magic_refuses_an_empty_cell(ip: Any) -> None:
    result, out, err = run(ip, "%%continuum_sql --instance x\n\n")
    assert isinstance(result.error_in_exec, UsageError)
    assert len(error_lines(out, err)) == 1 and "the cell is empty" in err


# ---- display objects


def test_html_table_escapes_and_renders_text() -> None:
    t = views.HtmlTable(["id", "payload"], [{"id": "<b>", "payload": {"a": [1, 2]}}])
    assert (
        "&lt;b&gt;" in t._repr_html_()
        and "<b>" not in t._repr_html_().replace("<b>", "", 0).split("<td>")[1]
    )
    assert repr(t).splitlines() == ["id   payload", '<b>  {"a":[1,2]}']
    assert "(no rows)" in repr(views.HtmlTable(["id"], []))


def test_run_tables_use_short_versions() -> None:
    @dataclass
    class Info:
        id: str
        workflow: str
        version_hash: str
        state: str
        started_at: dt.datetime

    row = views.run_rows(
        [Info(RUN, "order", "ab" * 32, "suspended", dt.datetime(2026, 11, 25, 16, 0))]
    )[0]
    assert row["version"] == "abababababab"
    frame = views.table([row], views.RUN_COLUMNS, index="id")
    assert list(frame.index) == [RUN] and frame.loc[RUN, "state"] == "suspended"


def test_workflow_summary_lists_everything() -> None:
    s = views.WorkflowSummary(
        name="order", version_hash="f" * 64, instance="default", activities=["charge", "ship"],
        findings=["line 4: time.time() is not deterministic; use cn.now()"],
        cell_problems=["cell uses `helper`, defined elsewhere in the notebook; import or define it in this cell"],
        outdated=[views.OutdatedRun(RUN, "suspended", "a" * 64, True),
                  views.OutdatedRun(RUN.replace("1", "2"), "drifted", "b" * 64, False, "would drift at seq 3")],
        previous_version="a" * 64,
    )  # fmt: skip
    text = repr(s)
    assert (
        text.splitlines()[0]
        == "workflow order — version ffffffffffff (new; was aaaaaaaaaaaa), instance default"
    )
    assert "activities: charge, ship" in text
    assert "Determinism findings:\n  - line 4: time.time()" in text
    assert "Not self-contained" in text and "`helper`" in text
    assert f"{RUN} [suspended, version aaaaaaaaaaaa]: replays cleanly: can upgrade" in text
    assert "would drift: keep its version (would drift at seq 3)" in text
    assert "Runs on older versions (2)" in s._repr_html_()
    clean = views.WorkflowSummary(name="o", version_hash="1" * 64, instance=None)
    assert repr(clean).splitlines()[0] == "workflow o — version 111111111111, every instance"
    assert "determinism scan: no findings" in repr(clean)
    same = views.WorkflowSummary(
        name="o", version_hash="1" * 64, instance="b", previous_version="1" * 64
    )
    assert repr(same).splitlines()[0] == "workflow o — version 111111111111 (unchanged), instance b"


def test_upgrade_buttons_call_upgrade_for_clean_runs_only() -> None:
    upgraded: list[str] = []
    runs = [
        views.OutdatedRun("r1", "suspended", "a", True),
        views.OutdatedRun("r2", "drifted", "b", False),
    ]
    box = views.upgrade_buttons(runs, upgraded.append)
    assert box is not None and len(box.children) == 1
    label, button, status = box.children[0].children
    assert "r1" in label.value
    button.click()
    assert upgraded == ["r1"] and button.disabled and status.value == "now on the new version"

    def refuse(run_id: str) -> None:
        raise RunNotActive(f"run {run_id} finished meanwhile")

    box = views.upgrade_buttons(runs, refuse)
    assert box is not None
    _, button, status = box.children[0].children
    button.click()
    assert not button.disabled and status.value == "not upgraded: run r1 finished meanwhile"
    assert views.upgrade_buttons([runs[1]], upgraded.append) is None


def test_dollar_arguments_expand_notebook_variables(ip: Any, api: RecordingApi) -> None:
    ip.user_ns["started"] = FakeRun(RUN, "order")
    result, _, _ = run(ip, "%continuum wait $started.id --timeout 2")
    assert result.success and api.calls[-1] == ("wait", (RUN,), {"timeout": 2.0, "instance": None})
    # Inside JSON (not a whole argument) nothing is expanded.
    run(ip, f'%continuum signal {RUN} note \'{{"text": "$started"}}\'')
    assert api.calls[-1][1] == (RUN, "note", {"text": "$started"})
    for line, expected in [
        (
            "%continuum wait $nothing_here",
            "%continuum: $nothing_here is not defined in this notebook",
        ),
        ("%continuum wait $started.nope", "FakeRun has no attribute 'nope'"),
    ]:
        result, out, err = run(ip, line)
        assert isinstance(result.error_in_exec, UsageError)
        lines = error_lines(out, err)
        assert len(lines) == 1 and expected in lines[0]
