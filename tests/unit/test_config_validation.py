"""Settings are checked where they enter (docs/settings.md): a keyword of ``cn.configure`` /
``cn.Instance`` / ``load_config``, a ``CONTINUUM_*`` environment variable, an option of
``continuum worker``. A bad value is one ``ConfigurationError`` line naming the setting, the
value, the accepted form and, for text, where it came from; good values are still accepted."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import continuum_nb as cn
from continuum_nb import cli
from continuum_nb.config import RULES, Config, load_config
from continuum_nb.errors import ConfigurationError

NAN, INF = float("nan"), float("inf")
ROOT = Path(__file__).resolve().parents[2]

DURATIONS = ("lease_ttl", "heartbeat", "poll_interval", "release_after")
COUNTS = ("pool_size", "activity_concurrency", "run_concurrency", "wake_batch_size", "max_cached_runs",
          "snapshot_max_size_bytes", "max_child_depth")
FLAGS = ("run_engine", "allow_stored_code", "auto_migrate")
LIMITS = ("history_warn_events", "history_max_events", "max_payload_bytes")

#: setting -> keyword values that are refused
BAD_KEYWORDS: dict[str, list[Any]] = {
    "lease_ttl": [NAN, INF, -INF, 1e308, 1e-9, 0, -1, 0.5, 86_401, True, "30", None],
    "heartbeat": [NAN, INF, 0, 0.01, -1, True, "1", 30, 31],  # 30: not below the default TTL
    "poll_interval": [NAN, INF, 0, -1, 0.001, 3_601, True, "1", None],
    "release_after": [NAN, INF, -5, -0.1, 31_536_001, True, "5", None],
    **{name: [0, -1, 2.5, 2.0, True, False, "4", None, 2**31] for name in COUNTS},
    "snapshot_threshold": [0, -1, 2.5, True, "10", 2**31],
    **{name: [0, -1, 2.5, True, "10", 2**31] for name in LIMITS},
    **{name: ["false", "no", "true", 0, 1, None] for name in FLAGS},
    "trusted_modules": ["abc", None, [""], ["a b"], [1], ["acme."], {"acme"}, ["acme", None]],
    "untrusted_call_severity": ["fatal", "Error", "", None, 1],
    "database_url": [5, b"postgresql://db/x"],
    "retention": [NAN, INF, -1, -0.5, timedelta(seconds=-1), timedelta(days=36_525 + 30), 3.2e9, True, "90",
                  "30d", [30]],
}

#: setting -> environment text that is refused
BAD_TEXT: dict[str, list[str]] = {
    "lease_ttl": ["nan", "inf", "1e308", "1e-9", "abc", "", "0", "0.5", "-30"],
    "heartbeat": ["nan", "0", "x", "30", "-1"],
    "poll_interval": ["nan", "0", "-1", "inf", "x"],
    "release_after": ["-5", "inf", "x", "nan"],
    **{name: ["2.5", "0", "-1", "x", "", "true", "1e3"] for name in COUNTS},
    "snapshot_threshold": ["0", "2.5", "x", "-1"],
    **{name: ["0", "2.5", "x", "-1", "1e3"] for name in LIMITS},
    **{name: ["maybe", "", "2", "truee", "-1"] for name in FLAGS},
    "trusted_modules": ["a b", "acme.,x", "1abc", "acme-pricing"],
    "untrusted_call_severity": ["fatal", "", "warning"],
    "retention": ["x", "-1", "nan", "inf", "30d", "1e10"],
}

#: setting -> (keyword value, the value the Config holds)
GOOD_KEYWORDS: dict[str, list[tuple[Any, Any]]] = {
    "lease_ttl": [(1, 1.0), (2.0, 2.0), (5.0, 5.0), (86_400, 86_400.0), (30, 30.0)],
    "heartbeat": [(None, None), (0.05, 0.05), (0.1, 0.1), (0.5, 0.5), (29.9, 29.9)],
    "poll_interval": [(0.01, 0.01), (0.05, 0.05), (0.2, 0.2), (3_600, 3_600.0)],
    "release_after": [(0, 0.0), (0.1, 0.1), (3_600, 3_600.0), (31_536_000, 31_536_000.0)],
    **{name: [(1, 1), (2, 2), (2**31 - 1, 2**31 - 1)] for name in COUNTS},
    "snapshot_threshold": [(None, None), (10, 10), (1, 1)],
    "history_warn_events": [(None, None), (1, 1), (10_000, 10_000), (199_999, 199_999)],
    "history_max_events": [(None, None), (10_001, 10_001), (2**31 - 1, 2**31 - 1)],
    "max_payload_bytes": [(None, None), (1, 1), (2**31 - 1, 2**31 - 1)],
    **{name: [(True, True), (False, False)] for name in FLAGS},
    "trusted_modules": [([], ()), (["acme.pricing"], ("acme.pricing",)), (("numpy", "a._b"), ("numpy", "a._b"))],
    "untrusted_call_severity": [("warn", "warn"), ("error", "error")],
    "database_url": [(None, None), ("postgresql://app@db:5432/orders", "postgresql://app@db:5432/orders")],
    "retention": [(None, None), (cn.days(90), timedelta(days=90)), (3600, timedelta(hours=1)),
                  (0, timedelta(0)), (0.5, timedelta(milliseconds=500)), (timedelta(0), timedelta(0))],
}

#: setting -> (environment text, the value the Config holds)
GOOD_TEXT: dict[str, list[tuple[str, Any]]] = {
    "lease_ttl": [("2.5", 2.5), ("30", 30.0), (" 1 ", 1.0)],
    "heartbeat": [("0.5", 0.5)],
    "poll_interval": [("0.25", 0.25)],
    "release_after": [("0", 0.0), ("3600", 3_600.0)],
    **{name: [("1", 1), ("16", 16)] for name in COUNTS},
    "snapshot_threshold": [("200", 200), ("off", None), ("", None), ("None", None), ("infinity", None)],
    "history_warn_events": [("200", 200), ("off", None), ("", None)],
    "history_max_events": [("20000", 20_000), ("none", None)],
    "max_payload_bytes": [("1000", 1000), ("infinity", None)],
    **{name: [("false", False), ("FALSE", False), ("0", False), ("no", False), ("Off", False),
              ("true", True), ("1", True), (" Yes ", True), ("ON", True)] for name in FLAGS},
    "trusted_modules": [("acme.pricing, numpy", ("acme.pricing", "numpy")), ("", ()), ("acme,", ("acme",))],
    "untrusted_call_severity": [("error", "error"), ("WARN", "warn")],
    "database_url": [("postgresql://app@db/orders", "postgresql://app@db/orders")],
    "retention": [("86400", timedelta(days=1)), (" 7776000 ", timedelta(days=90)), ("off", None), ("", None),
                  ("None", None), ("forever", None)],
}


def _cases(table: dict[str, list[Any]]) -> list[Any]:
    return [pytest.param(name, value, id=f"{name}={value!r}") for name, values in table.items() for value in values]


def _one_line(exc: ConfigurationError, name: str, *fragments: str) -> str:
    msg = str(exc)
    assert "\n" not in msg
    assert msg.startswith(f"{name} must be "), msg
    for fragment in fragments:
        assert fragment in msg, msg
    return msg


@pytest.fixture(autouse=True)
def _no_settings_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The process's own CONTINUUM_* settings must not mix in."""
    for rule in RULES.values():
        if rule.env:
            monkeypatch.delenv(rule.env, raising=False)


