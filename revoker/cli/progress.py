"""The run's progress on stderr: rich bars on a terminal, a periodic log line elsewhere.

On a TTY each pass (delete, cut, verify, ...) gets a bar with done/total, rate,
elapsed time and the ETA at the paced rate, and a line of per-region counts,
retries, 429s and failures; each failure is printed above the bars as it
happens, and log lines go above them too (stderr is taken over while they are
drawn). Off a TTY, a ``progress`` log line every ``interval`` seconds carries
the same counts, so a cron log shows a run that is stuck.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from revoker.logs import QuietStream, color_allowed, log, verbosity
from revoker.models import REGIONS, Outcome, TaskResult, is_problem
from revoker.redact import printable_lines

if TYPE_CHECKING:  # rich is imported only when bars are drawn (revoker.cli.bars)
    from rich.console import Console
    from rich.progress import TaskID
    from rich.text import Text

    from revoker.cli.bars import Bars

# What each pass is called on screen: the label says what its requests do.
LABELS = {
    "revoke": "delete",
    "rotate": "rotate",
    "disconnect": "cut",
    "verify": "verify",
    "query": "check",
}
# Seconds of results before the observed rate is trusted over the paced one for the ETA.
_WARM_UP = 2.0


@dataclass
class PassCounts:
    """What one pass has done so far, for the bar and the periodic line.

    A pass that runs behind another (``lead``: verify behind the DELETEs) gets its
    tasks only as the lead ends them, ``delay`` s later: its pace is the lead's, so
    it cannot end before the lead's ETA plus the delay, and its own rate is measured
    from its first result, not through the delay in which nothing was due yet. With
    ``--resume`` its first results are the pairs an earlier run did, due at once:
    once the lead's first task has come due here, the rate is measured from the
    first result after that, so the time with nothing due is left out there too.
    """

    event: str
    total: int | None
    rate_cap: float | None
    clock: Callable[[], float] = time.monotonic
    started: float = field(default_factory=time.monotonic)
    lead: PassCounts | None = None
    delay: float = 0.0
    first: float | None = None  # when the first result came in
    # Behind a lead: when the first result came in once the lead's first task was due
    # here, and the results before it.
    fed: tuple[float, int] | None = None
    done: int = 0
    per_region: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    throttled: int = 0
    problems: int = 0
    # When the latest result came in: the rate is measured up to it.
    last: float = 0.0
    bar: TaskID | None = None  # the rich task ID

    @property
    def label(self) -> str:
        return LABELS.get(self.event, self.event)

    def add(self, result: TaskResult) -> None:
        self.done += 1
        self.per_region[result.task.region] += 1
        self.outcomes[str(result.outcome)] += 1
        attempts = result.attempts
        if len(attempts) > 1:
            self.retries += len(attempts) - 1
            self.throttled += sum(1 for attempt in attempts if attempt.status == 429)
        elif attempts and attempts[0].status == 429:
            self.throttled += 1
        if is_problem(self.event, str(result.outcome)):
            self.problems += 1
        self.last = self.clock()
        if self.first is None:
            self.first = self.last
        lead = self.lead
        if (
            self.fed is None
            and lead is not None
            and lead.first is not None
            and self.last >= lead.first + self.delay
        ):
            self.fed = (self.last, self.done - 1)

    def elapsed(self, now: float | None = None) -> float:
        return (now if now is not None else self.clock()) - self.started

    def _since(self) -> tuple[float, int]:
        """Where the observed rate is measured from, and the results since then."""
        if self.lead is not None and self.fed is not None:
            since, before = self.fed
            return since, self.done - before - 1
        if self.lead is not None and self.first is not None:
            return self.first, self.done - 1
        return self.started, self.done

    def rate(self) -> float | None:
        """Results per second so far (None before any)."""
        since, done = self._since()
        span = self.last - since
        return done / span if done > 0 and span > 0 else None

    def eta(self) -> float | None:
        """Seconds left at the observed rate once warmed up, else at the paced rate;
        behind a lead, never less than the lead's ETA plus the delay."""
        if self.total is None:
            return None
        left = max(0, self.total - self.done)
        if not left:
            return 0.0
        rate = self.rate() if self.last - self._since()[0] >= _WARM_UP else None
        if rate is not None and self.rate_cap:
            rate = min(rate, self.rate_cap)
        rate = rate or self.rate_cap
        own = left / rate if rate else None
        follows = self._lead_eta()
        if follows is None:
            return own
        return follows if own is None else max(own, follows)

    def _lead_eta(self) -> float | None:
        """When the lead's last task comes due here (None: no lead, or no ETA of it)."""
        lead = self.lead
        if lead is None or lead.total is None:
            return None
        if self.following:
            lead_eta = lead.eta()
            return None if lead_eta is None else lead_eta + self.delay
        return max(0.0, lead.last + self.delay - self.clock())

    @property
    def following(self) -> bool:
        """Whether the lead is still running (the ETA is then the lead's plus the delay)."""
        lead = self.lead
        return lead is not None and lead.total is not None and lead.done < lead.total

    def detail(self) -> str:
        regions = " ".join(f"{r} {self.per_region[r]}" for r in REGIONS if r in self.per_region)
        return (
            f"{self.label}: {regions or 'no results yet'} | retries {self.retries} | "
            f"429s {self.throttled} | problems {self.problems}"
        )

    def fields(self) -> dict[str, object]:
        """The counts as log fields (the periodic line)."""
        rate = self.rate()
        eta = self.eta()
        return {
            "pass": self.label,
            "done": self.done,
            "total": self.total,
            "rate_per_s": round(rate, 1) if rate else 0.0,
            "elapsed_s": round(self.elapsed(), 1),
            "eta_s": round(eta) if eta is not None else None,
            "per_region": {r: self.per_region[r] for r in REGIONS if r in self.per_region},
            "outcomes": dict(sorted(self.outcomes.items())),
            "retries": self.retries,
            "throttled_429": self.throttled,
            "problems": self.problems,
            **({"behind": self.lead.label} if self.lead is not None else {}),
        }


