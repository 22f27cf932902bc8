"""The public API surface: what the README and docs/ promise is exported, sorted, importable."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import continuum_nb as cn

ROOT = Path(__file__).resolve().parents[2]

# Exactly the public names; a name added to or dropped from the package must be added or
# dropped here too.
PUBLIC = [
    "ActivityFailed", "ChildFailed", "ConfigurationError", "ContinuumError", "DatabaseUnavailable",
    "DeterminismError", "DriftError", "Instance", "InstanceNotRegistered", "MigrationError",
    "NonRetryableError", "NondeterministicCallWarning", "PartitionError", "Retry", "Run", "RunCancelled", "RunFailed",
    "RunNotActive", "RunNotFound", "RunsPage", "SignalTimeout", "UntrustedCallWarning", "WorkflowNotFound",
    "activity", "analytics", "cancel", "cancel_async", "child", "configure", "continue_as_new", "days", "deprecate_patch",
    "events",
    "export_history", "first", "fork", "gather", "get_run", "health", "hours", "instance", "list_runs", "log",
    "minutes", "now", "observer", "otel", "partitions", "patched", "prune", "pure", "random", "replay",
    "resume", "runs", "saga", "seconds", "set_attributes", "side_effect", "signal", "signal_async", "start",
    "start_async", "start_child", "start_many", "telemetry", "testing", "timer", "today", "upgrade", "uuid4", "wait",
    "wait_async", "workflow",
]  # fmt: skip

# `cn.<name>` and `cn.<name>.<attr>...` as the docs write them (names may end in digits: uuid4).
_CN_NAME = re.compile(r"\bcn\.([A-Za-z_]\w*)")
_CN_CHAIN = re.compile(r"\bcn\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)")


def _strings(node: object) -> list[str]:
    """Every string in a parsed notebook (cell sources and outputs)."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in _strings(value)]
    return []


def _doc_texts() -> dict[str, str]:
    """README.md, docs/*.md and notebooks/*.ipynb (decoded, so JSON escapes do not glue words)."""
    paths = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "notebooks").glob("*.ipynb"))]
    texts = {}
    for path in paths:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".ipynb":
            text = "\n".join(_strings(json.loads(text)))
        texts[str(path.relative_to(ROOT))] = text
    return texts


def _used_in_docs(pattern: re.Pattern[str]) -> dict[str, list[str]]:
    """Each match of ``pattern`` in the docs -> the files that use it."""
    used: dict[str, list[str]] = {}
    for name, text in _doc_texts().items():
        for match in sorted(set(pattern.findall(text))):
            used.setdefault(match, []).append(name)
    return used


def run_fresh(code: str) -> str:
    """Run ``code`` in a fresh interpreter (nothing imported yet); fail with its stderr, else its stdout."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_all_is_exactly_the_public_names() -> None:
    assert PUBLIC == sorted(PUBLIC)
    assert cn.__all__ == PUBLIC


def test_all_is_sorted() -> None:
    assert cn.__all__ == sorted(cn.__all__)


def test_every_exported_name_resolves() -> None:
    run_fresh(
        "import continuum_nb as cn\n"
        "missing = [n for n in cn.__all__ if getattr(cn, n, None) is None]\n"
        "assert not missing, missing\n"
    )


def test_the_docs_find_their_names() -> None:
    # The scan itself works: these are written in the README and in notebooks.
    used = _used_in_docs(_CN_NAME)
    assert "README.md" in used["start"] and "uuid4" in used and "uuid" not in used
    assert any(name.endswith(".ipynb") for name in used["start"])


def test_every_name_the_docs_use_is_public_and_reachable_in_a_fresh_interpreter() -> None:
    used = _used_in_docs(_CN_NAME)
    private = {name: files for name, files in used.items() if name not in cn.__all__}
    assert private == {}, "the docs use cn.<name> for names continuum_nb does not export"
    # Reachable right after `import continuum_nb as cn`, with no submodule imported first.
    out = run_fresh(
        "import json, continuum_nb as cn\n"
        f"names = {sorted(used)!r}\n"
        "print(json.dumps([n for n in names if not hasattr(cn, n)]))\n"
    )
    missing = json.loads(out)
    assert missing == [], {n: used[n] for n in missing}


def test_every_submodule_attribute_the_docs_use_exists() -> None:
    chains = {c: files for c, files in _used_in_docs(_CN_CHAIN).items() if "." in c}
    assert chains, "the docs name no cn.<submodule>.<attribute>"
    out = run_fresh(
        "import json, continuum_nb as cn\n"
        f"chains = {sorted(chains)!r}\n"
        "missing = []\n"
        "for chain in chains:\n"
        "    obj = cn\n"
        "    for part in chain.split('.'):\n"
        "        obj = getattr(obj, part, None)\n"
        "    if obj is None:\n"
        "        missing.append(chain)\n"
        "print(json.dumps(missing))\n"
    )
    missing = json.loads(out)
    assert missing == [], {c: chains[c] for c in missing}


def test_decorator_is_not_shadowed_by_its_module() -> None:
    import continuum_nb.workflow  # noqa: F401 - importing the submodule must not replace the decorator

    assert callable(cn.workflow) and cn.workflow.__module__ == "continuum_nb.workflow"


def test_observer_is_callable_even_after_its_package_was_imported() -> None:
    import continuum_nb.observer  # noqa: F401 - sets the package as the attribute

    assert callable(cn.observer)


def test_import_is_light() -> None:
    run_fresh(
        "import sys, continuum_nb\n"
        "heavy = [m for m in ('IPython', 'ipywidgets', 'duckdb', 'pandas', 'opentelemetry', 'psycopg') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )


def test_errors_are_continuum_errors() -> None:
    for name in ("RunFailed", "RunCancelled", "ActivityFailed", "SignalTimeout", "DriftError", "RunNotFound",
                 "RunNotActive", "WorkflowNotFound", "InstanceNotRegistered"):
        assert issubclass(getattr(cn, name), cn.ContinuumError)
    assert issubclass(cn.DriftError, cn.RunFailed)
    assert issubclass(cn.SignalTimeout, TimeoutError)


def test_replay_is_the_function_not_its_namesake_package() -> None:
    import continuum_nb.replay.journal  # noqa: F401 - the subpackage cn.replay must not become

    assert callable(cn.replay) and cn.replay.__module__ == "continuum_nb"
    assert "upto" in cn.replay.__code__.co_varnames
