"""Rate limiting and fault injection for the emulator: token buckets and random faults."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

#: Injected 5xx statuses and their bodies' messages (from MEDIA-GATEWAY-API.md).
SERVER_ERRORS: tuple[tuple[int, str], ...] = (
    (500, "Internal error."),
    (502, "Bad gateway."),
    (503, "Service unavailable temporarily"),
    (504, "Gateway timeout"),
)


class TokenBucket:
    """Capacity ``rate`` tokens (at least 1), refilled at ``rate`` per second; one per request."""

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self.tokens = self.capacity
        self.stamp = now

    def take(self, now: float) -> int:
        """Take a token: 0 if allowed, else the whole seconds to wait (at least 1)."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0
        return max(1, math.ceil((1.0 - self.tokens) / self.rate))


class RateLimiter:
    """One token bucket per (app ID, method class); a rate of 0 means unlimited."""

    __slots__ = ("buckets", "rates")

    def __init__(self, rates: dict[str, float]) -> None:
        self.rates = rates
        self.buckets: dict[tuple[str, str], TokenBucket] = {}

    def take(self, app_id: str, kind: str, now: float) -> int:
        """0 if the request may go on, else the ``Retry-After`` seconds."""
        rate = self.rates.get(kind, 0)
        if rate <= 0:
            return 0
        bucket = self.buckets.get((app_id, kind))
        if bucket is None:
            bucket = self.buckets[(app_id, kind)] = TokenBucket(rate, now)
        return bucket.take(now)


@dataclass(frozen=True, slots=True)
class Fault:
    """An injected fault: ``kind`` is "reset", "error" or "throttle"."""

    kind: str
    status: int | None = None
    message: str = ""


class FaultInjector:
    """Draws one random number per request and maps it to reset, error, throttle or none.

    The rates are cumulative in that order (reset first), so each is exact while their
    sum is at most 1.
    """

    def __init__(
        self, *, reset_rate: float, error_rate: float, throttle_rate: float, seed: int | None
    ) -> None:
        self.reset_rate = reset_rate
        self.error_rate = error_rate
        self.throttle_rate = throttle_rate
        self.active = reset_rate > 0 or error_rate > 0 or throttle_rate > 0
        self.rng = random.Random(seed)

    def draw(self) -> Fault | None:
        if not self.active:
            return None
        r = self.rng.random()
        if r < self.reset_rate:
            return Fault("reset")
        r -= self.reset_rate
        if r < self.error_rate:
            status, message = self.rng.choice(SERVER_ERRORS)
            return Fault("error", status, message)
        r -= self.error_rate
        if r < self.throttle_rate:
            return Fault("throttle", 429, "Request rate limit exceeded.")
        return None
