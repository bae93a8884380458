"""What happened when, in bounded memory: the timeline of ``report --format html``.

:class:`Timeline` sees every line once (``build_report(..., observe=...)``)
and keeps only summaries whose size does not grow with the log: counts per
time bucket (the buckets widen as the log's span grows, so there are at most
:data:`MAX_BUCKETS`), histograms of time-to-revoke and time-to-cut, and one
entry per run. No record is kept.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from revoker.audit.evidence import DELETING_EVENTS, record_deleted_key
from revoker.models import REGIONS

MAX_BUCKETS = 600
# The narrowest bucket: a short run against a fast server still shows its steps.
MIN_WIDTH_MS = 10
# Series per bucket: "deleted" and "cut" per region, the rest per region too.
SERIES = ("deleted", "cut", "verify", "throttled", "retries", "failed")
OTHER_REGION = "other"
# listing: the live-stream listings (before the first DELETE, and the cuts' own), whose
# 429s and retries are part of the story too.
TIMED_EVENTS = ("revoke", "verify", "disconnect", "rotate", "listing")


def ts_ms(value: Any) -> int | None:
    """An audit line's ``ts`` as milliseconds since the epoch; None if it is not one."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return int(moment.timestamp() * 1000)


class Histogram:
    """Durations in buckets 1% apart: quantiles within 1%, exact count and max."""

    RATIO = 1.01

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()
        self.count = 0
        self.max_ms = 0

    def add(self, ms: int) -> None:
        ms = max(ms, 0)
        self.counts[int(math.log(ms + 1, self.RATIO))] += 1
        self.count += 1
        self.max_ms = max(self.max_ms, ms)

    def quantile(self, q: float) -> int | None:
        """The q-quantile (the upper edge of its bucket, never above the max)."""
        if not self.count:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                return min(self.max_ms, round(self.RATIO ** (index + 1) - 1))
        return self.max_ms


@dataclass
class RunSpan:
    """One run on the timeline: when it started and ended, and how."""

    run_id: str
    log: str
    command: str = ""
    resume: bool = False
    start_ms: int | None = None
    end_ms: int | None = None
    exit_code: Any = None
    halt_reason: str | None = None
    verify_first_ms: int | None = None
    verify_last_ms: int | None = None

    @property
    def halted(self) -> bool:
        """Stopped before its end: a halt (401, Ctrl-C, the audit log), or never finished."""
        return self.end_ms is None or bool(self.halt_reason) or self.exit_code in (3, 130)


@dataclass
class Timeline:
    """Bounded summaries of every line, in the order the lines are read."""

    width_ms: int = MIN_WIDTH_MS
    buckets: dict[int, Counter[tuple[str, str]]] = field(default_factory=dict)
    runs: dict[str, RunSpan] = field(default_factory=dict)
    time_to_revoke: Histogram = field(default_factory=Histogram)
    time_to_cut: Histogram = field(default_factory=Histogram)
    untimed: int = 0  # task lines without a readable ts: counted, not drawn
    # The first run of a command in a log: a resumed run's work counts from it.
    _origin: dict[tuple[str, str], int] = field(default_factory=dict)
    _log: str = ""

    def start_log(self, path: str) -> None:
        self._log = path

    def observe(self, record: dict[str, Any]) -> None:
        """Take one well-formed line of the log being read."""
        event = record.get("event")
        if event in ("run_started", "run_finished"):
            self._run_line(record, ts_ms(record.get("ts")))
            return
        if event not in TIMED_EVENTS or record.get("phase") not in (None, "result"):
            return  # rotate's intent lines: the result line tells the outcome
        at = ts_ms(record.get("ts"))
        if at is None:
            self.untimed += 1
            return
        # A forged log's made-up regions share one series: the buckets stay bounded.
        region = record.get("region")
        region = region if region in REGIONS else OTHER_REGION
        slot = self._slot(at)
        if event in DELETING_EVENTS and record_deleted_key(record):
            slot["deleted", region] += 1
            origin = self._origin_of(record)
            if origin is not None:
                self.time_to_revoke.add(at - origin)
        elif event == "disconnect" and record.get("outcome") == "disconnected":
            slot["cut", region] += 1
            origin = self._origin_of(record)
            if origin is not None:
                self.time_to_cut.add(at - origin)
        elif event == "verify":
            slot["verify", region] += 1
            self._verify_at(str(record.get("run_id")), at)
        if record.get("outcome") in ("failed", "unknown"):
            slot["failed", region] += 1
        throttled = _throttled(record)
        if throttled:
            slot["throttled", region] += throttled
        attempts = record.get("attempts")
        if isinstance(attempts, list) and len(attempts) > 1:
            slot["retries", region] += len(attempts) - 1
        if len(self.buckets) > MAX_BUCKETS:
            self._widen()

    def _slot(self, at: int) -> Counter[tuple[str, str]]:
        index = at // self.width_ms
        slot = self.buckets.get(index)
        if slot is None:
            slot = self.buckets[index] = Counter()
        return slot

    def _origin_of(self, record: dict[str, Any]) -> int | None:
        run = self.runs.get(str(record.get("run_id")))
        if run is None:
            return None
        return self._origin.get((run.log, run.command), run.start_ms)

    def _verify_at(self, run_id: str, at: int) -> None:
        run = self.runs.get(run_id)
        if run is None:
            return
        run.verify_first_ms = at if run.verify_first_ms is None else min(run.verify_first_ms, at)
        run.verify_last_ms = at if run.verify_last_ms is None else max(run.verify_last_ms, at)

    def _run_line(self, record: dict[str, Any], at: int | None) -> None:
        run_id = str(record.get("run_id"))
        run = self.runs.setdefault(run_id, RunSpan(run_id, self._log))
        if record["event"] == "run_started":
            options = record.get("options")
            run.command = str(record.get("command"))
            run.resume = isinstance(options, dict) and bool(options.get("resume"))
            run.start_ms = at
            if at is not None:
                self._origin.setdefault((run.log, run.command), at)
        else:
            run.end_ms = at
            run.exit_code = record.get("exit_code")
            reason = record.get("halt_reason")
            run.halt_reason = str(reason) if reason else None

    def _widen(self) -> None:
        """Twice as wide buckets, each the sum of the two it replaces."""
        merged: dict[int, Counter[tuple[str, str]]] = {}
        for index, counts in self.buckets.items():
            merged.setdefault(index // 2, Counter()).update(counts)
        self.buckets = merged
        self.width_ms *= 2

    def span_ms(self) -> tuple[int, int] | None:
        """First and last moment on the timeline: its lines and its runs."""
        moments = [i * self.width_ms for i in self.buckets]
        moments += [(i + 1) * self.width_ms for i in self.buckets]
        for run in self.runs.values():
            moments += [m for m in (run.start_ms, run.end_ms) if m is not None]
        if not moments:
            return None
        return min(moments), max(moments)

    def totals(self, name: str) -> Counter[str]:
        """Per region, the sum of one series over the whole timeline."""
        out: Counter[str] = Counter()
        for counts in self.buckets.values():
            for (series, region), n in counts.items():
                if series == name:
                    out[region] += n
        return out


def _throttled(record: dict[str, Any]) -> int:
    """How many of the line's attempts (its lookup's and steps' too) were answered 429."""
    count = 0
    for holder in (record, record.get("lookup"), record.get("delete"), record.get("create")):
        attempts = holder.get("attempts") if isinstance(holder, dict) else None
        if isinstance(attempts, list):
            count += sum(1 for a in attempts if isinstance(a, dict) and a.get("status") == 429)
    return count
