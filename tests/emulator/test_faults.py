"""Token buckets and fault injection."""

from __future__ import annotations

from revoker.emulator.faults import SERVER_ERRORS, FaultInjector, RateLimiter, TokenBucket


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


def test_rate_limiter_separates_apps_and_kinds_and_zero_is_unlimited() -> None:
    limiter = RateLimiter({"DELETE": 1, "GET": 0})
    assert limiter.take("a", "DELETE", 0.0) == 0
    assert limiter.take("a", "DELETE", 0.0) == 1
    assert limiter.take("b", "DELETE", 0.0) == 0
    assert all(limiter.take("a", "GET", 0.0) == 0 for _ in range(1000))


def test_fault_injector_is_deterministic_with_a_seed() -> None:
    def draws(seed: int) -> list[str | None]:
        inj = FaultInjector(reset_rate=0.2, error_rate=0.2, throttle_rate=0.2, seed=seed)
        return [f.kind if f else None for f in (inj.draw() for _ in range(50))]

    assert draws(7) == draws(7)
    assert set(draws(7)) == {None, "reset", "error", "throttle"}


def test_fault_injector_without_rates_never_faults() -> None:
    inj = FaultInjector(reset_rate=0, error_rate=0, throttle_rate=0, seed=None)
    assert all(inj.draw() is None for _ in range(1000))


def test_error_faults_use_documented_statuses() -> None:
    inj = FaultInjector(reset_rate=0, error_rate=1, throttle_rate=0, seed=3)
    faults = [inj.draw() for _ in range(100)]
    assert {(f.status, f.message) for f in faults if f} == set(SERVER_ERRORS)
