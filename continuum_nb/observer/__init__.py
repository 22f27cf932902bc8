"""The in-notebook observer: ``cn.observer(instance=None, read_only=False)``.

``viewmodel`` and ``static`` are plain Python; the widget classes (``app``, ``widgets``) and the
kernel-side ``bridge`` import ipywidgets/anywidget, so they load only when an observer is built.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import ObserverApp

__all__ = ["observer"]


def observer(instance: Any = None, read_only: bool = False, **options: Any) -> ObserverApp:
    """Build the observer app for ``instance`` (None: the default instance; a name or an Instance).

    ``read_only=True`` removes the operator actions (signal, cancel, resume, upgrade, fork from here).
    Options: ``page_size`` (25), ``live`` (True: refresh on engine events and every few seconds).
    Needs the notebook extra (ipywidgets, anywidget).
    """
    from .app import build_observer

    return build_observer(instance=instance, read_only=read_only, **options)


class _CallableModule(types.ModuleType):
    """Importing ``continuum_nb.observer`` makes the package, not the function, the attribute
    ``continuum_nb.observer``; calling the package keeps ``cn.observer(...)`` working either way."""

    def __call__(self, instance: Any = None, read_only: bool = False, **options: Any) -> ObserverApp:
        return observer(instance=instance, read_only=read_only, **options)


sys.modules[__name__].__class__ = _CallableModule
