"""The emulator's rate limiters: token bucket, fixed window, sliding window."""

from __future__ import annotations

import pytest

from revoker.emulator.limiters import AppLimiters, FixedWindow, SlidingWindow, TokenBucket


def test_token_bucket_allows_capacity_then_asks_to_wait() -> None:
    bucket = TokenBucket(3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [0, 0, 0, 1]


def test_token_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket(2, now=0.0)
    bucket.take(0.0)
    bucket.take(0.0)
    assert bucket.take(0.1) == 1
    assert bucket.take(0.6) == 0


def test_slow_bucket_asks_for_several_seconds() -> None:
    bucket = TokenBucket(0.25, now=0.0)
    assert bucket.take(0.0) == 0
    assert bucket.take(0.0) == 4


def test_fixed_window_counts_per_calendar_second_and_resets_at_the_boundary() -> None:
    window = FixedWindow(3, now=10.2)
    assert [window.take(10.5) for _ in range(4)] == [0, 0, 0, 1]
    # A new calendar second starts afresh, so 3 more pass only 0.5 s later.
    assert [window.take(11.0) for _ in range(4)] == [0, 0, 0, 1]


def test_fixed_window_retry_after_is_the_rest_of_the_window_rounded_up() -> None:
    window = FixedWindow(1, now=0.0)
    assert window.take(0.1) == 0
    assert window.take(0.1) == 1
    slow = FixedWindow(0.25, now=0.0)  # one request per 4 s window
    assert slow.take(1.0) == 0
    assert slow.take(1.5) == 3


def test_sliding_window_counts_any_trailing_second() -> None:
    window = SlidingWindow(3, now=0.0)
    assert [window.take(t) for t in (0.5, 0.9, 1.0)] == [0, 0, 0]
    # At 1.2 the window (0.2, 1.2] still holds 3: unlike a fixed window, no reset at 1.0.
    assert window.take(1.2) == 1
    assert window.take(1.5) == 0  # 0.5 has left the window
    assert window.take(1.6) == 1


def test_sliding_window_does_not_count_rejected_requests() -> None:
    window = SlidingWindow(2, now=0.0)
    assert [window.take(0.0), window.take(0.0)] == [0, 0]
    assert all(window.take(0.5) == 1 for _ in range(10))
    assert window.take(1.0) == 0


@pytest.mark.parametrize("algorithm", ["token-bucket", "fixed-window", "sliding-window"])
def test_each_algorithm_separates_apps_and_kinds_and_zero_is_unlimited(algorithm: str) -> None:
    limiter = AppLimiters({"DELETE": 1, "GET": 0}, algorithm)
    assert limiter.take("a", "DELETE", 0.0) == 0
    assert limiter.take("a", "DELETE", 0.0) == 1
    assert limiter.take("b", "DELETE", 0.0) == 0
    assert all(limiter.take("a", "GET", 0.0) == 0 for _ in range(1000))


@pytest.mark.parametrize("algorithm", ["token-bucket", "fixed-window", "sliding-window"])
def test_each_algorithm_holds_the_cap_over_a_steady_overload(algorithm: str) -> None:
    limiter = AppLimiters({"DELETE": 50}, algorithm)
    # 200 requests/s offered for 10 s: about 50/s pass (the token bucket's initial
    # burst and a fixed window's first partial second add at most one cap's worth).
    passed = sum(limiter.take("a", "DELETE", 100.0 + i / 200) == 0 for i in range(2000))
    assert 500 <= passed <= 550


def test_unknown_algorithm_is_refused() -> None:
    with pytest.raises(ValueError, match="leaky"):
        AppLimiters({"DELETE": 1}, "leaky")
