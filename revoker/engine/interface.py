"""What the runner (engine.run) and the jobs (engine.jobs) agree on: a pass over the plan.

A job says what each pass does (its tasks, its runner, its budget); the runner runs
the passes in order with the worker pool (engine.sched), writes the audit log and
makes the report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from revoker.engine.sched.pacing import PASS_BUDGETS
from revoker.engine.sched.pool import RunContext, TaskFeed, TaskRunner
from revoker.models import Task, TaskResult


class FrontLane(Protocol):
    """Work beside a pass's workers that may move some of its tasks to the front."""

    def source(self, tasks: Iterator[Task]) -> Iterator[Task]:
        """The pass's tasks as its feed reads them, seen by the lane on the way."""
        ...

    def feed(self, tasks: Iterator[Task] | TaskFeed) -> TaskFeed:
        """The pass's feed, with the tasks moved to the front handed out first."""
        ...

    async def run(self) -> None:
        """The work itself, until :meth:`stop`."""
        ...

    def stop(self) -> None:
        """The pass has ended: start nothing new; :meth:`run` returns once its work does."""
        ...

    def unrecorded(self) -> list[tuple[TaskResult, dict[str, Any]]]:
        """The results of the lane's requests whose audit line the log refused, each with
        that line (keys masked), once :meth:`run` has returned: the pass's fallback file
        keeps them."""
        ...


@dataclass
class Pass:
    """One sweep over the plan's tasks.

    A pass with a ``delay`` runs behind the pass before it, alongside it: each
    task that pass records is run here ``delay`` seconds later, with its own
    workers, so the pass before is never held up. Its ``tasks`` are then only
    the ones the pass before does not have (done in an earlier run), run at once.
    """

    event: str
    tasks: Callable[[], Iterator[Task]]
    runner: Callable[[RunContext], TaskRunner]
    notes: Callable[[], list[str]] | None = None  # summary lines, asked after the pass
    include_done: bool = False  # whether ``tasks`` yields the pairs --resume skips
    # Run behind the pass before it: each of its tasks this long after that pass ended it.
    delay: float | None = None
    # Tasks an earlier run finished that ``tasks`` still yields (their streams are
    # cut): not this pass's work, so never counted or recorded as not attempted.
    done_before: Callable[[Task], bool] | None = None
    # Called once the audit log is open and locked, before the run's first line: creates
    # what the pass writes besides the audit log, so a run refused the lock leaves none.
    start: Callable[[], None] | None = None
    # Given the context and the (app ID, key) handed out first already (keys live
    # streams push with), a lane that runs beside the workers; None: no lane.
    front: Callable[[RunContext, frozenset[tuple[str, str]]], FrontLane | None] | None = None

    @property
    def budget(self) -> str | None:
        """The method whose per-app budget paces the pass (``PASS_BUDGETS``): its tasks
        are handed out app by app as each budget frees a slot (engine.sched.fairfeed),
        not in input order, unless they come from the pass before (``delay``)."""
        return PASS_BUDGETS.get(self.event)
