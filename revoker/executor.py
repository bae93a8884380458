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
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from revoker.audit import AuditLog
from revoker.client import AgoraClient, ApiResponse, segment
from revoker.errors import AuditWriteError, TransportFailure
from revoker.models import Attempt, Outcome, Task, TaskResult
from revoker.ratelimit import Pacer, RateLimits
from revoker.settings import RetrySettings

RETRYABLE_STATUS = frozenset({409, 429, 500, 502, 503, 504})
log = structlog.get_logger("revoker")

HALT_INTERRUPTED = "interrupted"
HALT_AUTH = "auth_rejected"
HALT_AUDIT = "audit_write_failed"


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
) -> ApiResponse:
    """One API call with retries; every attempt is appended to ``attempts``.

    Returns the last response (even a retryable one once attempts run out);
    raises TransportFailure if the last attempt got no response, Halted if
    the run halted before an attempt was sent.
    """
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
        first = exc
    else:
        if first.status not in RETRYABLE_STATUS or ctx.retry.max_attempts <= 1:
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
            retry_if_exception_type(TransportFailure)
            | retry_if_result(lambda r: r.status in RETRYABLE_STATUS)
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
) -> tuple[TaskResult, ApiResponse | None]:
    """One API call (with retries) as a TaskResult, plus the last response if any."""
    attempts: list[Attempt] = []
    started = time.perf_counter()
    result = TaskResult(task, Outcome.NOT_ATTEMPTED, attempts)
    response: ApiResponse | None = None
    try:
        response = await call_api(ctx, method, task.app_id, send, attempts)
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
        result.message = _without_key(response.message, task.key)
        result.data = response.data
        if result.outcome is Outcome.FAILED and response.status in RETRYABLE_STATUS:
            result.message = (
                f"{response.message or response.status} (after {len(attempts)} attempts)"
            )
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


def _without_key(message: str | None, key: str) -> str | None:
    """A server's message with the plain key (as sent or decoded) blanked."""
    if not message:
        return message
    for form in (key, segment(key)):
        if len(form) >= 6:  # a 2-letter test key must not blank half the message
            message = message.replace(form, "***")
    return message


def classifier(success: Outcome) -> Callable[[ApiResponse], Outcome]:
    """200 -> ``success``, 404 -> absent, anything else -> failed."""

    def classify(response: ApiResponse) -> Outcome:
        if response.status == 200:
            return success
        if response.status == 404:
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
) -> Totals:
    """Run every task (at most ``concurrency`` at once) and record each as it ends.

    ``tasks`` is an iterator, or a feed whose ``get`` waits for the next task.

    Once the run halts, no new request is sent: the remaining tasks are
    recorded ``not_attempted``. If the audit log cannot be written, the run
    halts and the results that could not be recorded are kept in
    ``Totals.unrecorded``.
    """
    totals = Totals(event)

    def record(result: TaskResult) -> None:
        """Write the task's line, then its follow-up lines; whatever cannot be
        written (and only that) goes to ``totals.unrecorded``."""
        units = [(event, result, result.audit_fields)]
        units += [(note.event, note.result, note.fields) for note in result.follow_ups]
        written = 0
        if ctx.halt.reason != HALT_AUDIT:
            try:
                for name, unit, fields in units:
                    audit.task(name, unit, **fields)
                    written += 1
            except AuditWriteError as exc:
                log.error("audit log write failed; stopping", error=str(exc))
                ctx.halt.trip(HALT_AUDIT)
        for index, (name, unit, _) in enumerate(units):
            if index >= written:
                totals.unrecorded.append(unit)
            elif index == 0:
                totals.add(unit)
            else:
                totals.related.setdefault(name, Totals(name)).add(unit)
        if written == len(units) and on_result is not None:
            on_result(result)

    async def worker() -> None:
        async for task in _each(tasks):
            if ctx.halt.is_set:
                if ctx.halt.reason == HALT_AUDIT:
                    return
                record(TaskResult(task, Outcome.NOT_ATTEMPTED, message=ctx.halt.reason))
            else:
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
            # Let the loop breathe between tasks (signals, other workers), even when a
            # transport answers without ever suspending.
            await asyncio.sleep(0)

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    return totals
