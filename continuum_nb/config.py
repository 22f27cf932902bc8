"""Instance configuration: keyword arguments, then ``CONTINUUM_*`` environment variables, then defaults.

Every setting is fixed when the instance's engine starts, except the determinism settings
(``trusted_modules``, ``untrusted_call_severity``), which apply at the next workflow definition.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import ConfigurationError

__all__ = ["Config", "load_config"]


@dataclass(frozen=True)
class Config:
    #: The instance name ("default" for the default instance).
    name: str = "default"
    #: PostgreSQL URL; None means the embedded PostgreSQL under the user's data dir.
    database_url: str | None = None
    #: Take a snapshot about every N new events; None disables snapshots.
    snapshot_threshold: int | None = None
    snapshot_max_size_bytes: int = 1_000_000
    #: Helper modules that workflows may call without a determinism warning.
    trusted_modules: tuple[str, ...] = ()
    #: "warn" or "error" for calls into untrusted helper modules.
    untrusted_call_severity: str = "warn"
    #: False makes this process a pure client: it starts and signals runs, others execute them.
    run_engine: bool = True
    #: Seconds a run or task lease lasts without renewal.
    lease_ttl: float = 30.0
    #: Seconds between lease renewals (defaults to lease_ttl / 3).
    heartbeat: float | None = None
    #: Connections in this instance's pool.
    pool_size: int = 4
    #: Activity attempts executing at once on this engine.
    activity_concurrency: int = 8
    #: Runs driven at once on this engine.
    run_concurrency: int = 64
    #: Fallback poll when no NOTIFY arrives (seconds).
    poll_interval: float = 1.0
    #: Coroutines of suspended runs kept in memory (beyond this, they are replayed on wake).
    max_cached_runs: int = 1000
    #: A run whose next wake is further away than this (seconds) releases its lease and coroutine.
    release_after: float = 5.0
    #: Whether this engine may load stored %%workflow cell sources it never saw.
    allow_stored_code: bool = True
    #: Apply pending migrations when the instance first connects (off: `continuum migrate` is yours).
    auto_migrate: bool = True
    #: Extra settings a caller passed that no field knows (kept for error messages).
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def heartbeat_interval(self) -> float:
        return self.heartbeat if self.heartbeat is not None else max(self.lease_ttl / 3.0, 0.05)


_ENV: dict[str, tuple[str, type]] = {
    "database_url": ("CONTINUUM_DATABASE_URL", str),
    "snapshot_threshold": ("CONTINUUM_SNAPSHOT_THRESHOLD", int),
    "snapshot_max_size_bytes": ("CONTINUUM_SNAPSHOT_MAX_SIZE_BYTES", int),
    "untrusted_call_severity": ("CONTINUUM_UNTRUSTED_CALL_SEVERITY", str),
    "run_engine": ("CONTINUUM_RUN_ENGINE", bool),
    "lease_ttl": ("CONTINUUM_LEASE_TTL", float),
    "heartbeat": ("CONTINUUM_HEARTBEAT", float),
    "pool_size": ("CONTINUUM_POOL_SIZE", int),
    "activity_concurrency": ("CONTINUUM_ACTIVITY_CONCURRENCY", int),
    "run_concurrency": ("CONTINUUM_RUN_CONCURRENCY", int),
    "poll_interval": ("CONTINUUM_POLL_INTERVAL", float),
    "allow_stored_code": ("CONTINUUM_ALLOW_STORED_CODE", bool),
    "trusted_modules": ("CONTINUUM_TRUSTED_MODULES", tuple),
    "auto_migrate": ("CONTINUUM_AUTO_MIGRATE", bool),
    "release_after": ("CONTINUUM_RELEASE_AFTER", float),
    "max_cached_runs": ("CONTINUUM_MAX_CACHED_RUNS", int),
}


def _parse(name: str, env: str, kind: type, raw: str) -> Any:
    try:
        if kind is bool:
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind is tuple:
            return tuple(p.strip() for p in raw.split(",") if p.strip())
        if name == "snapshot_threshold" and raw.strip().lower() in ("", "none", "off", "infinity"):
            return None
        return kind(raw)
    except ValueError:
        raise ConfigurationError(
            f"environment variable {env}={raw!r} is not a valid {kind.__name__}; fix or unset it"
        ) from None


def _validate(cfg: Config) -> Config:
    if cfg.untrusted_call_severity not in ("warn", "error"):
        raise ConfigurationError(
            f"untrusted_call_severity must be 'warn' or 'error', not {cfg.untrusted_call_severity!r}"
        )
    if cfg.snapshot_threshold is not None and cfg.snapshot_threshold <= 0:
        raise ConfigurationError("snapshot_threshold must be a positive integer, or None to disable snapshots")
    for name in ("lease_ttl", "poll_interval"):
        if getattr(cfg, name) <= 0:
            raise ConfigurationError(f"{name} must be > 0 seconds, not {getattr(cfg, name)!r}")
    if cfg.heartbeat is not None and not 0 < cfg.heartbeat < cfg.lease_ttl:
        raise ConfigurationError(
            f"heartbeat ({cfg.heartbeat}s) must be > 0 and shorter than lease_ttl ({cfg.lease_ttl}s)"
        )
    for name in ("pool_size", "activity_concurrency", "run_concurrency", "max_cached_runs"):
        if getattr(cfg, name) < 1:
            raise ConfigurationError(f"{name} must be >= 1, not {getattr(cfg, name)!r}")
    return cfg


def load_config(name: str = "default", environ: dict[str, str] | None = None, **kwargs: Any) -> Config:
    """Build a Config: explicit keyword arguments win over ``CONTINUUM_*`` variables."""
    env = os.environ if environ is None else environ
    known = {f.name for f in fields(Config)} - {"name", "extra"}
    unknown = set(kwargs) - known
    if unknown:
        raise ConfigurationError(
            f"unknown setting(s) {sorted(unknown)}; known settings are {sorted(known)}"
        )
    values: dict[str, Any] = {}
    if name != "default" and "database_url" not in kwargs:
        # A named instance's own database: CONTINUUM_<NAME>_DATABASE_URL.
        var = f"CONTINUUM_{name.upper().replace('-', '_')}_DATABASE_URL"
        if env.get(var):
            kwargs = {**kwargs, "database_url": env[var]}
    for key, (var, kind) in _ENV.items():
        if key not in kwargs and var in env:
            values[key] = _parse(key, var, kind, env[var])
    for key, value in kwargs.items():
        if key == "trusted_modules" and value is not None:
            value = tuple(value)
        values[key] = value
    return _validate(Config(name=name, **values))
