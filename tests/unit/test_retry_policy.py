"""cn.Retry: the backoff (base, factor, max_interval), its jitter, which errors are retried, and
one clear line for a bad policy."""

from __future__ import annotations

from typing import Any

import pytest

import continuum_nb as cn


def test_exponential_backoff_is_capped_by_max_interval() -> None:
    r = cn.Retry(max_attempts=10, base=cn.seconds(1), max_interval=cn.seconds(10))
    assert [r.delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_max_delay_is_the_cap_when_max_interval_is_not_given() -> None:
    r = cn.Retry(max_attempts=10, base=cn.minutes(1), max_delay=cn.minutes(3))
    assert [r.delay(n) for n in (1, 2, 3)] == [60, 120, 180]
    assert cn.Retry(max_interval=30.0).cap() == 30.0


@pytest.mark.parametrize("rand,expected", [(0.0, 8.0), (0.5, 10.0), (1.0, 12.0)])
def test_jitter_spreads_a_delay_both_ways(rand: float, expected: float) -> None:
    r = cn.Retry(base=cn.seconds(10), backoff="constant", jitter=0.2)
    assert r.delay(1, rand=lambda: rand) == pytest.approx(expected)


def test_real_jitter_stays_within_its_bounds() -> None:
    r = cn.Retry(base=cn.seconds(10), backoff="constant", jitter=0.5)
    delays = {r.delay(1) for _ in range(200)}
    assert all(5.0 <= d <= 15.0 for d in delays) and len(delays) > 1


class Declined(Exception):
    pass


def test_which_errors_are_retried() -> None:
    r = cn.Retry(non_retryable=(ValueError, "Declined"))
    assert not r.retries(ValueError("bad"))
    assert not r.retries(UnicodeDecodeError("utf-8", b"", 0, 1, "x"))  # a ValueError subclass
    assert not r.retries(Declined())  # by class name
    assert not r.retries(cn.NonRetryableError("stop"))  # whatever the policy says
    assert r.retries(ConnectionError("down"))
    assert cn.Retry(non_retryable=KeyError).non_retryable == (KeyError,)


@pytest.mark.parametrize("kwargs,message", [
    ({"jitter": 1.5}, "Retry.jitter must be a number from 0 to 1"),
    ({"jitter": True}, "Retry.jitter"),
    ({"max_interval": -1}, "Retry.max_interval"),
    ({"non_retryable": (42,)}, "Retry.non_retryable must be a tuple of exception classes or class names"),
    ({"max_attempts": 0}, "Retry.max_attempts"),
])
def test_a_bad_policy_is_one_clear_line(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(cn.ConfigurationError, match=message) as info:
        cn.Retry(**kwargs)
    assert "\n" not in str(info.value)
