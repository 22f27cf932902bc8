"""Testing workflows: a test environment with a virtual clock that skips ahead, stubbed
activities, replay of recorded histories, and a pytest plugin.

- ``cn.testing.environment()`` (fixture ``continuum_env``): see ``environment.py``.
- ``cn.testing.replay(workflow, history)``: a recorded history (``cn.export_history``) replayed
  offline against the current code; ``completed``/``failed``/``suspended``/``continued`` or
  ``cn.DriftError``.
- ``fresh_database``/``drop_database``: a migrated PostgreSQL database for a test.

The fixtures (``continuum_env``, ``virtual_clock``, ``continuum_database_url``,
``continuum_instance``: plugin.py) load by themselves once the package is installed (a pytest11
entry point); with plugin autoloading off, ``pytest_plugins = ["continuum_nb.testing"]`` or
``-p continuum_nb.testing``. docs/testing.md is the tutorial.
"""

from __future__ import annotations

from ..engine.clock import SystemClock, VirtualClock
from ..history import replay_history as replay
from .databases import drop_database, fresh_database
from .environment import Environment, environment

__all__ = [
    "Environment",
    "SystemClock",
    "VirtualClock",
    "drop_database",
    "environment",
    "fresh_database",
    "replay",
]

try:  # the fixtures need pytest; everything above does not
    from .plugin import continuum_database_url, continuum_env, continuum_instance, virtual_clock
except ImportError:  # pragma: no cover - pytest is not installed
    pass
else:
    __all__ += ["continuum_database_url", "continuum_env", "continuum_instance", "virtual_clock"]
