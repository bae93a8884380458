"""The emulator's server-side rate limiters: token bucket, fixed window, sliding window.

Agora does not document which algorithm it uses, so the emulator offers the usual
three. Each counts requests per second of its own kind and answers ``take(now)``
with 0 (go on) or the whole seconds to put in ``Retry-After`` (at least 1). A
rejected request is not counted.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Protocol


class Limiter(Protocol):
    def take(self, now: float) -> int: ...


def _window(rate: float) -> tuple[float, int]:
    """(window seconds, requests allowed per window): one second, or longer below 1/s."""
    seconds = max(1.0, 1.0 / rate)
    return seconds, max(1, int(rate * seconds + 1e-9))


class TokenBucket:
    """Capacity ``rate`` tokens (at least 1), refilled at ``rate`` per second; one per request.

    The most lenient: after an idle spell it lets a burst as large as the cap through.
    """

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self.tokens = self.capacity
        self.stamp = now

    def take(self, now: float) -> int:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0
        return max(1, math.ceil((1.0 - self.tokens) / self.rate))


class FixedWindow:
    """At most ``rate`` requests per calendar second ([k, k+1) of the clock).

    Up to twice the cap can pass across a window boundary.
    """

    __slots__ = ("count", "limit", "seconds", "start")

    def __init__(self, rate: float, now: float) -> None:
        self.seconds, self.limit = _window(rate)
        self.start = math.floor(now / self.seconds) * self.seconds
        self.count = 0

    def take(self, now: float) -> int:
        if now >= self.start + self.seconds:
            self.start = math.floor(now / self.seconds) * self.seconds
            self.count = 0
        if self.count < self.limit:
            self.count += 1
            return 0
        return max(1, math.ceil(self.start + self.seconds - now))


class SlidingWindow:
    """At most ``rate`` requests in any trailing second (a log of accepted times).

    The strictest: no burst and no boundary to exploit.
    """

    __slots__ = ("limit", "seconds", "times")

    def __init__(self, rate: float, now: float) -> None:
        self.seconds, self.limit = _window(rate)
        self.times: deque[float] = deque()

    def take(self, now: float) -> int:
        times = self.times
        while times and times[0] <= now - self.seconds:
            times.popleft()
        if len(times) < self.limit:
            times.append(now)
            return 0
        return max(1, math.ceil(times[0] + self.seconds - now))


ALGORITHMS: dict[str, type[TokenBucket | FixedWindow | SlidingWindow]] = {
    "token-bucket": TokenBucket,
    "fixed-window": FixedWindow,
    "sliding-window": SlidingWindow,
}
DEFAULT_ALGORITHM = "sliding-window"


class AppLimiters:
    """One limiter per (app ID, method class); a rate of 0 means unlimited."""

    __slots__ = ("algorithm", "limiters", "rates")

    def __init__(self, rates: dict[str, float], algorithm: str = DEFAULT_ALGORITHM) -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown rate-limit algorithm {algorithm!r}")
        self.rates = rates
        self.algorithm = ALGORITHMS[algorithm]
        self.limiters: dict[tuple[str, str], Limiter] = {}

    def take(self, app_id: str, kind: str, now: float) -> int:
        """0 if the request may go on, else the ``Retry-After`` seconds."""
        rate = self.rates.get(kind, 0)
        if rate <= 0:
            return 0
        limiter = self.limiters.get((app_id, kind))
        if limiter is None:
            limiter = self.limiters[(app_id, kind)] = self.algorithm(rate, now)
        return limiter.take(now)
