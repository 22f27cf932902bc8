"""Instance configuration: keyword arguments, then ``CONTINUUM_*`` environment variables, then defaults.

Every setting is checked where it enters — a keyword of ``cn.configure(...)`` / ``cn.Instance(...)``,
an environment variable, a command-line option of ``continuum worker`` — against its rule in
``RULES`` (docs/settings.md lists them). A value outside its rule is a ``ConfigurationError`` of one
line naming the setting, the value, the accepted range or form and, for text from the environment
or the command line, where it came from. Keyword values are never coerced (``"false"`` is not a
boolean, ``2.5`` is not a count); text is parsed by the setting's kind first. ``Config(...)``
itself checks its fields, so no Config holds a value outside its rules.

Every setting is fixed when the instance's engine starts, except the determinism settings
(``trusted_modules``, ``untrusted_call_severity``), which apply at the next workflow definition.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from .errors import ConfigurationError

__all__ = ["RULES", "Config", "Rule", "check_setting", "load_config", "setting_from_text"]

#: The bounds of the durations (seconds). A lease shorter than a second cannot be renewed in
#: time by a heartbeat round trip to the database; a day is far beyond any sane lease.
LEASE_TTL_RANGE = (1.0, 86_400.0)
#: The heartbeat is also below lease_ttl (checked with both known).
HEARTBEAT_MIN = 0.05
POLL_INTERVAL_RANGE = (0.01, 3_600.0)
#: 0 releases every suspended run at once; a year keeps them (max_cached_runs still bounds them).
RELEASE_AFTER_RANGE = (0.0, 31_536_000.0)
#: Counts go to PostgreSQL as LIMITs and to thread pools: at most a PostgreSQL integer.
MAX_COUNT = 2_147_483_647
#: How long an ended run may be kept before ``cn.prune`` deletes it: 0 to 100 years (as every
#: other stored duration).
RETENTION_RANGE = (0.0, 100 * 365.25 * 86_400.0)


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
    #: Wakes of different runs that one group commit takes at most (one round trip, one
    #: transaction); 1 commits every wake on its own.
    wake_batch_size: int = 64
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
    #: How long runs of workflows without their own ``retention=`` are kept after they end
    #: (``cn.prune`` deletes them after that); None keeps them forever.
    retention: timedelta | None = None
    #: The wake that takes a run's journal past this many events warns (telemetry and a log
    #: line, once per run); None: never.
    history_warn_events: int | None = 10_000
    #: A run whose journal would grow past this many events fails (continue-as-new is the fix);
    #: None: no limit.
    history_max_events: int | None = 200_000
    #: A single value (a run's input or result, a signal payload, an activity's arguments or
    #: result, a side effect) larger than this as JSON is refused before it is journaled.
    max_payload_bytes: int | None = 2_000_000
    #: How deep children may nest: a run started by ``cn.child`` in a run at this depth is
    #: refused (``cn.ChildFailed`` in the parent).
    max_child_depth: int = 10
    #: Extra settings a caller passed that no field knows (kept for error messages).
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigurationError(f"an instance name must be a non-empty string, not {_shown(self.name)}")
        values = {key: check_setting(key, getattr(self, key)) for key in RULES}
        _check_together(values, {})
        for key, value in values.items():
            object.__setattr__(self, key, value)  # normalised: a list of modules -> a tuple, 30 -> 30.0

    @property
    def heartbeat_interval(self) -> float:
        return self.heartbeat if self.heartbeat is not None else max(self.lease_ttl / 3.0, HEARTBEAT_MIN)


# --- the rules ---------------------------------------------------------------------------------


class _Refused(Exception):
    """A value outside its setting's rule (the caller writes the message)."""


