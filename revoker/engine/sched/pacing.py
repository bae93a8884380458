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
from dataclasses import dataclass

Clock = Callable[[], float]

# The two documented 429 messages that speak of the service's resources, not of
# our rate: supporting evidence only, as the docs reword messages between versions.
QUOTA_MESSAGES = ("resources quota limit exceeded", "no available resources")

# The budget (HTTP method) whose per-app cap bounds each pass, by the pass's event (and
# a bulk command by its first pass): the fair feed hands a pass's tasks out by it, its
# ETA and the dry run's estimate take its rate. A rotate's DELETE and create each have
# a budget of that rate, one of each per pair; its GET budget is twice as large.
PASS_BUDGETS = {"revoke": "DELETE", "rotate": "DELETE", "verify": "GET", "query": "GET"}


@dataclass(frozen=True, slots=True)
class Slot:
    """A booked send time; ``seq``: the front bookings (:meth:`Pacer.book_front`) it
    already takes into account."""

    at: float
    seq: int


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

    Not every 429 is about our pace: the service also answers 429 when its own
    resources run short. A 429 is taken as ours when 429s are dense (more than
    ``DENSE`` of the answers of the last ``HORIZON`` seconds above the stray
    share: a storm or a much lower cap, cut at once as above), or, when sparse,
    once slower paces have drawn clearly fewer of them (``FEWER`` standard
    errors under the share at the fastest pace with enough answers). Sparse
    429s that came about as often at slower paces (within ``SAME``) are stray
    and cost no cut; so do sparse 429s while the pace is not what holds the
    requests back (fewer than ``BUSY`` of the pace's slots booked in the last
    window). Until the pacer knows which kind they are, each is a lone cut at
    the target, recovered from at full speed: the answers at the cut pace are
    the evidence. A ``Retry-After`` longer than a window, or a quota message,
    leans an undecided one to stray, never more. Sparse 429s never take the pace
    more than ``DENSE`` under a pace that drew sparse ones (or the one the last
    dense 429s left): the cap cannot be that far under it, or they would have
    been dense.
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
    HORIZON = 2.0  # seconds of answers the density of 429s is taken over
    DENSE = 0.2  # share of 429s above the stray share that is a pace signal at once
    BUSY = 0.8  # below this share of the pace answered, the pace is not what binds
    SAME = 1.0  # standard errors under the faster pace's share still "as often"
    FEWER = 2.0  # standard errors under it that are "far fewer": the pace's doing
    SURE = 0.0  # while probing near a lower cap, stray only if slower paces drew more
    STRAY_429S = 1.5  # 429s at the cut pace (two, less what faded) to call them stray
    PACE_ANSWERS = 50.0  # answers at a pace before its 429 share is trusted
    DENSE_429S = 3  # fewer 429s than this in HORIZON are never dense
    HALF_LIFE = 30.0  # seconds over which evidence about 429s fades by half
    FRONTS = 1024  # front bookings remembered (a booked request looks them up)

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
        # Answers and 429s of the last HORIZON, for the density of 429s.
        self._answers: deque[float] = deque()
        self._recent_429s: deque[float] = deque()
        # Evidence on sparse 429s, fading with time: (answers, 429s) by pace, in
        # steps of one CUT below the target (0: the target), counted once the
        # slots booked before the last cut are gone.
        self._paces: dict[int, list[float]] = {}
        self._evidence_at = clock()
        self._low_from = float("inf")
        self._settled = 0.0  # the pace the last dense 429s left (sparse ones stay near it)
        # Booked slots not yet gone, and front bookings (seq, at, gap) made since.
        self._booked: deque[float] = deque()
        self._fronts: deque[tuple[int, float, float]] = deque(maxlen=self.FRONTS)
        self._seq = 0
        self._bookings: deque[float] = deque()  # when slots were booked, last window
        self._first_booking = float("inf")
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
        return self.book().at - now

    def book(self) -> Slot:
        """Book the next free slot (as :meth:`reserve`); before sending at it, ask
        :meth:`moved` whether a front booking pushed it back."""
        now = self._clock()
        self._recover(now)
        slot = max(now, self._next)
        self._next = slot + 1.0 / self.rate
        self._prune_booked(now)
        self._booked.append(slot)
        self._note_booking(now)
        return Slot(slot, self._seq)

    def book_front(self) -> Slot:
        """Book the first slot not yet gone, for the retry of a stray 429: it keeps
        its place instead of waiting behind every request booked meanwhile.

        Every request booked at or after that slot goes one slot later
        (:meth:`moved`), so the spacing and the pace stay what they were.
        """
        now = self._clock()
        self._prune_booked(now)
        if not self._booked:
            return self.book()
        gap = 1.0 / self.rate
        self._seq += 1
        front = self._booked[0]
        self._fronts.append((self._seq, front, gap))
        self._next += gap
        return Slot(front, self._seq)

    def until(self, slot: Slot) -> float:
        """Seconds from now (on this pacer's clock) to ``slot``; 0 once it is due."""
        return max(0.0, slot.at - self._clock())

    def moved(self, slot: Slot) -> Slot:
        """``slot`` pushed back one slot for each front booking made after it at or
        before its time (a request that was sent later keeps its place behind)."""
        at = slot.at
        counted: set[int] = set()
        changed = True
        while changed:  # a push can bring later front bookings into reach
            changed = False
            for seq, front, gap in self._fronts:
                if seq > slot.seq and seq not in counted and front <= at + 1e-9:
                    counted.add(seq)
                    at += gap
                    changed = True
        return Slot(at, self._seq)

    def _prune_booked(self, now: float) -> None:
        while self._booked and self._booked[0] < now:
            self._booked.popleft()

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
        self._note_booking(now)
        return True, slot - now

    def throttled(self, retry_after: float | None = None, message: str | None = None) -> bool:
        """The API said 429: slow down if it is about our pace (once per window
        however many 429s came); True if it was taken as ours.

        ``retry_after`` and ``message`` are supporting evidence only: they decide
        nothing that the share of 429s at different paces has shown.
        """
        self.throttles += 1
        now = self._clock()
        self._fade(now)
        self._recent_429s.append(now)
        self._prune_answers(now)
        band = self._band(now)
        if band is not None:
            band[1] += 1
        stray = self._stray_share()
        if self._dense(stray or 0.0):
            # A storm, or a cap well under ours; what this pace and faster ones drew
            # before it turned dense says nothing about stray 429s.
            level = self._level()
            self._paces = {k: v for k, v in self._paces.items() if k > level}
            self._cut(now, self.floor)
            self._settled = self.rate
            return True
        probing = self._probe[0] <= self.rate < self._probe[1]
        if stray is not None and not probing:
            return False  # 429s at this share came as often at a slower pace
        if probing and (stray is None or not self._stray_share(self.SURE)):
            self._cut(now, self._sparse_floor())  # probing under rates that drew 429s
            return True
        if stray is not None:
            return False  # probing, but slower paces drew them more often still
        if self._idle(now):
            return False  # the pace is not what holds requests back
        if self._ours():
            self._cut(now, self._sparse_floor())
            return True
        supporting = (retry_after or 0.0) > self.WINDOW or any(
            quota in (message or "").lower() for quota in QUOTA_MESSAGES
        )
        if supporting:
            return False
        # Undecided: a lone cut at the target, recovered from at full speed; the
        # answers at the cut pace tell whether 429s follow the pace.
        if now - self._last_cut >= self.WINDOW:
            self._lower(max(self.floor, min(self.rate, self.target * self.CUT)))
            self._probe = (0.0, 0.0)
            self._streak = 0
            self._last_cut = now
        return False

    def _lower(self, rate: float) -> None:
        level = self._level()
        self.rate = rate
        if self._level() != level:
            self._low_from = self._next  # the slots booked at the higher pace go first

    def _cut(self, now: float, floor: float) -> None:
        """Cut the pace, not below ``floor`` (nor the pacer's own); a cut the floor
        stops is no cut at all, and the climb goes on."""
        if now - self._last_cut >= self.WINDOW:
            streak = self._streak + 1 if now - self._last_cut < 2 * self.WINDOW else 1
            drew = self.rate
            cut = max(self.floor, floor, drew * self.CUT ** min(streak, self.STREAK))
            if cut >= drew and drew > self.floor:
                return
            self._streak = streak
            self._lower(min(drew, cut))
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

    def _band(self, now: float) -> list[float] | None:
        """Where an answer now counts as evidence on sparse 429s: with the others at
        this pace (once the slots booked at a higher one are gone), or nowhere
        while 429s are dense."""
        if self._dense(0.0) or now < self._low_from:
            return None
        return self._paces.setdefault(self._level(), [0.0, 0.0])

    def _level(self) -> int:
        """The pace in steps of one CUT below the target (0: the target)."""
        return max(0, round(math.log(self.rate / self.target) / math.log(self.CUT)))

    def _dense(self, stray: float) -> bool:
        """More 429s in the last HORIZON than ``DENSE`` above the stray share, out of
        the answers seen or those the pace would have brought (a run's first
        answers are too few to judge by); dense too when no answer was shown."""
        if not self._answers:
            return True
        throttled = len(self._recent_429s)
        seen = max(len(self._answers), self.rate * self.HORIZON)
        return throttled >= self.DENSE_429S and throttled > (self.DENSE + stray) * seen

    def _contrast(self) -> tuple[float, float] | None:
        """(429s at paces slower than the fastest one with enough answers and some
        429s, how many standard errors their share sits above or below that pace's),
        or None before there is such a pace and a slower one."""
        levels = sorted(self._paces)
        top = next(
            (
                level
                for level in levels
                if self._paces[level][0] >= self.PACE_ANSWERS and self._paces[level][1] > 0
            ),
            None,
        )
        if top is None:
            return None
        answers, throttled = self._paces[top]
        low_answers = sum(self._paces[level][0] for level in levels if level > top)
        low_throttled = sum(self._paces[level][1] for level in levels if level > top)
        if low_answers <= 0:
            return None
        both = (throttled + low_throttled) / (answers + low_answers)
        error = math.sqrt(both * (1 - both) * (1 / answers + 1 / low_answers))
        return low_throttled, (low_throttled / low_answers - throttled / answers) / error

    def _stray_share(self, above: float | None = None) -> float | None:
        """The share of 429s that comes whatever the pace, once shown (slower paces
        within ``SAME`` standard errors of the faster one, or ``above`` them); else None."""
        contrast = self._contrast()
        least = -self.SAME if above is None else above
        if contrast is None or contrast[0] < self.STRAY_429S or contrast[1] < least:
            return None
        answers = sum(counts[0] for counts in self._paces.values())
        return sum(counts[1] for counts in self._paces.values()) / answers

    def _ours(self) -> bool:
        """True once slower paces have drawn clearly fewer 429s: they follow the pace."""
        contrast = self._contrast()
        return contrast is not None and contrast[1] <= -self.FEWER

    def _sparse_floor(self) -> float:
        """How low sparse 429s may take the pace: the cap is at most ``DENSE`` under
        a pace whose 429s were sparse (else they would have been dense), whether it
        drew enough answers or the last dense 429s left it, so cutting far below
        it is chasing stray ones."""
        sparse = [k for k, counts in self._paces.items() if counts[0] >= self.PACE_ANSWERS]
        known = self.target * self.CUT ** min(sparse) if sparse else 0.0
        return max(self.floor, max(known, self._settled) * (1 - self.DENSE))

    def _note_booking(self, now: float) -> None:
        self._bookings.append(now)
        self._first_booking = min(self._first_booking, now)
        while self._bookings[0] <= now - self.WINDOW:
            self._bookings.popleft()

    def _idle(self, now: float) -> bool:
        """True when the slots booked over the last window fell well short of the
        pace (known only once booking began a window ago)."""
        while self._bookings and self._bookings[0] <= now - self.WINDOW:
            self._bookings.popleft()
        if now - self._first_booking < self.WINDOW:
            return False
        return len(self._bookings) < self.BUSY * self.rate * self.WINDOW

    def _fade(self, now: float) -> None:
        factor = 0.5 ** ((now - self._evidence_at) / self.HALF_LIFE)
        self._evidence_at = now
        for counts in self._paces.values():
            counts[0] *= factor
            counts[1] *= factor

    def _prune_answers(self, now: float) -> None:
        while self._answers and self._answers[0] <= now - self.HORIZON:
            self._answers.popleft()
        while self._recent_429s and self._recent_429s[0] <= now - self.HORIZON:
            self._recent_429s.popleft()

    def observe(self, seconds: float) -> None:
        """Seconds from one request's booked slot to its answer; every
        ``MIN_SAMPLES`` of them, the target follows the spread (largest minus
        smallest) of the last ``SAMPLES``.

        The whole range, not a percentile: the requests a window can bunch are
        the ones delayed least and most.
        """
        now = self._clock()
        self._answers.append(now)
        self._prune_answers(now)
        self._fade(now)
        band = self._band(now)
        if band is not None:
            band[0] += 1
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