def test_every_setting_has_bad_and_good_cases() -> None:
    assert set(BAD_KEYWORDS) == set(GOOD_KEYWORDS) == set(RULES)
    assert set(GOOD_TEXT) == set(RULES)
    assert set(BAD_TEXT) == set(RULES) - {"database_url"}  # any text is a URL to check later


# --- keyword arguments: load_config, cn.configure, cn.Instance -----------------------------------


@pytest.mark.parametrize(("name", "value"), _cases(BAD_KEYWORDS))
def test_bad_keyword_is_refused_by_load_config(name: str, value: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_config(environ={}, **{name: value})
    _one_line(info.value, name, f"not {value!r}" if not isinstance(value, str) or name != "trusted_modules"
              else f"not the string {value!r}")
    assert "(CONTINUUM_" not in str(info.value)


@pytest.mark.parametrize(("name", "value"), _cases(BAD_KEYWORDS))
def test_bad_keyword_is_refused_by_configure(name: str, value: Any) -> None:
    from continuum_nb.engine import instance as instances

    before = dict(instances._default_settings)
    with pytest.raises(ConfigurationError, match=f"^{name} must be "):
        cn.configure(**{name: value})
    assert instances._default_settings == before


def test_configure_checks_a_setting_against_those_configured_before(monkeypatch: pytest.MonkeyPatch) -> None:
    from continuum_nb.engine import instance as instances

    monkeypatch.setattr(instances, "_default_settings", {})
    monkeypatch.setattr(instances, "_instances", {})  # no default instance takes the settings
    cn.configure(heartbeat=20.0)  # fine with the default 30 s lease
    with pytest.raises(ConfigurationError, match="^heartbeat must be "):
        cn.configure(lease_ttl=10.0)  # the heartbeat configured before is no longer below it
    assert instances._default_settings == {"heartbeat": 20.0}


@pytest.mark.parametrize(("name", "value"), _cases(BAD_KEYWORDS))
def test_bad_keyword_is_refused_by_instance(name: str, value: Any) -> None:
    label = f"cfg-{uuid.uuid4().hex[:8]}"
    with pytest.raises(ConfigurationError, match=f"^{name} must be "):
        cn.Instance(label, **{name: value})
    with pytest.raises(cn.InstanceNotRegistered):
        cn.instance(label)


@pytest.mark.parametrize(("name", "value"), _cases(BAD_KEYWORDS))
def test_bad_keyword_is_refused_by_config_itself(name: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=f"^{name} must be "):
        Config(**{name: value})
    with pytest.raises(ConfigurationError, match=f"^{name} must be "):
        dataclasses.replace(Config(), **{name: value})


@pytest.mark.parametrize(("name", "value", "expected"), [
    pytest.param(name, value, expected, id=f"{name}={value!r}")
    for name, pairs in GOOD_KEYWORDS.items() for value, expected in pairs
])
def test_good_keyword_is_accepted(name: str, value: Any, expected: Any) -> None:
    held = getattr(load_config(environ={}, **{name: value}), name)
    assert held == expected and type(held) is type(expected)
    inst = cn.Instance(f"cfg-{uuid.uuid4().hex[:8]}", **{name: value})
    try:
        assert getattr(inst.config, name) == expected
    finally:
        inst.close()


def test_a_bare_string_of_modules_gets_a_hint() -> None:
    with pytest.raises(ConfigurationError) as info:
        load_config(environ={}, trusted_modules="acme.pricing")
    assert str(info.value) == (
        "trusted_modules must be a list or tuple of module names (dotted, like 'acme.pricing'), "
        "not the string 'acme.pricing'; write trusted_modules=['acme.pricing']"
    )


def test_the_message_names_setting_value_and_range() -> None:
    with pytest.raises(ConfigurationError) as info:
        load_config(environ={}, lease_ttl=NAN)
    assert str(info.value) == "lease_ttl must be a finite number of seconds between 1 and 86400, not nan"


# --- the environment -----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "text"), _cases(BAD_TEXT))
def test_bad_environment_text_is_refused_naming_the_variable(name: str, text: str) -> None:
    var = RULES[name].env
    assert var is not None
    with pytest.raises(ConfigurationError) as info:
        load_config(environ={var: text})
    msg = _one_line(info.value, name, f"({var})")
    assert msg.endswith(f" ({var})")


@pytest.mark.parametrize(("name", "text"), _cases(BAD_TEXT))
def test_bad_environment_text_is_refused_by_instance(name: str, text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    var = RULES[name].env
    assert var is not None
    monkeypatch.setenv(var, text)
    with pytest.raises(ConfigurationError, match=f"^{name} must be .*\\({var}\\)$"):
        cn.Instance(f"cfg-{uuid.uuid4().hex[:8]}")


def test_environment_numbers_are_shown_as_read() -> None:
    with pytest.raises(ConfigurationError) as info:
        load_config(environ={"CONTINUUM_LEASE_TTL": "nan"})
    assert str(info.value) == (
        "lease_ttl must be a finite number of seconds between 1 and 86400, not nan (CONTINUUM_LEASE_TTL)"
    )
    with pytest.raises(ConfigurationError, match=r"not '1,5' \(CONTINUUM_LEASE_TTL\)$"):
        load_config(environ={"CONTINUUM_LEASE_TTL": "1,5"})


def test_environment_booleans_name_the_accepted_words() -> None:
    with pytest.raises(ConfigurationError) as info:
        load_config(environ={"CONTINUUM_ALLOW_STORED_CODE": "nope"})
    assert str(info.value) == (
        "allow_stored_code must be one of true/1/yes/on or false/0/no/off, not 'nope' (CONTINUUM_ALLOW_STORED_CODE)"
    )


@pytest.mark.parametrize(("name", "text", "expected"), [
    pytest.param(name, text, expected, id=f"{name}={text!r}")
    for name, pairs in GOOD_TEXT.items() for text, expected in pairs
])
def test_good_environment_text_is_accepted(name: str, text: str, expected: Any) -> None:
    var = RULES[name].env
    assert var is not None
    held = getattr(load_config(environ={var: text}), name)
    assert held == expected and type(held) is type(expected)


def test_a_keyword_wins_over_the_environment() -> None:
    cfg = load_config(environ={"CONTINUUM_LEASE_TTL": "2", "CONTINUUM_RUN_ENGINE": "false"}, lease_ttl=8.0)
    assert (cfg.lease_ttl, cfg.run_engine) == (8.0, False)


# --- between settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(("ttl", "heartbeat"), [(2.0, 2.0), (2.0, 5.0), (1, 1), (30, 30)])
def test_the_heartbeat_is_below_the_lease_ttl(ttl: float, heartbeat: float) -> None:
    with pytest.raises(ConfigurationError, match=r"^heartbeat must be .* below lease_ttl.*lease_ttl being"):
        load_config(environ={}, lease_ttl=ttl, heartbeat=heartbeat)
    with pytest.raises(ConfigurationError, match=r"\(CONTINUUM_HEARTBEAT\)$") as info:
        load_config(environ={"CONTINUUM_LEASE_TTL": str(ttl), "CONTINUUM_HEARTBEAT": str(heartbeat)})
    assert "from CONTINUUM_LEASE_TTL" in str(info.value)
    with pytest.raises(ConfigurationError, match="^heartbeat must be "):
        Config(lease_ttl=ttl, heartbeat=heartbeat)


def test_the_default_heartbeat_keeps_up_with_the_smallest_lease() -> None:
    cfg = load_config(environ={}, lease_ttl=1)
    assert cfg.heartbeat_interval < cfg.lease_ttl / 2


@pytest.mark.parametrize("settings", [
    # what the test suite and the notebooks use for speed (tests/engine, tests/integration)
    {"lease_ttl": 5.0, "heartbeat": 0.1, "release_after": 3600},
    {"lease_ttl": 2.0, "heartbeat": 0.5, "release_after": 0.1},
    {"lease_ttl": 8.0, "heartbeat": 1.0},
    {"lease_ttl": 10.0, "poll_interval": 0.2},
    {"lease_ttl": 5.0, "poll_interval": 0.05, "release_after": 0},
    {"max_cached_runs": 2, "snapshot_threshold": 10, "snapshot_max_size_bytes": 200},
    {"pool_size": 1, "activity_concurrency": 1, "run_engine": False, "auto_migrate": False},
], ids=repr)
def test_the_values_the_test_suite_uses_are_accepted(settings: dict[str, Any]) -> None:
    cfg = load_config(environ={}, **settings)
    for key, value in settings.items():
        assert getattr(cfg, key) == value


def test_the_fault_workers_environment_is_accepted() -> None:
    # tests/faults/fault_workflows.py: --lease-ttl 2 with these variables
    cfg = load_config(environ={"CONTINUUM_HEARTBEAT": "0.5", "CONTINUUM_POLL_INTERVAL": "0.25"}, lease_ttl=2.0)
    assert (cfg.lease_ttl, cfg.heartbeat, cfg.poll_interval) == (2.0, 0.5, 0.25)


def test_unknown_settings_are_refused_and_unknown_variables_ignored() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown setting\(s\) \['lease_tll'\]; known settings are"):
        load_config(environ={}, lease_tll=5)
    with pytest.raises(ConfigurationError, match="unknown setting"):
        cn.configure(lease_tll=5)
    assert load_config(environ={"CONTINUUM_LEASE_TLL": "nan"}).lease_ttl == 30.0


def test_a_named_instance_url_from_its_own_variable() -> None:
    cfg = load_config("billing", environ={"CONTINUUM_BILLING_DATABASE_URL": "postgresql://db/billing",
                                          "CONTINUUM_DATABASE_URL": "postgresql://db/other"})
    assert cfg.database_url == "postgresql://db/billing"


# --- the command line ----------------------------------------------------------------------------

WORKER_BAD = [
    ("--lease-ttl", "nan", "lease_ttl", "not nan (--lease-ttl)"),
    ("--lease-ttl", "inf", "lease_ttl", "not inf (--lease-ttl)"),
    ("--lease-ttl", "1e308", "lease_ttl", "not 1e+308 (--lease-ttl)"),
    ("--lease-ttl", "1e-9", "lease_ttl", "not 1e-09 (--lease-ttl)"),
    ("--lease-ttl", "0", "lease_ttl", "not 0.0 (--lease-ttl)"),
    ("--lease-ttl", "abc", "lease_ttl", "not 'abc' (--lease-ttl)"),
    ("--concurrency", "0", "activity_concurrency", "not 0 (--concurrency)"),
    ("--concurrency", "2.5", "activity_concurrency", "not '2.5' (--concurrency)"),
    ("--concurrency", "-3", "activity_concurrency", "not -3 (--concurrency)"),
]


@pytest.mark.parametrize(("option", "text", "name", "tail"), WORKER_BAD, ids=[f"{o}={t}" for o, t, *_ in WORKER_BAD])
def test_worker_option_is_refused_in_one_line(option: str, text: str, name: str, tail: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["worker", option, text, "--import", "no_such_module_is_imported_first"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"continuum worker: error: {name} must be ") and err[0].endswith(tail), err[0]


@pytest.mark.parametrize(("var", "text", "name"), [
    ("CONTINUUM_LEASE_TTL", "nan", "lease_ttl"),
    ("CONTINUUM_POOL_SIZE", "2.5", "pool_size"),
    ("CONTINUUM_ALLOW_STORED_CODE", "sometimes", "allow_stored_code"),
    ("CONTINUUM_HEARTBEAT", "60", "heartbeat"),
])
def test_worker_refuses_bad_environment_in_one_line(var: str, text: str, name: str, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(var, text)
    assert cli.main(["worker", "--import", "no_such_module_is_imported_first"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"continuum worker: error: {name} must be ") and err[0].endswith(f"({var})"), err[0]


def test_worker_exits_non_zero_with_one_line_on_stderr() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTINUUM_")}
    proc = subprocess.run(
        [sys.executable, "-m", "continuum_nb", "worker", "--lease-ttl", "nan"],
        capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL, cwd=ROOT,
    )
    assert proc.returncode == 2, proc.stdout
    assert proc.stdout == ""
    assert proc.stderr == (
        "continuum worker: error: lease_ttl must be a finite number of seconds between 1 and 86400, "
        "not nan (--lease-ttl)\n"
    )


# --- cn.wait(timeout=) ---------------------------------------------------------------------------


@pytest.mark.parametrize("timeout", [NAN, INF, -INF, -1, -0.001])
def test_wait_refuses_a_timeout_out_of_range(timeout: float) -> None:
    with pytest.raises(ValueError, match=r"^timeout must be None or a finite number of seconds >= 0"):
        cn.wait(uuid.uuid4(), timeout=timeout, instance="no-such-instance-is-looked-up")


@pytest.mark.parametrize("timeout", ["5", True, b"1", [1]])
def test_wait_refuses_a_timeout_that_is_no_number(timeout: Any) -> None:
    with pytest.raises(TypeError, match=r"^timeout must be None or a number of seconds"):
        cn.wait(uuid.uuid4(), timeout=timeout, instance="no-such-instance-is-looked-up")


# --- the docs ------------------------------------------------------------------------------------


def test_docs_list_every_setting_with_its_variable() -> None:
    text = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `(\w+)` \|.*$", text, re.MULTILINE)}
    assert set(rows) == set(RULES)
    for name, rule in RULES.items():
        assert f"`{rule.env}`" in rows[name], name


def test_history_warning_comes_before_the_limit() -> None:
    with pytest.raises(ConfigurationError) as info:
        load_config(history_warn_events=500, history_max_events=500)
    assert str(info.value) == (
        "history_warn_events must be below history_max_events (500), not 500; "
        "lower it, or set it to None for no warning")
    with pytest.raises(ConfigurationError, match=r"below history_max_events \(100 \(CONTINUUM_HISTORY_MAX_EVENTS\)\)"):
        load_config(environ={"CONTINUUM_HISTORY_MAX_EVENTS": "100"})  # the default warning is 10000
    assert load_config(history_warn_events=None, history_max_events=100).history_max_events == 100
    assert load_config(history_warn_events=50, history_max_events=None).history_warn_events == 50
