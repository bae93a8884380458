"""Per-app pacing: even spacing just under the cap, a gentle cut on 429.

How far under depends on the path: the spread of the answers' round trips bounds
how much network jitter can bunch evenly sent requests into one server second.

Our own small pacer rather than aiolimiter or pyrate-limiter: aiolimiter's leaky
bucket lets a burst as large as the cap through after any idle spell (a strict
sliding-window server answers that burst 429), its rate cannot be changed at run
time without touching private attributes, and it sleeps on its own, so the run's
halt switch and a fake clock cannot drive it; pyrate-limiter models the server
side (how many requests fit in a window), not even spacing on the client side.
What we need is one slot booked per request, ``1/rate`` apart, and that is a few
lines.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable

Clock = Callable[[], float]


class Pacer:
    """Spaces requests evenly at the target share of the cap (no bursts) and backs
    off on 429.

    The target: any one-second window as the server counts it (fixed or sliding)
    must stay at or below the cap, and network jitter lands in one server second
    requests sent over ``1 + spread`` seconds, where ``spread`` is how much the
    delay to the server varies. That variation is bounded by the spread of the
    times from booked slot to answer this pacer is shown (:meth:`observe`), so the
    target is ``1 / (1 + spread + MARGIN)`` of the cap (of its whole number of
    requests), kept between ``MIN_TARGET`` and ``MAX_TARGET`` of that whole
    number (``MIN_TARGET`` until enough answers are seen, and on any path whose
    spread exceeds about 40 ms, where only the 429 cut below protects).

    On a 429 the rate is cut to ``CUT`` of itself, at most once per ``WINDOW`` (a
    burst of 429s from one window is one signal). The cut is gentle because a
    lone 429 is usually jitter, not a lower cap: with the slow climb below, a
    lone cut costs about ``(1 - CUT) * (1 + (1 - CUT) / (2 * PROBE))`` x cap
    requests. Cuts in windows in a row are a lower cap (e.g.
    one shared with another client): they deepen, up to ``CUT ** STREAK``, so
    the pace finds it in a few windows, not fights it for many. Recovery waits
    for a whole window without a cut; then the rate climbs by ``PROBE`` x cap per
    second back through the rates that drew 429s (just past the highest; none
    after a lone 429 at the target, which is jitter),
    doubling every ``DOUBLING`` seconds without a 429 up to ``RECOVERY`` x cap per
    second, the speed it climbs at beyond them, up to the target and never above
    it. A fast climb straight back would meet the same lower cap again and
    again: a saw-tooth of 429s every few seconds for the whole run; a slow one
    after a passing storm of 429s would crawl for a minute.
    """

    MIN_TARGET = 0.955
    MAX_TARGET = 0.99
    MARGIN = 0.005  # of the window: what the measured spread may miss
    SAMPLES = 256  # answers the spread is taken over
    MIN_SAMPLES = 32
    CUT = 0.95
    STREAK = 3  # cuts in windows in a row deepen up to CUT ** STREAK
    RECOVERY = 0.25
    PROBE = 0.01  # of the cap per second, back up through rates that drew a 429
    DOUBLING = 4.0  # seconds without a 429 that double the climb through them
    WINDOW = 1.0

    def __init__(self, cap: float, *, floor: float = 1.0, clock: Clock = time.monotonic) -> None:
        if cap <= 0:
            raise ValueError("cap must be positive")
        self.cap = cap
        # A window holds whole requests: at a cap of 16.7/s (50/s over three
        # shards, or a --max-rps of 2.5) an even 16.5/s puts 17 in some windows,
        # so the pace leaves room for the whole number under the cap.
        self.whole = math.floor(cap) if cap >= 1 else cap
        self.target = self.whole * self.MIN_TARGET
        self.rate = self.target
        # Low enough for the deepest cut to slow a pace of one or two requests a second.
        self.floor = min(floor, self.target * self.CUT**self.STREAK)
        self._round_trips: deque[float] = deque(maxlen=self.SAMPLES)
        self._unrated = 0  # round trips observed since the target was last set
        self._clock = clock
        self._next = float("-inf")
        self._last_cut = float("-inf")
        self._streak = 0  # windows in a row with a cut
        self._probe = (0.0, 0.0)  # the pace climbs at PROBE between these rates
        self._last_seen = clock()
        self.throttles = 0
        # Requests that take spare slots wait their turn here, so one polls at a time.
        self.spare_turn = asyncio.Lock()

    @property
    def free_at(self) -> float:
        """When the next slot is free (on this pacer's clock; in the past if free now)."""
        return self._next

    def reserve(self) -> float:
        """Book the next free slot; returns how long to wait for it.

        Every attempt books one, retries included, so they count against the
        same budget as first attempts.
        """
        now = self._clock()
        self._recover(now)
        slot = max(now, self._next)
        self._next = slot + 1.0 / self.rate
        return slot - now

    def reserve_spare(self) -> tuple[bool, float]:
        """Book a slot only if it is free within half a slot, so no booked request
        waits behind it; ``(booked, wait)``: wait that long, then send (booked) or
        ask again (not booked).

        Requests that must never delay the others on the same budget
        (verifications beside the lookups the DELETEs wait for) take spare slots;
        over a run they still get every slot the others leave. Asking half a slot
        early keeps a late wake-up from costing a slot each time.
        """
        now = self._clock()
        self._recover(now)
        gap = 1.0 / self.rate
        slot = max(now, self._next)
        if slot - now > gap / 2:
            return False, slot - now - gap / 2
        self._next = slot + gap
        return True, slot - now

    def throttled(self) -> None:
        """The API said 429: slow down (once per window however many 429s came)."""
        self.throttles += 1
        now = self._clock()
        if now - self._last_cut >= self.WINDOW:
            self._streak = self._streak + 1 if now - self._last_cut < 2 * self.WINDOW else 1
            drew = self.rate
            self.rate = max(self.floor, drew * self.CUT ** min(self._streak, self.STREAK))
            if self._streak == 1 and drew >= self.target:
                # A lone 429 at the target is jitter, not a lower cap: climb back
                # at full speed, as if no rate had drawn one.
                self._probe = (0.0, 0.0)
            else:
                # A 429 while still probing says the cap lies below rates already
                # tried: the climb stays slow up to the highest of them.
                high = self._probe[1]
                self._probe = (self.rate, max(high if drew < high else 0.0, drew / self.CUT))
            self._last_cut = now

    def observe(self, seconds: float) -> None:
        """Seconds from one request's booked slot to its answer; every
        ``MIN_SAMPLES`` of them, the target follows the spread (largest minus
        smallest) of the last ``SAMPLES``.

        The whole range, not a percentile: the requests a window can bunch are
        the ones delayed least and most.
        """
        self._round_trips.append(seconds)
        self._unrated += 1
        if self._unrated < self.MIN_SAMPLES:
            return
        self._unrated = 0
        spread = max(self._round_trips) - min(self._round_trips)
        share = 1.0 / (1.0 + (spread + self.MARGIN) / self.WINDOW)
        self.target = self.whole * min(self.MAX_TARGET, max(self.MIN_TARGET, share))
        self.rate = min(self.rate, self.target)  # climbs back by _recover when it rose

    def _recover(self, now: float) -> None:
        if self.rate < self.target and now - self._last_cut >= self.WINDOW:
            start = max(self._last_seen, self._last_cut + self.WINDOW)
            low, high = self._probe
            speed = self.RECOVERY
            if low <= self.rate < high:
                # Slow near the rates that drew 429s, faster the longer none comes:
                # a lower cap answers within seconds, a passing storm never does.
                quiet = start - self._last_cut - self.WINDOW
                speed = min(self.RECOVERY, self.PROBE * 2 ** (quiet / self.DOUBLING))
            self.rate = min(self.target, self.rate + self.cap * speed * (now - start))
        self._last_seen = now


class RateLimits:
    """One pacer per app ID; ``rate`` (the cap) 0 means no cap at all."""

    def __init__(self, rate: float, *, clock: Clock = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._pacers: dict[str, Pacer] = {}

    def get(self, app_id: str) -> Pacer | None:
        if self.rate <= 0:
            return None
        pacer = self._pacers.get(app_id)
        if pacer is None:
            pacer = self._pacers[app_id] = Pacer(self.rate, clock=self._clock)
        return pacer
