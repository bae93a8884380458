"""Run tasks concurrently and record each: the worker pool and the run's halt switch.

At most ``concurrency`` tasks run at once; each is recorded in the audit log as
it ends. Once the run halts (a 401, a stop signal, an audit log that cannot be
written), nothing new is started and what was never started is recorded by
count. What a task does is the runner's business (:mod:`revoker.engine.sched.calls`).
"""

from __future__ import annotations

import asyncio
import contextlib
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from revoker.agora.client import AgoraClient
from revoker.audit.log import AuditLog, task_record
from revoker.engine.sched.pacing import RateLimits
from revoker.engine.sched.retry import RetryPolicy
from revoker.errors import AuditWriteError
from revoker.logs import log, verbosity
from revoker.models import FollowUp, Outcome, Task, TaskResult, is_problem
from revoker.results import HaltReason, Totals

# The one line recording, by count, the tasks of a pass a halt kept from starting.
NOT_STARTED = "not_started"


class Halted(Exception):
    """Raised instead of sending an attempt once the run is halting."""


class Halt:
    """Why the run stopped taking new work (first reason wins)."""

    def __init__(self) -> None:
        self.reason: HaltReason | None = None
        self._event = asyncio.Event()

    def trip(self, reason: HaltReason) -> None:
        if self.reason is None:
            self.reason = reason
            log.warning("run halting", reason=str(reason))
        self._event.set()

    @property
    def is_set(self) -> bool:
        return self._event.is_set()

    async def sleep(self, seconds: float) -> None:
        """Sleep, waking early if the run halts."""
        if seconds <= 0 or self.is_set:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout=seconds)


@dataclass
class RunContext:
    """What every task needs: the client, limits, retry policy and the halt switch."""

    client: AgoraClient
    retry: RetryPolicy
    limits: dict[str, RateLimits]  # by HTTP method
    halt: Halt
    throttled: int = 0  # 429 answers so far, with or without a rate limiter
    # Set for tasks that must write an audit line before a request (rotate's intent).
    audit: AuditLog | None = None
    # Live-stream listings made before the first DELETE, by (app ID, region): the
    # first listing ``--disconnect`` cuts from (engine.jobs.preflight).
    listings: dict[tuple[str, str], Any] = field(default_factory=dict)

    def write_audit(self, write: Callable[[], object]) -> bool:
        """Run ``write`` (an audit line); if the log refuses it, halt the run, since
        nothing may be done that cannot be recorded. True when it was written."""
        try:
            write()
        except AuditWriteError as exc:
            log.error("audit log write failed; stopping", error=str(exc))
            self.halt.trip(HaltReason.AUDIT_WRITE_FAILED)
            return False
        return True


def _where(exc: BaseException) -> str:
    """``file.py:line in function`` of the innermost frame of a traceback."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{Path(last.filename).name}:{last.lineno} in {last.name}"


TaskRunner = Callable[[Task], Awaitable[TaskResult]]


class TaskFeed(Protocol):
    """Tasks handed out as they become due (e.g. a DelayQueue); None when none are left."""

    async def get(self) -> Task | None: ...


async def _each(tasks: Iterator[Task] | TaskFeed) -> AsyncIterator[Task]:
    """One worker's view of the shared tasks, whether an iterator or a feed."""
    if isinstance(tasks, Iterator):
        for task in tasks:
            yield task
    else:
        while (due := await tasks.get()) is not None:
            yield due


