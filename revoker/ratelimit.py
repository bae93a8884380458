"""Per-app pacing that backs off when the API answers 429."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]


class RateLimiter:
    """Spaces requests evenly at ``rate``/s (no bursts), and slows down on 429.

    On a 429 the rate drops to 70% (at most once a second, so one burst of
    429s counts once); it climbs back by 5% of the cap per second after that.
    """

    CUT = 0.7
    RECOVERY = 0.05

    def __init__(self, rate: float, *, floor: float = 1.0, clock: Clock = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.cap = rate
        self.rate = rate
        self.floor = min(floor, rate)
        self._clock = clock
        self._next = 0.0
        self._last_cut = float("-inf")
        self._last_seen = clock()
        self.throttles = 0

    def reserve(self) -> float:
        """Book the next free slot; returns how long to wait for it."""
        now = self._clock()
        self._recover(now)
        slot = max(now, self._next)
        self._next = slot + 1.0 / self.rate
        return slot - now

    def throttled(self) -> None:
        """The API said 429: slow down."""
        self.throttles += 1
        now = self._clock()
        if now - self._last_cut >= 1.0:
            self.rate = max(self.floor, self.rate * self.CUT)
            self._last_cut = now

    def _recover(self, now: float) -> None:
        if self.rate < self.cap and now - self._last_cut >= 1.0:
            self.rate = min(
                self.cap, self.rate + self.cap * self.RECOVERY * (now - self._last_seen)
            )
        self._last_seen = now


class RateLimits:
    """One limiter per app ID; ``rate`` 0 means no cap at all."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._limiters: dict[str, RateLimiter] = {}

    def get(self, app_id: str) -> RateLimiter | None:
        if self.rate <= 0:
            return None
        limiter = self._limiters.get(app_id)
        if limiter is None:
            limiter = self._limiters[app_id] = RateLimiter(self.rate)
        return limiter
