"""The public API surface: what the README and docs/ promise is exported, sorted, importable."""

from __future__ import annotations

import subprocess
import sys

import continuum_nb as cn

DOCUMENTED = {
    # definitions, awaitables, primitives
    "workflow", "activity", "pure", "Retry", "signal", "timer", "gather",
    "now", "today", "uuid4", "random", "side_effect", "seconds", "minutes", "hours", "days",
    # client API
    "start", "cancel", "wait", "resume", "upgrade", "runs", "Run", "configure", "Instance", "instance",
    "observer", "telemetry", "otel", "analytics", "partitions", "testing",
    # errors
    "RunFailed", "RunCancelled", "ActivityFailed", "SignalTimeout", "DriftError", "RunNotFound",
    "RunNotActive", "WorkflowNotFound", "InstanceNotRegistered",
}


def test_all_is_sorted_and_complete() -> None:
    assert cn.__all__ == sorted(cn.__all__)
    assert DOCUMENTED <= set(cn.__all__)


def run_fresh(code: str) -> None:
    """Run ``code`` in a fresh interpreter (nothing imported yet) and fail with its stderr."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_every_exported_name_resolves() -> None:
    run_fresh(
        "import continuum_nb as cn\n"
        "missing = [n for n in cn.__all__ if getattr(cn, n, None) is None]\n"
        "assert not missing, missing\n"
    )


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
