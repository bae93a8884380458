from __future__ import annotations

import pytest

from revoker.ratelimit import RateLimiter, RateLimits


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_requests_are_spaced_evenly_at_the_rate_without_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(50, clock=clock)
    waits = [limiter.reserve() for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.02, 0.04, 0.06, 0.08])


def test_an_idle_limiter_sends_the_next_request_at_once() -> None:
    clock = Clock()
    limiter = RateLimiter(10, clock=clock)
    limiter.reserve()
    clock.now += 5
    assert limiter.reserve() == 0.0


def test_a_429_cuts_the_rate_once_per_second_and_it_recovers() -> None:
    clock = Clock()
    limiter = RateLimiter(50, clock=clock)
    limiter.throttled()
    limiter.throttled()  # same burst: counted, not cut twice
    assert limiter.rate == pytest.approx(35.0)
    assert limiter.throttles == 2
    clock.now += 1.5
    limiter.throttled()
    assert limiter.rate == pytest.approx(24.5)
    for _ in range(40):  # 20 s without 429s
        clock.now += 0.5
        limiter.reserve()
    assert limiter.rate == pytest.approx(50.0)


def test_the_rate_never_drops_below_the_floor() -> None:
    clock = Clock()
    limiter = RateLimiter(2, floor=1.0, clock=clock)
    for _ in range(10):
        clock.now += 1
        limiter.throttled()
    assert limiter.rate == pytest.approx(1.0)


def test_each_app_id_has_its_own_limiter_and_zero_means_no_cap() -> None:
    limits = RateLimits(50)
    assert limits.get("a") is limits.get("a")
    assert limits.get("a") is not limits.get("b")
    assert RateLimits(0).get("a") is None
