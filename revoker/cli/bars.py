"""The progress bars on a terminal: rich's Progress with revoker's columns.

Imported only when bars are drawn, so a run whose progress is a log line never
loads rich (see :mod:`revoker.cli.progress`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
)
from rich.progress import Task as BarTask
from rich.text import Text


class PassCounts(Protocol):
    """What the bars show of a pass (:class:`revoker.cli.progress.PassCounts`)."""

    total: int | None
    last: float

    def rate(self) -> float | None: ...
    def elapsed(self, now: float | None = None) -> float: ...
    def eta(self) -> float | None: ...
    def detail(self) -> str: ...


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    whole = int(seconds + 0.5)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


class _RateColumn(ProgressColumn):
    def __init__(self, passes: Mapping[TaskID, PassCounts]) -> None:
        super().__init__()
        self.passes = passes

    def render(self, task: BarTask) -> Text:
        counts = self.passes.get(task.id)
        rate = counts.rate() if counts else None
        return Text(f"{rate:6.1f}/s" if rate else "     -/s")


class _TimeColumn(ProgressColumn):
    """Elapsed time and the ETA at the paced rate."""

    def __init__(self, passes: Mapping[TaskID, PassCounts]) -> None:
        super().__init__()
        self.passes = passes

    def render(self, task: BarTask) -> Text:
        counts = self.passes.get(task.id)
        if counts is None:
            return Text("")
        elapsed = _clock(counts.elapsed(counts.last if task.finished else None))
        if counts.total is None:
            return Text(f"elapsed {elapsed}")
        eta = "done" if task.finished else f"ETA {_clock(counts.eta())}"
        return Text(f"elapsed {elapsed} {eta}")


class Bars(Progress):
    """Rich's Progress, with each pass's counts under the bars."""

    def __init__(self, passes: Mapping[TaskID, PassCounts], console: Console) -> None:
        self.passes = passes
        super().__init__(
            TextColumn("{task.description:<6}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            _RateColumn(passes),
            _TimeColumn(passes),
            console=console,
            redirect_stdout=False,  # the summary goes to stdout, after the bars
            redirect_stderr=True,  # log lines are printed above the bars
            refresh_per_second=4,
        )

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        for counts in self.passes.values():
            yield Text("  " + counts.detail(), style="dim")
