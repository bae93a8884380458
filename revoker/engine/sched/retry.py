"""How an API call is retried: named tenacity strategies built from RetrySettings.

:class:`RetryPolicy` is what a run's callers pass in (tests pass a fast one);
the engine turns it into a tenacity stop and wait for each call that needs a
second attempt. Which answers are retried is the call's business
(:mod:`revoker.engine.sched.calls`), not the policy's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from tenacity import RetryCallState, stop_after_attempt, wait_random_exponential
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from revoker.agora.client import ApiResponse
from revoker.errors import TransportFailure
from revoker.settings import RetrySettings


class HaltSwitch(Protocol):
    """What the stop strategy reads of the run's halt switch."""

    @property
    def is_set(self) -> bool: ...


class StopWhenHalted(stop_base):
    """Stop retrying once the run halts: a halted run sends nothing new."""

    def __init__(self, halt: HaltSwitch) -> None:
        self.halt = halt

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.halt.is_set


class Backoff(wait_base):
    """The wait before the next attempt.

    An answer with ``Retry-After`` waits that long, at most ``retry_after_cap``;
    anything else waits a full-jitter exponential backoff (``base`` doubling per
    attempt, at most ``cap``). With ``fallback`` (the client has a second host),
    a connection that could not be made is tried on the other host at once; if
    that one cannot be reached either, the usual backoff comes before switching back.
    """

    def __init__(
        self,
        base: float = RetrySettings.backoff_base,
        cap: float = RetrySettings.backoff_max,
        retry_after_cap: float = RetrySettings.retry_after_cap,
        *,
        fallback: bool = False,
    ) -> None:
        self.base = base
        self.cap = cap
        self.retry_after_cap = retry_after_cap
        self.fallback = fallback
        self._jitter = wait_random_exponential(multiplier=base, max=cap)

    def with_fallback(self, fallback: bool) -> Backoff:
        """This backoff for a client that has (or has not) a fallback host."""
        if fallback == self.fallback:
            return self
        return Backoff(self.base, self.cap, self.retry_after_cap, fallback=fallback)

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        if outcome is None:
            return 0.0
        if outcome.failed:
            exc = outcome.exception()
            if (
                self.fallback
                and isinstance(exc, TransportFailure)
                and exc.connect
                and retry_state.attempt_number % 2 == 1
            ):
                return 0.0
            return float(self._jitter(retry_state))
        response: ApiResponse = outcome.result()
        if response.retry_after is not None:
            return min(response.retry_after, self.retry_after_cap)
        return float(self._jitter(retry_state))


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``max_attempts`` attempts per call, ``wait`` between them."""

    max_attempts: int = RetrySettings.max_attempts
    wait: Backoff = field(default_factory=Backoff)

    @classmethod
    def from_settings(cls, retry: RetrySettings) -> RetryPolicy:
        return cls(
            retry.max_attempts,
            Backoff(retry.backoff_base, retry.backoff_max, retry.retry_after_cap),
        )

    def stop(self, halt: HaltSwitch) -> stop_base:
        """The attempt cap, or sooner once the run halts."""
        return stop_after_attempt(self.max_attempts) | StopWhenHalted(halt)