async def run_tasks(
    tasks: Iterator[Task] | TaskFeed,
    runner: TaskRunner,
    *,
    ctx: RunContext,
    audit: AuditLog,
    event: str,
    concurrency: int,
    on_result: Callable[[TaskResult], None] | None = None,
    planned: Counter[str] | None = None,
    done_before: Callable[[Task], bool] | None = None,
    observe: Callable[[str, TaskResult], None] | None = None,
) -> Totals:
    """Run every task (at most ``concurrency`` at once) and record each as it ends.

    ``tasks`` is an iterator, or a feed whose ``get`` waits for the next task.

    Once the run halts, no new task is started. A started task that sent
    nothing gets its own ``not_attempted`` line; the tasks never started get
    one ``not_started`` line with their count per region (``planned``, the
    pass's tasks per region, gives it at once; without it the rest of an
    iterator is read to count them), so stopping a huge run stays quick and
    small and ``--resume`` still redoes them. Tasks ``done_before`` says an
    earlier run finished (yielded only so their streams can be cut) are neither
    counted nor recorded then. ``observe`` sees every task line once written
    (follow-ups included), with its event. If the audit log cannot be
    written, the run halts and the results that could not be recorded are
    kept in ``Totals.unrecorded``.
    """
    totals = Totals(event)

    def record(result: TaskResult, follow_ups: list[FollowUp] | None = None) -> None:
        """Write the task's line (unless it has none), then its follow-up lines; whatever
        cannot be written (and only that) goes to ``totals.unrecorded``."""
        own = follow_ups is None and result.own_line
        units = [(event, result, result.audit_fields)] if own else []
        notes = result.follow_ups if follow_ups is None else follow_ups
        units += [(note.event, note.result, note.fields) for note in notes]
        written = 0
        if ctx.halt.reason != HaltReason.AUDIT_WRITE_FAILED:
            for name, unit, fields in units:
                if not ctx.write_audit(partial(audit.task, name, unit, **fields)):
                    break
                written += 1
        for index, (name, unit, fields) in enumerate(units):
            if index >= written:
                totals.unrecorded.append(unit)
                totals.unrecorded_records.append(
                    task_record(name, unit, audit.run_id, False, **fields)
                )
            else:
                if index == 0 and own:
                    totals.add(unit)
                else:
                    totals.related.setdefault(name, Totals(name)).add(unit)
                log_result(name, unit)
                if observe is not None:
                    observe(name, unit)
        if own and written == len(units) and on_result is not None:
            on_result(result)

    pending: list[asyncio.Task[None]] = []

    async def finish_later(
        result: TaskResult, later: Callable[[], Awaitable[list[FollowUp]]]
    ) -> None:
        try:
            notes = await later()
        except Exception as exc:  # a bug must not lose the record of a task
            where = _where(exc)
            log.error("internal error in follow-up", error=type(exc).__name__, where=where)
            failed = TaskResult(
                result.task,
                Outcome.FAILED,
                message=f"internal error: {type(exc).__name__} at {where}",
            )
            notes = [FollowUp(event, failed)]
        record(result, notes)

    started: Counter[str] = Counter()

    async def worker() -> None:
        async for task in _each(tasks):
            earlier = done_before is not None and done_before(task)
            if not earlier:
                started[task.region] += 1
            if ctx.halt.is_set:
                # Taken from the shared tasks just as the run halted: recorded on its own.
                if not earlier and ctx.halt.reason != HaltReason.AUDIT_WRITE_FAILED:
                    record(TaskResult(task, Outcome.NOT_ATTEMPTED, message=ctx.halt.reason))
                return
            try:
                result = await runner(task)
            except Exception as exc:  # a bug must not lose the record of a task
                # Only the type and where: an exception's text may carry a URL (the
                # key) or request headers (the credentials).
                where = _where(exc)
                log.error(
                    "internal error in task",
                    error=type(exc).__name__,
                    where=where,
                    region=task.region,
                    key=task.key_hint,
                )
                result = TaskResult(
                    task,
                    Outcome.FAILED,
                    message=f"internal error: {type(exc).__name__} at {where}",
                )
            record(result)
            if result.later is not None:
                pending.append(asyncio.ensure_future(finish_later(result, result.later)))
            # Let the loop breathe between tasks (signals, other workers), even when a
            # transport answers without ever suspending.
            await asyncio.sleep(0)

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    await asyncio.gather(*pending)
    if ctx.halt.is_set and ctx.halt.reason != HaltReason.AUDIT_WRITE_FAILED:
        _record_not_started(tasks, planned, started, audit, event, ctx.halt, totals)
    return totals


def log_result(event: str, result: TaskResult) -> None:
    """With -v, a log line for each task that did not succeed, with its request ID."""
    if verbosity() < 1 or not is_problem(event, str(result.outcome)):
        return
    log.warning(
        "task failed" if result.outcome is Outcome.FAILED else f"task {result.outcome}",
        audit_event=event,
        region=result.task.region,
        app_id=result.task.app_id,
        key=result.task.key_hint,
        key_id=result.task.key_id,
        http_status=result.http_status,
        request_id=result.request_id,
        server_request_id=result.server_request_id,
        attempts=len(result.attempts),
        reason=result.message,
    )


def _record_not_started(
    tasks: Iterator[Task] | TaskFeed,
    planned: Counter[str] | None,
    started: Counter[str],
    audit: AuditLog,
    event: str,
    halt: Halt,
    totals: Totals,
) -> None:
    """One ``not_started`` line for the tasks a halted pass never started."""
    if planned is None:
        # A feed cannot be counted without waiting for it: its callers give ``planned``.
        left = tasks if isinstance(tasks, Iterator) else iter(())
        remaining: Counter[str] = Counter(task.region for task in left)
    else:
        remaining = planned - started
    count = sum(remaining.values())
    if not count:
        return
    per_region = {region: remaining[region] for region in sorted(remaining)}
    try:
        audit.event(
            NOT_STARTED,
            for_event=event,
            outcome=str(Outcome.NOT_ATTEMPTED),
            message=halt.reason,
            tasks=count,
            per_region=per_region,
        )
    except AuditWriteError as exc:
        log.error("audit log write failed", error=str(exc))
        halt.trip(HaltReason.AUDIT_WRITE_FAILED)
        return
    outcome = str(Outcome.NOT_ATTEMPTED)
    totals.counts[outcome] += count
    for region, n in per_region.items():
        totals.per_region.setdefault(region, Counter())[outcome] += n
    totals.extra[NOT_STARTED] += count