@dataclass(frozen=True)
class Rule:
    """How one setting is checked, and read from text."""

    name: str
    #: Its environment variable (None: none).
    env: str | None
    #: The accepted values, as a keyword argument (for messages and docs/settings.md).
    form: str
    #: The value, checked and normalised; raises _Refused.
    check: Callable[[Any], Any]
    #: Text (the environment, a command-line option) -> a value for ``check``; raises ValueError.
    parse: Callable[[str], Any]
    #: The accepted text, when it differs from ``form``.
    text_form: str | None = None


def _seconds(low: float, high: float) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise _Refused
        try:
            seconds = float(value)
        except (OverflowError, ValueError):
            raise _Refused from None
        if not (math.isfinite(seconds) and low <= seconds <= high):
            raise _Refused
        return seconds

    return check


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _Refused
    n = int(value)
    if not 1 <= n <= MAX_COUNT:
        raise _Refused
    return n


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Refused
    return value


_FLAG_WORDS = {"true": True, "1": True, "yes": True, "on": True,
               "false": False, "0": False, "no": False, "off": False}


def _parse_flag(text: str) -> bool:
    try:
        return _FLAG_WORDS[text.strip().lower()]
    except KeyError:
        raise ValueError(text) from None


def _is_module_name(name: str) -> bool:
    return all(part.isidentifier() for part in name.split("."))


def _modules(value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)):
        raise _Refused
    if not all(isinstance(m, str) and _is_module_name(m) for m in value):
        raise _Refused
    return tuple(value)