class RunDisplay:
    """A :class:`~revoker.engine.sched.observe.RunObserver` that shows the run on stderr.

    ``bars``: rich bars on ``stream`` (a terminal); otherwise, with ``interval``,
    a ``progress`` log line every ``interval`` seconds. Nothing is drawn or
    started before the first pass, so a run refused at its input shows nothing.
    """

    def __init__(self, *, bars: bool, interval: float | None, stream: TextIO | None = None) -> None:
        self.bars = bars
        self.interval = interval if interval and interval > 0 else None
        self.stream = stream or sys.stderr
        self.passes: dict[str, PassCounts] = {}
        self._progress: Bars | None = None
        self._by_bar: dict[TaskID, PassCounts] = {}
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    # RunObserver -------------------------------------------------------------

    def pass_started(
        self,
        event: str,
        total: int,
        rate: float | None,
        *,
        behind: str | None = None,
        delay: float = 0.0,
    ) -> None:
        with self._lock:
            counts = self.passes.get(event)
            if counts is None:
                lead = self.passes.get(behind) if behind is not None else None
                counts = self.passes[event] = PassCounts(event, total, rate, lead=lead, delay=delay)
            self._show(counts)

    def recorded(self, event: str, result: TaskResult) -> None:
        with self._lock:
            counts = self.passes.get(event)
            if counts is None:  # follow-up lines (cuts): their number is not known up front
                counts = self.passes[event] = PassCounts(event, None, None)
                self._show(counts)
            counts.add(result)
            if self._progress is not None and counts.bar is not None:
                self._progress.update(counts.bar, completed=counts.done)
                # With -v the failure is a log line of its own (printed above too).
                if is_problem(event, str(result.outcome)) and verbosity() < 1:
                    # One screen line each, however long the server's reason.
                    self._progress.console.print(
                        self._failure_line(counts, result), no_wrap=True, overflow="ellipsis"
                    )

    # lifecycle ---------------------------------------------------------------

    def close(self) -> None:
        """Stop drawing (the last frame stays on screen) or stop the periodic line."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> RunDisplay:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------------

    def _show(self, counts: PassCounts) -> None:
        if self.bars:
            progress = self._progress
            if progress is None:
                from revoker.cli.bars import Bars

                progress = self._progress = Bars(self._by_bar, self._console())
                progress.start()
            counts.bar = progress.add_task(counts.label, total=counts.total)
            self._by_bar[counts.bar] = counts
        elif self.interval is not None and self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
            self._ticker.start()

    def _console(self) -> Console:
        from rich.console import Console

        # Writes that fail (the terminal went away) are dropped: drawing never stops a run.
        return Console(
            file=QuietStream(self.stream),  # type: ignore[arg-type]
            force_terminal=True,
            no_color=not color_allowed(),
            highlight=False,
            soft_wrap=False,
        )

    def _failure_line(self, counts: PassCounts, result: TaskResult) -> Text:
        from rich.text import Text

        task = result.task
        status = f"HTTP {result.http_status} " if result.http_status else ""
        reason = printable_lines(result.message or str(result.outcome))
        line = (
            f"{counts.label} {result.outcome}: {task.region} {task.app_id} {task.key_hint} "
            f"{status}{reason}"
        )
        return Text(line, style="red" if result.outcome is Outcome.FAILED else "yellow")

    def _tick(self) -> None:
        assert self.interval is not None
        while not self._stop.wait(self.interval):
            with self._lock:
                lines = [counts.fields() for counts in self.passes.values()]
            for fields in lines:
                log.info("progress", **fields)
