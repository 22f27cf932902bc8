"""The one gate every value crosses before the database (continuum_nb/store/payloads.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from continuum_nb.store import payloads
from continuum_nb.store.payloads import (
    MAX_DEPTH,
    MAX_NAME_LENGTH,
    check_json,
    check_name,
    storable_text,
)


def _nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("value", [
    None, True, 0, -(10**999), 1.5, "", "héllo ✓ \U0001f600", [1, "a", None], {"a": {"b": [1.0, False]}},
    _nested(MAX_DEPTH - 1),
])
def test_json_values_within_the_limits_pass(value: Any) -> None:
    assert check_json(value, "v") is value


@pytest.mark.parametrize(("value", "error", "says"), [
    ("a\x00b", ValueError, "NUL character at index 1"),
    ({"k\x00": 1}, ValueError, "a key of <root> contains a NUL"),
    (["ok", "\ud800"], ValueError, "[1] contains a lone surrogate"),
    ({"x": 10**1000}, ValueError, "['x'] is an integer of more than 1000 digits"),
    (_nested(MAX_DEPTH + 1), ValueError, f"nested more than {MAX_DEPTH} levels"),
    (float("nan"), TypeError, "NaN/Infinity are not JSON"),
    ([float("inf")], TypeError, "NaN/Infinity"),
    ({1: "x"}, TypeError, "keys must be strings"),
    ({"when": object()}, TypeError, "['when'] is a builtins.object"),
])
def test_what_cannot_be_stored_is_refused_with_its_path(value: Any, error: type, says: str) -> None:
    with pytest.raises(error) as info:
        check_json(value, "input of the run")
    assert str(info.value).startswith("input of the run ")
    assert says in str(info.value)


def test_deep_nesting_is_refused_without_walking_it() -> None:
    # (the check stops at MAX_DEPTH: it never recurses or copies paths deeper than that)
    with pytest.raises(ValueError, match="nested more than"):
        check_json(_nested(100_000), "payload")


@pytest.mark.parametrize(("value", "error", "says"), [
    ("", TypeError, "must be a non-empty str"),
    (7, TypeError, "must be a non-empty str"),
    ("x" * (MAX_NAME_LENGTH + 1), ValueError, f"the limit is {MAX_NAME_LENGTH}"),
    ("a\x00", ValueError, "NUL"),
    ("\udfff", ValueError, "lone surrogate"),
])
def test_names_are_checked(value: Any, error: type, says: str) -> None:
    with pytest.raises(error, match=says):
        check_name(value, "signal name")


def test_a_name_at_the_limit_passes() -> None:
    assert check_name("n" * MAX_NAME_LENGTH, "workflow name") == "n" * MAX_NAME_LENGTH


def test_recorded_texts_keep_what_cannot_be_stored_visible() -> None:
    assert storable_text("plain") == "plain"
    assert storable_text("a\x00b") == "a\\x00b"
    assert storable_text("x\ud800y") == "x\\ud800y"
    check_json(storable_text("a\x00\ud800"), "error")  # storable now


def test_check_size_counts_stored_bytes_and_names_the_limit() -> None:
    from continuum_nb.store.payloads import check_size, payload_size

    assert payload_size({"a": [1, 2]}) == len('{"a":[1,2]}')
    assert payload_size("é") == 4  # '"é"': two quotes and two UTF-8 bytes
    assert check_size("x" * 10, "the value", 12) == 12
    assert check_size("x" * 10**6, "the value", None) == 10**6 + 2  # None: no limit
    with pytest.raises(ValueError, match=r"^input of a run is 13 bytes as JSON, over the max_payload_bytes "
                                         r"limit of 12; keep large data outside the run .* or raise max_payload_bytes$"):
        check_size("x" * 11, "input of a run", 12)


@pytest.mark.parametrize("value", [
    None, True, 0, -7, 10**30, 1.5, -0.0, "", "plain", 'quote " and \\ backslash', "é ✓ 日本", "\u2028",
    [], {}, [1, [2, [3, None]]], {"b": 1, "a": [True, {"z": "x"}]}, (1, "two"), {"k": (1, 2)},
])
def test_dumps_is_compact_json_in_key_order(value: object) -> None:
    # dumps reuses one C encoder instead of JSONEncoder.encode: the text must be what the json
    # module writes with the same options, byte for byte (jsonb and the journal hashes rely on it).
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    assert payloads.dumps(value) == expected
    assert json.loads(payloads.dumps(value)) == json.loads(expected)


@pytest.mark.parametrize(("value", "error"), [
    (float("nan"), ValueError), ([float("inf")], ValueError), ({"x": object()}, TypeError),
    ({("a",): 1}, TypeError), ({1, 2}, TypeError),
])
def test_dumps_refuses_what_json_refuses(value: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        payloads.dumps(value)
    with pytest.raises(error):
        json.dumps(value, allow_nan=False)
