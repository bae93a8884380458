"""Run tasks concurrently: bounded concurrency, per-app rate limits, retries.

Each task gets its own tenacity ``AsyncRetrying``. Retried: transport
errors, 409, 429, 500, 502, 503, 504; ``Retry-After`` is honoured (capped),
otherwise exponential backoff with full jitter. A 401 trips the circuit
breaker: nothing new is sent, the rest is recorded ``not_attempted``.
Cancellation is never retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    retry_if_result,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from revoker.agora.client import NOT_THE_API, AgoraClient, ApiResponse, segment
from revoker.audit.log import AuditLog, task_record
from revoker.engine.pacing import Pacer, RateLimits
from revoker.errors import AuditWriteError, TransportFailure
from revoker.models import Attempt, FollowUp, Outcome, Task, TaskResult
from revoker.redact import server_request_id, server_text
from revoker.settings import RetrySettings

RETRYABLE_STATUS = frozenset({409, 429, 500, 502, 503, 504})
# Answers that say the request was turned away before anything was done.
REJECTED_STATUS = frozenset({409, 429})
log = structlog.get_logger("revoker")

HALT_INTERRUPTED = "interrupted"
HALT_AUTH = "auth_rejected"
HALT_AUDIT = "audit_write_failed"
# The one line recording, by count, the tasks of a pass a halt kept from starting.
NOT_STARTED = "not_started"


class Halted(Exception):
    """Raised instead of sending an attempt once the run is halting."""


class Halt:
    """Why the run stopped taking new work (first reason wins)."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._event = asyncio.Event()

    def trip(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
            log.warning("run halting", reason=reason)
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


class _StopWhenHalted(stop_base):
    def __init__(self, halt: Halt) -> None:
        self.halt = halt

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.halt.is_set


@dataclass
class Context:
    """What every task needs: the client, limits, retry policy and the halt switch."""

    client: AgoraClient
    retry: RetrySettings
    limits: dict[str, RateLimits]  # by HTTP method
    halt: Halt
    throttled: int = 0  # 429 answers so far, with or without a rate limiter
    # Set for tasks that must write an audit line before a request (rotate's intent).
    audit: AuditLog | None = None


def _where(exc: BaseException) -> str:
    """``file.py:line in function`` of the innermost frame of a traceback."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{Path(last.filename).name}:{last.lineno} in {last.name}"


def _wait(ctx: Context) -> Callable[[RetryCallState], float]:
    jitter = wait_random_exponential(multiplier=ctx.retry.backoff_base, max=ctx.retry.backoff_max)

    def wait(state: RetryCallState) -> float:
        outcome = state.outcome
        if outcome is None:
            return 0.0
        if outcome.failed:
            exc = outcome.exception()
            if (
                isinstance(exc, TransportFailure)
                and exc.connect
                and ctx.client.has_fallback
                and state.attempt_number % 2 == 1
            ):
                # The client switched hosts: try the other one at once; if that one
                # cannot be reached either, back off as usual before switching back.
                return 0.0
            return float(jitter(state))
        response: ApiResponse = outcome.result()
        if response.retry_after is not None:
            return min(response.retry_after, ctx.retry.retry_after_cap)
        return float(jitter(state))

    return wait


async def call_api(
    ctx: Context,
    method: str,
    app_id: str,
    send: Callable[[], Awaitable[ApiResponse]],
    attempts: list[Attempt],
    *,
    idempotent: bool = True,
) -> ApiResponse:
    """One API call with retries; every attempt is appended to ``attempts``.

    Returns the last response (even a retryable one once attempts run out);
    raises TransportFailure if the last attempt got no response, Halted if
    the run halted before an attempt was sent. A call that is not
    ``idempotent`` (a create) is repeated only when the server cannot have
    acted on it: 409 and 429, or a connection that was never made.
    """
    retry_statuses = RETRYABLE_STATUS if idempotent else REJECTED_STATUS

    def repeatable(exc: BaseException) -> bool:
        return isinstance(exc, TransportFailure) and (idempotent or exc.connect)

    limiter: Pacer | None = ctx.limits[method].get(app_id)

    async def once() -> ApiResponse:
        if ctx.halt.is_set:
            raise Halted
        if limiter is not None:
            await ctx.halt.sleep(limiter.reserve())  # wakes at once if the run halts
            if ctx.halt.is_set:
                raise Halted
        try:
            response = await send()
        except TransportFailure as exc:
            attempts.append(Attempt(exc.request_id, exc.host, error=exc.kind, ms=exc.ms))
            raise
        attempts.append(
            Attempt(
                response.request_id,
                response.host,
                status=response.status,
                ms=response.ms,
                server_request_id=response.server_request_id,
            )
        )
        if response.status == 429:
            ctx.throttled += 1
            if limiter is not None:
                limiter.throttled()
        elif response.status == 401:
            ctx.halt.trip(HALT_AUTH)
        return response

    # Fast path: most calls succeed at once, and building a tenacity loop per call
    # cost ~20% of revoker's CPU per request. A retryable first outcome is replayed
    # as tenacity's attempt 1, so waits, stops and attempt numbers are unchanged.
    first: ApiResponse | TransportFailure
    try:
        first = await once()
    except TransportFailure as exc:
        if not repeatable(exc):
            raise
        first = exc
    else:
        if first.status not in retry_statuses or ctx.retry.max_attempts <= 1:
            return first
    replay: list[ApiResponse | TransportFailure] = [first]

    async def attempt() -> ApiResponse:
        if replay:
            outcome = replay.pop()
            if isinstance(outcome, TransportFailure):
                raise outcome
            return outcome
        return await once()

    retrying = AsyncRetrying(
        stop=stop_after_attempt(ctx.retry.max_attempts) | _StopWhenHalted(ctx.halt),
        wait=_wait(ctx),
        retry=(
            retry_if_exception(repeatable) | retry_if_result(lambda r: r.status in retry_statuses)
        ),
        sleep=ctx.halt.sleep,
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
    )
    result: ApiResponse = await retrying(attempt)
    return result


async def call_task(
    ctx: Context,
    task: Task,
    method: str,
    send: Callable[[], Awaitable[ApiResponse]],
    classify: Callable[[ApiResponse], Outcome],
    *,
    idempotent: bool = True,
) -> tuple[TaskResult, ApiResponse | None]:
    """One API call (with retries) as a TaskResult, plus the last response if any."""
    attempts: list[Attempt] = []
    started = time.perf_counter()
    result = TaskResult(task, Outcome.NOT_ATTEMPTED, attempts)
    response: ApiResponse | None = None
    try:
        response = await call_api(ctx, method, task.app_id, send, attempts, idempotent=idempotent)
    except Halted:
        if attempts:
            result.outcome = Outcome.FAILED
            result.message = f"stopped before retrying ({ctx.halt.reason})"
        else:
            result.message = ctx.halt.reason
    except TransportFailure as exc:
        result.outcome = Outcome.FAILED
        result.message = f"no response: {exc.kind} ({len(attempts)} attempts)"
    else:
        result.outcome = classify(response)
        result.message = (
            NOT_THE_API if response.foreign else _without_key(response.message, task.key)
        )
        result.data = response.data
        if result.outcome is Outcome.FAILED and response.status in RETRYABLE_STATUS:
            result.message = f"{result.message or response.status} (after {len(attempts)} attempts)"
    forms = _key_forms(task.key)
    for attempt in attempts:
        attempt.server_request_id = server_request_id(attempt.server_request_id, forms)
    result.duration_ms = int((time.perf_counter() - started) * 1000)
    return result, response


async def run_call(
    ctx: Context,
    task: Task,
    method: str,
    send: Callable[[], Awaitable[ApiResponse]],
    classify: Callable[[ApiResponse], Outcome],
) -> TaskResult:
    """A task made of one API call, turned into a TaskResult with its outcome."""
    result, _ = await call_task(ctx, task, method, send, classify)
    return result


def _key_forms(key: str) -> tuple[str, ...]:
    """The plain key as sent and as decoded; a 2-letter test key must not blank half a message."""
    forms = sorted({key, segment(key)}, key=len, reverse=True)  # the longer form first
    return tuple(form for form in forms if len(form) >= 6)


def _without_key(message: str | None, key: str) -> str | None:
    """A server's message with the plain key (as sent or decoded) blanked."""
    return server_text(message, _key_forms(key)) if message else message


def classifier(success: Outcome) -> Callable[[ApiResponse], Outcome]:
    """200 -> ``success``, the API's own 404 -> absent, anything else -> failed.

    Any other 404 (:attr:`ApiResponse.foreign`: an HTML page, no echoed request
    ID) is ``failed``: counting it as absent would call a live key revoked.
    """

    def classify(response: ApiResponse) -> Outcome:
        if response.status == 200:
            return success
        if response.not_found:
            return Outcome.ABSENT
        return Outcome.FAILED

    return classify


classify_delete = classifier(Outcome.REVOKED)
classify_get = classifier(Outcome.PRESENT)


async def revoke_task(ctx: Context, task: Task) -> TaskResult:
    return await run_call(
        ctx,
        task,
        "DELETE",
        lambda: ctx.client.delete_key(task.region, task.app_id, task.key),
        classify_delete,
    )


async def query_task(ctx: Context, task: Task) -> TaskResult:
    return await run_call(
        ctx,
        task,
        "GET",
        lambda: ctx.client.get_key(task.region, task.app_id, task.key),
        classify_get,
    )


@dataclass
class Totals:
    """Counts of one pass over the tasks, for the summary and ``run_finished``."""

    event: str
    counts: Counter[str] = field(default_factory=Counter)
    per_region: dict[str, Counter[str]] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    unrecorded: list[TaskResult] = field(default_factory=list)
    # The audit lines of ``unrecorded`` (keys masked), for the fallback file.
    unrecorded_records: list[dict[str, Any]] = field(default_factory=list)
    extra: Counter[str] = field(default_factory=Counter)
    # Totals of the follow-up lines (TaskResult.follow_ups) of this pass, by event.
    related: dict[str, Totals] = field(default_factory=dict)

    MAX_FAILURES = 100

    def add(self, result: TaskResult) -> None:
        outcome = str(result.outcome)
        self.counts[outcome] += 1
        self.per_region.setdefault(result.task.region, Counter())[outcome] += 1
        if result.outcome is Outcome.FAILED and len(self.failures) < self.MAX_FAILURES:
            last = result.last
            self.failures.append(
                {
                    "app_id": result.task.app_id,
                    "region": result.task.region,
                    "key_id": result.task.key_id,
                    "key_hint": result.task.key_hint,
                    "http_status": result.http_status,
                    "message": result.message,
                    "request_ids": [a.request_id for a in result.attempts],
                    "server_request_id": last.server_request_id if last else None,
                }
            )

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": dict(sorted(self.counts.items())),
            "per_region": {r: dict(sorted(c.items())) for r, c in sorted(self.per_region.items())},
            **({"extra": dict(self.extra)} if self.extra else {}),
        }


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
    ctx: Context,
    audit: AuditLog,
    event: str,
    concurrency: int,
    on_result: Callable[[TaskResult], None] | None = None,
    planned: Counter[str] | None = None,
) -> Totals:
    """Run every task (at most ``concurrency`` at once) and record each as it ends.

    ``tasks`` is an iterator, or a feed whose ``get`` waits for the next task.

    Once the run halts, no new task is started. A started task that sent
    nothing gets its own ``not_attempted`` line; the tasks never started get
    one ``not_started`` line with their count per region (``planned``, the
    pass's tasks per region, gives it at once; without it the rest of an
    iterator is read to count them), so stopping a huge run stays quick and
    small and ``--resume`` still redoes them. If the audit log cannot be
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
        if ctx.halt.reason != HALT_AUDIT:
            try:
                for name, unit, fields in units:
                    audit.task(name, unit, **fields)
                    written += 1
            except AuditWriteError as exc:
                log.error("audit log write failed; stopping", error=str(exc))
                ctx.halt.trip(HALT_AUDIT)
        for index, (name, unit, fields) in enumerate(units):
            if index >= written:
                totals.unrecorded.append(unit)
                totals.unrecorded_records.append(
                    task_record(name, unit, audit.run_id, False, **fields)
                )
            elif index == 0 and own:
                totals.add(unit)
            else:
                totals.related.setdefault(name, Totals(name)).add(unit)
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
            started[task.region] += 1
            if ctx.halt.is_set:
                # Taken from the shared tasks just as the run halted: recorded on its own.
                if ctx.halt.reason != HALT_AUDIT:
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
    if ctx.halt.is_set and ctx.halt.reason != HALT_AUDIT:
        _record_not_started(tasks, planned, started, audit, event, ctx.halt, totals)
    return totals


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
        halt.trip(HALT_AUDIT)
        return
    outcome = str(Outcome.NOT_ATTEMPTED)
    totals.counts[outcome] += count
    for region, n in per_region.items():
        totals.per_region.setdefault(region, Counter())[outcome] += n
    totals.extra[NOT_STARTED] += count
