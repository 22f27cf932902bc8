"""Named instances: configuration + store + registry + (lazily) an engine thread.

``cn.Instance(name="billing", database_url=..., **config)`` creates and registers one;
``cn.instance("billing")`` looks it up (``InstanceNotRegistered`` otherwise). The default
instance is created on first use from ``cn.configure(...)`` settings and ``CONTINUUM_*``.
"""

from __future__ import annotations

import atexit
import threading
from typing import TYPE_CHECKING, Any

from ..config import Config, load_config
from ..definitions.registry import GLOBAL, Registry
from ..errors import ConfigurationError, InstanceNotRegistered
from ..store.payloads import check_name
from .clock import Clock, SystemClock

if TYPE_CHECKING:
    from ..definitions.workflow import WorkflowDef
    from ..store.base import Store
    from .listening import Notifications
    from .node import Engine
    from .waiters import DoneWatcher

__all__ = ["Instance", "PartitionWarning", "configure", "default_config", "instance", "resolve"]


class PartitionWarning(UserWarning):
    """Next month's continuum_events partition is missing."""

_lock = threading.RLock()
_instances: dict[str, Instance] = {}
_default_settings: dict[str, Any] = {}


class Instance:
    """An engine instance bound to one database. Each has its own registry, store, dispatcher,
    activity pool, timers, heartbeater, recovery and engine thread."""

    def __init__(self, name: str = "default", database_url: str | None = None, *,
                 clock: Clock | None = None, store: Store | None = None, **settings: Any) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError("an instance name is a non-empty string")
        try:
            check_name(name, "instance name")
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        self.name = name
        self.config: Config = load_config(name, database_url=database_url, **settings) if database_url else \
            load_config(name, **settings)
        self.clock: Clock = clock or SystemClock()
        self.registry = Registry()
        self._store = store
        self._own_store = store is None  # a store we create, we close on stop()
        self._conninfo: str | None = None
        self._engine: Engine | None = None
        self._saved_versions: set[tuple[str, str]] = set()
        self._lock = threading.RLock()
        self._done_watcher: DoneWatcher | None = None
        self._notifications: Notifications | None = None
        with _lock:
            old = _instances.get(name)
            if old is not None and old is not self:
                old.stop()
            _instances[name] = self

    # --- database ----------------------------------------------------------------------------
    @property
    def conninfo(self) -> str:
        if self._conninfo is None:
            from ..store.database import resolve_url

            self._conninfo = resolve_url(self.config.database_url)
        return self._conninfo

    @property
    def store(self) -> Store:
        with self._lock:
            if self._store is None:
                from ..store.postgres import PostgresStore

                if self.config.auto_migrate:
                    from ..store import migrate

                    if migrate.pending(self.conninfo):
                        migrate.migrate(self.conninfo)
                self._store = PostgresStore(self.conninfo, pool_size=self.config.pool_size, instance=self.name)
            return self._store

    @property
    def registries(self) -> list[Registry]:
        return [self.registry, GLOBAL]

    def find_workflow(self, name: str) -> WorkflowDef | None:
        for reg in self.registries:
            wf = reg.latest(name)
            if wf is not None:
                return wf
        return None

    def save_version(self, wf: WorkflowDef) -> None:
        key = (wf.name, wf.version_hash)
        if key in self._saved_versions:
            return
        self.store.save_version(wf.name, wf.version_hash, wf.source, wf.origin)
        self._saved_versions.add(key)

    # --- engine ------------------------------------------------------------------------------
    @property
    def engine_running(self) -> bool:
        return self._engine is not None and self._engine.running

    def start_engine(self) -> Engine | None:
        """Start this instance's engine thread (no-op with ``run_engine=False``)."""
        if not self.config.run_engine:
            return None
        with self._lock:
            if self._engine is None or not self._engine.running:
                from .node import Engine

                self._engine = Engine(self)
                self._engine.start()
                self._check_partitions()
            return self._engine

    def _check_partitions(self) -> None:
        """Warn (in the caller's thread, never the engine's) when next month has no partition:
        inserts would fail on the first of the month."""
        import warnings

        from .. import partitions
        from ..telemetry import emit

        try:
            missing = partitions.missing_next_month(self.conninfo)
        except Exception:  # a memory store in tests, or no partitions module access: nothing to check
            return
        if missing:
            month = partitions.next_month().strftime("%Y-%m")
            emit(("continuum", "partition", "missing"), {}, {"instance": self.name, "month": month})
            warnings.warn(
                f"continuum_events has no partition for {month}; events written from {month}-01 on will "
                f"fail. Run `continuum partitions create {month}`",
                PartitionWarning,
                stacklevel=3,
            )

    @property
    def engine(self) -> Engine | None:
        return self._engine if self.engine_running else None

    def done_watcher(self) -> DoneWatcher:
        """What ``wait()`` waits on (created on first use)."""
        from .waiters import DoneWatcher

        hub = self.notifications()
        with self._lock:
            if self._done_watcher is None:
                self._done_watcher = DoneWatcher(hub)
            return self._done_watcher

    @property
    def done_watcher_if_started(self) -> DoneWatcher | None:
        """(any thread) The watcher, if a ``wait()`` created it; the engine reports to it."""
        return self._done_watcher

    def notifications(self) -> Notifications:
        """This instance's one LISTEN connection, shared by its engine and ``wait()``."""
        from .listening import Notifications

        store = self.store  # resolved here: the listening thread must not take the instance lock
        with self._lock:
            if self._notifications is None:
                self._notifications = Notifications(store, self.name)
            return self._notifications

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the engine thread and close connections: stop claiming, wait up to ``timeout``
        seconds for wakes and activity attempts in flight, then release the run leases."""
        with self._lock:
            engine, self._engine = self._engine, None
            watcher, self._done_watcher = self._done_watcher, None
        if engine is not None:
            engine.stop(timeout)
        if watcher is not None:
            watcher.close()
        with self._lock:
            notifications, self._notifications = self._notifications, None
        if notifications is not None:
            notifications.close()  # its store may be closed below; a new one comes with it
        if self._own_store:
            # Close the pool too (no thread left behind); the store reopens on next use.
            with self._lock:
                store, self._store = self._store, None
            if store is not None:
                store.close()

    def close(self) -> None:
        self.stop()
        with self._lock:
            store, self._store = self._store, None
        if store is not None:
            store.close()
        with _lock:
            if _instances.get(self.name) is self:
                del _instances[self.name]

    def __repr__(self) -> str:
        state = "running" if self.engine_running else "idle"
        return f"<continuum Instance {self.name!r} engine={state}>"


def configure(**settings: Any) -> None:
    """Settings for the default instance; call before it starts (determinism settings apply at
    the next definition)."""
    with _lock:
        # validated now, together with what was configured before (a heartbeat set earlier must
        # stay below a lease TTL set now), so nothing invalid is kept
        load_config("default", **{**_default_settings, **settings})
        inst = _instances.get("default")
        if inst is not None and inst.engine_running:
            allowed = {"trusted_modules", "untrusted_call_severity"}
            if set(settings) - allowed:
                raise ConfigurationError(
                    "the default instance's engine is already running; call cn.configure(...) before the "
                    "first cn.start(), or cn.instance().stop() first"
                )
        _default_settings.update(settings)
        if inst is not None:
            merged = dict(_default_settings)
            url = merged.pop("database_url", None)
            inst.config = load_config("default", database_url=url, **merged) if url else load_config("default", **merged)
            if "database_url" in settings:
                inst._conninfo = None
                inst._store = None


def default_config() -> Config:
    inst = _instances.get("default")
    if inst is not None:
        return inst.config
    merged = dict(_default_settings)
    return load_config("default", **merged)


def instance(name: str | None = None) -> Instance:
    """The instance called ``name`` (default: the default instance, created on first use)."""
    if name is None or name == "default":
        with _lock:
            inst = _instances.get("default")
            if inst is None:
                merged = dict(_default_settings)
                inst = Instance("default", **merged)
            return inst
    try:
        return _instances[name]
    except KeyError:
        known = ", ".join(sorted(_instances)) or "none"
        raise InstanceNotRegistered(
            f"no instance named {name!r} in this process (known: {known}); create it with "
            f"cn.Instance(name={name!r}, database_url=...)"
        ) from None


def resolve(inst: Instance | str | None) -> Instance:
    if isinstance(inst, Instance):
        return inst
    if inst is None or isinstance(inst, str):
        return instance(inst)
    raise TypeError(f"instance= takes an Instance or its name, not {inst!r}")


def all_instances() -> list[Instance]:
    with _lock:
        return list(_instances.values())


def _stop_all() -> None:
    for inst in all_instances():
        try:
            inst.stop(timeout=5.0)
        except Exception:  # noqa: S110 - interpreter exit: nothing left to report to
            pass


atexit.register(_stop_all)