def _parse_modules(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _severity(value: Any) -> str:
    if not isinstance(value, str) or value not in ("warn", "error"):
        raise _Refused
    return value


def _url(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise _Refused
    return value


def _or_none(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def inner(value: Any) -> Any:
        return None if value is None else check(value)

    return inner


def _retention(value: Any) -> timedelta | None:
    """None, a timedelta or a number of seconds, within RETENTION_RANGE -> a timedelta."""
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else _seconds(*RETENTION_RANGE)(value)
    if not RETENTION_RANGE[0] <= seconds <= RETENTION_RANGE[1]:
        raise _Refused
    return timedelta(seconds=seconds)


def _parse_retention(text: str) -> float | None:
    if text.strip().lower() in ("", "none", "off", "forever"):
        return None
    return float(text)


def _parse_threshold(text: str) -> int | None:
    if text.strip().lower() in _NO_LIMIT:
        return None
    return int(text)


_NO_LIMIT = ("", "none", "off", "infinity")
_LIMIT_TEXT = "or none/off/infinity/empty for no limit"


def _number(x: float) -> str:
    """30.0 -> '30', 31536000.0 -> '31536000', 0.05 -> '0.05'."""
    return str(int(x)) if x == int(x) else repr(x)


def _seconds_form(low: float, high: float) -> str:
    return f"a finite number of seconds between {_number(low)} and {_number(high)}"


_COUNT_FORM = f"a whole number between 1 and {MAX_COUNT}"

RULES: dict[str, Rule] = {r.name: r for r in (
    Rule("database_url", "CONTINUUM_DATABASE_URL",
         "a PostgreSQL URL (a string), or None for CONTINUUM_DATABASE_URL or the embedded database",
         _url, str),
    Rule("snapshot_threshold", "CONTINUUM_SNAPSHOT_THRESHOLD",
         f"{_COUNT_FORM}, or None to disable snapshots", _or_none(_count), _parse_threshold,
         f"{_COUNT_FORM}, or none/off/infinity/empty to disable snapshots"),
    Rule("snapshot_max_size_bytes", "CONTINUUM_SNAPSHOT_MAX_SIZE_BYTES", _COUNT_FORM, _count, int),
    Rule("history_warn_events", "CONTINUUM_HISTORY_WARN_EVENTS", f"{_COUNT_FORM}, or None for no warning",
         _or_none(_count), _parse_threshold, f"{_COUNT_FORM}, {_LIMIT_TEXT}"),
    Rule("history_max_events", "CONTINUUM_HISTORY_MAX_EVENTS", f"{_COUNT_FORM}, or None for no limit",
         _or_none(_count), _parse_threshold, f"{_COUNT_FORM}, {_LIMIT_TEXT}"),
    Rule("max_payload_bytes", "CONTINUUM_MAX_PAYLOAD_BYTES", f"{_COUNT_FORM}, or None for no limit",
         _or_none(_count), _parse_threshold, f"{_COUNT_FORM}, {_LIMIT_TEXT}"),
    Rule("max_child_depth", "CONTINUUM_MAX_CHILD_DEPTH", _COUNT_FORM, _count, int),
    Rule("trusted_modules", "CONTINUUM_TRUSTED_MODULES",
         "a list or tuple of module names (dotted, like 'acme.pricing')", _modules, _parse_modules,
         "a comma-separated list of module names (dotted, like acme.pricing,numpy)"),
    Rule("untrusted_call_severity", "CONTINUUM_UNTRUSTED_CALL_SEVERITY", "'warn' or 'error'",
         _severity, lambda text: text.strip().lower()),
    Rule("run_engine", "CONTINUUM_RUN_ENGINE", "True or False", _flag, _parse_flag,
         "one of true/1/yes/on or false/0/no/off"),
    Rule("lease_ttl", "CONTINUUM_LEASE_TTL", _seconds_form(*LEASE_TTL_RANGE), _seconds(*LEASE_TTL_RANGE), float),
    Rule("heartbeat", "CONTINUUM_HEARTBEAT",
         f"None (a third of lease_ttl) or a finite number of seconds of at least {_number(HEARTBEAT_MIN)} and below lease_ttl",
         _or_none(_seconds(HEARTBEAT_MIN, LEASE_TTL_RANGE[1])), float,
         f"a finite number of seconds of at least {_number(HEARTBEAT_MIN)} and below lease_ttl (unset: a third of it)"),
    Rule("pool_size", "CONTINUUM_POOL_SIZE", _COUNT_FORM, _count, int),
    Rule("activity_concurrency", "CONTINUUM_ACTIVITY_CONCURRENCY", _COUNT_FORM, _count, int),
    Rule("run_concurrency", "CONTINUUM_RUN_CONCURRENCY", _COUNT_FORM, _count, int),
    Rule("wake_batch_size", "CONTINUUM_WAKE_BATCH_SIZE", _COUNT_FORM, _count, int),
    Rule("poll_interval", "CONTINUUM_POLL_INTERVAL", _seconds_form(*POLL_INTERVAL_RANGE),
         _seconds(*POLL_INTERVAL_RANGE), float),
    Rule("max_cached_runs", "CONTINUUM_MAX_CACHED_RUNS", _COUNT_FORM, _count, int),
    Rule("release_after", "CONTINUUM_RELEASE_AFTER", _seconds_form(*RELEASE_AFTER_RANGE),
         _seconds(*RELEASE_AFTER_RANGE), float),
    Rule("allow_stored_code", "CONTINUUM_ALLOW_STORED_CODE", "True or False", _flag, _parse_flag,
         "one of true/1/yes/on or false/0/no/off"),
    Rule("auto_migrate", "CONTINUUM_AUTO_MIGRATE", "True or False", _flag, _parse_flag,
         "one of true/1/yes/on or false/0/no/off"),
    Rule("retention", "CONTINUUM_RETENTION",
         f"None (keep ended runs forever), a timedelta (cn.days(90)) or {_seconds_form(*RETENTION_RANGE)}",
         _retention, _parse_retention,
         f"{_seconds_form(*RETENTION_RANGE)}, or none/off/forever/empty to keep ended runs forever"),
)}


# --- checking ----------------------------------------------------------------------------------


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _where(source: str | None) -> str:
    return f" ({source})" if source else ""


def check_setting(name: str, value: Any, source: str | None = None) -> Any:
    """``value`` for setting ``name``, checked and normalised (a keyword argument: no coercion);
    ``source`` names where it came from in the message of the ``ConfigurationError``."""
    rule = RULES[name]
    try:
        return rule.check(value)
    except _Refused:
        pass
    if name == "trusted_modules" and isinstance(value, str):
        raise ConfigurationError(
            f"trusted_modules must be {rule.form}, not the string {_shown(value)}{_where(source)}; "
            f"write trusted_modules=[{value!r}]"
        ) from None
    raise ConfigurationError(f"{name} must be {rule.form}, not {_shown(value)}{_where(source)}") from None


def setting_from_text(name: str, text: str, source: str) -> Any:
    """Setting ``name`` from text (an environment variable, a command-line option), checked;
    ``source`` (``CONTINUUM_LEASE_TTL``, ``--lease-ttl``) is named in the error."""
    rule = RULES[name]
    form = rule.text_form or rule.form
    try:
        value = rule.parse(text)
    except ValueError:
        raise ConfigurationError(f"{name} must be {form}, not {_shown(text)}{_where(source)}") from None
    try:
        return rule.check(value)
    except _Refused:
        # A number is shown as read (nan, 1e-09); anything else as the text itself.
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        shown = _shown(value) if number else _shown(text)
        raise ConfigurationError(f"{name} must be {form}, not {shown}{_where(source)}") from None


def _check_together(values: Mapping[str, Any], where: Mapping[str, str]) -> None:
    """The rules between settings: the heartbeat is below the lease TTL; a run is warned about
    before it fails (history_warn_events below history_max_events)."""
    warn, hard = values.get("history_warn_events", Config.history_warn_events), values.get(
        "history_max_events", Config.history_max_events)
    if warn is not None and hard is not None and warn >= hard:
        raise ConfigurationError(
            f"history_warn_events must be below history_max_events ({hard}{_where(where.get('history_max_events'))}), "
            f"not {warn}{_where(where.get('history_warn_events'))}; lower it, or set it to None for no warning"
        )
    ttl = values.get("lease_ttl", Config.lease_ttl)
    heartbeat = values.get("heartbeat")
    if heartbeat is not None and heartbeat >= ttl:
        rule = RULES["heartbeat"]
        form = rule.text_form if "heartbeat" in where and rule.text_form else rule.form
        ttl_from = f" from {where['lease_ttl']}" if "lease_ttl" in where else ""
        raise ConfigurationError(
            f"heartbeat must be {form}, lease_ttl being {_number(ttl)} s{ttl_from}; "
            f"not {_shown(heartbeat)}{_where(where.get('heartbeat'))}"
        )


def load_config(name: str = "default", environ: Mapping[str, str] | None = None, **kwargs: Any) -> Config:
    """Build a Config: explicit keyword arguments win over ``CONTINUUM_*`` variables. Unknown
    keywords are refused; unknown ``CONTINUUM_*`` variables are ignored."""
    env = os.environ if environ is None else environ
    unknown = set(kwargs) - set(RULES)
    if unknown:
        raise ConfigurationError(
            f"unknown setting(s) {sorted(unknown)}; known settings are {sorted(RULES)}"
        )
    values: dict[str, Any] = {}
    where: dict[str, str] = {}
    if name != "default" and "database_url" not in kwargs:
        # A named instance's own database: CONTINUUM_<NAME>_DATABASE_URL, before CONTINUUM_DATABASE_URL.
        var = f"CONTINUUM_{name.upper().replace('-', '_')}_DATABASE_URL"
        if env.get(var):
            values["database_url"] = setting_from_text("database_url", env[var], var)
            where["database_url"] = var
    for key, rule in RULES.items():
        if key in kwargs:
            values[key] = check_setting(key, kwargs[key])
        elif key not in values and rule.env is not None and rule.env in env:
            values[key] = setting_from_text(key, env[rule.env], rule.env)
            where[key] = rule.env
    _check_together(values, where)
    return Config(name=name, **values)
