"""Fault injection for the emulator: random resets, 5xx errors and 429s."""

from __future__ import annotations

import random
from dataclasses import dataclass

#: Injected 5xx statuses and the messages the Media Gateway API answers with.
SERVER_ERRORS: tuple[tuple[int, str], ...] = (
    (500, "Internal error."),
    (502, "Bad gateway."),
    (503, "Service unavailable temporarily"),
    (504, "Gateway timeout"),
)


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
