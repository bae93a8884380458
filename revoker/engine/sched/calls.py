"""What a task does: one API call with retries, classified into an outcome.

:func:`call_api` sends with the run's :class:`~revoker.engine.sched.retry.RetryPolicy`.
Retried: transport errors, 409, 429, 500, 502, 503, 504 (a create only when
the server cannot have acted on it). A 401 trips the run's halt switch:
nothing new is sent, the rest is recorded ``not_attempted``. Cancellation is
never retried. :func:`revoke_task` and :func:`query_task` are the plain DELETE
and GET tasks; the other jobs (disconnect, rotate, prune) build on
:func:`call_task`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, retry_if_result

from revoker.agora.client import NOT_THE_API, ApiResponse, StreamKey
from revoker.engine.sched.pacing import Pacer
from revoker.engine.sched.pool import Halted, RunContext
from revoker.errors import TransportFailure
from revoker.logs import log, verbosity
from revoker.models import Attempt, Outcome, Task, TaskResult
from revoker.redact import key_forms, server_request_id, server_text
from revoker.results import HaltReason

RETRYABLE_STATUS = frozenset({409, 429, 500, 502, 503, 504})
# Answers that say the request was turned away before anything was done.
REJECTED_STATUS = frozenset({409, 429})


async def call_api(
    ctx: RunContext,
    method: str,
    app_id: str,
    send: Callable[[], Awaitable[ApiResponse]],
    attempts: list[Attempt],
    *,
    idempotent: bool = True,
    spare: bool = False,
    urgent: bool = False,
    task: Task | None = None,
) -> ApiResponse:
    """One API call with retries; every attempt is appended to ``attempts``.

    Returns the last response (even a retryable one once attempts run out);
    raises TransportFailure if the last attempt got no response, Halted if
    the run halted before an attempt was sent. A call that is not
    ``idempotent`` (a create) is repeated only when the server cannot have
    acted on it: 409 and 429, or a connection that was never made. A
    ``spare`` call takes only slots of its budget that no other call waits for
    (see :meth:`Pacer.reserve_spare`). An ``urgent`` call (a force-disconnect)
    takes the first slot not yet gone, ahead of the ones booked already
    (:meth:`Pacer.book_front`). ``task`` names the call in -v/-vv log lines.
    """
    retry_statuses = RETRYABLE_STATUS if idempotent else REJECTED_STATUS

    def repeatable(exc: BaseException) -> bool:
        return isinstance(exc, TransportFailure) and (idempotent or exc.connect)

    limiter: Pacer | None = ctx.limits[method].get(app_id)
    front = False  # the last answer was a 429 the pacer took as not its pace's doing

    async def once() -> ApiResponse:
        nonlocal front
        if ctx.halt.is_set:
            raise Halted
        slot = 0.0  # when the pacer booked this attempt to go
        if limiter is not None and spare:
            async with limiter.spare_turn:
                booked, wait = limiter.reserve_spare()
                while not booked and not ctx.halt.is_set:
                    await ctx.halt.sleep(wait)
                    booked, wait = limiter.reserve_spare()
            slot = time.monotonic() + wait
            await ctx.halt.sleep(wait)
            if ctx.halt.is_set:
                raise Halted
        elif limiter is not None:
            # The retry of a stray 429 keeps its place; the requests booked behind
            # it go one slot later each, so the pace holds.
            mine = limiter.book_front() if front or urgent else limiter.book()
            while True:
                wait = limiter.until(mine)
                slot = time.monotonic() + wait
                await ctx.halt.sleep(wait)  # wakes at once if the run halts
                if ctx.halt.is_set:
                    raise Halted
                moved = limiter.moved(mine)
                if moved.at <= mine.at:
                    break
                mine = moved
        try:
            response = await send()
        except TransportFailure as exc:
            attempts.append(Attempt(exc.request_id, exc.host, error=exc.kind, ms=exc.ms))
            _log_attempt(method, app_id, task, attempts[-1])
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
        _log_attempt(method, app_id, task, attempts[-1])
        if limiter is not None:
            # From the booked slot, not from the send: a late wake-up bunches
            # requests as much as network jitter does.
            limiter.observe(time.monotonic() - slot)
        if response.status == 429:
            ctx.throttled += 1
            if limiter is not None:
                front = not limiter.throttled(response.retry_after, response.message)
        elif response.status == 401:
            ctx.halt.trip(HaltReason.AUTH_REJECTED)
        return response

    # Fast path: most calls succeed at once, and a tenacity loop per call costs more
    # than the rest of the call's own work. A retryable first outcome is replayed
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
        stop=ctx.retry.stop(ctx.halt),
        wait=ctx.retry.wait.with_fallback(ctx.client.has_fallback),
        retry=(
            retry_if_exception(repeatable) | retry_if_result(lambda r: r.status in retry_statuses)
        ),
        sleep=ctx.halt.sleep,
        before_sleep=lambda state: _log_retry(method, app_id, task, attempts, state),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
    )
    result: ApiResponse = await retrying(attempt)
    return result


def _where(method: str, app_id: str, task: Task | None) -> dict[str, str]:
    """A log line's context: the call and, for a task, its region and key hint."""
    where = {"method": method, "app_id": app_id}
    if task is not None:
        where.update(region=task.region, key=task.key_hint)
    return where


def _log_attempt(method: str, app_id: str, task: Task | None, attempt: Attempt) -> None:
    """-vv: every request; -v: every 429 (only our own request ID: the server's may
    carry anything)."""
    level = verbosity()
    if level >= 2:
        log.debug(
            "request",
            **_where(method, app_id, task),
            status=attempt.status,
            error=attempt.error,
            request_id=attempt.request_id,
            host=attempt.host,
            ms=attempt.ms,
        )
    elif level >= 1 and attempt.status == 429:
        log.info("throttled 429", **_where(method, app_id, task), request_id=attempt.request_id)


def _log_retry(
    method: str, app_id: str, task: Task | None, attempts: list[Attempt], state: RetryCallState
) -> None:
    """-v: each retry, with the request ID of the attempt it repeats and the wait."""
    if verbosity() < 1 or not attempts:
        return
    last = attempts[-1]
    log.info(
        "retrying",
        **_where(method, app_id, task),
        attempt=state.attempt_number,
        after=last.status if last.status is not None else last.error,
        request_id=last.request_id,
        wait_s=round(state.upcoming_sleep, 2),
    )


async def call_task(
    ctx: RunContext,
    task: Task,
    method: str,
    send: Callable[[], Awaitable[ApiResponse]],
    classify: Callable[[ApiResponse], Outcome],
    *,
    idempotent: bool = True,
    spare: bool = False,
    urgent: bool = False,
    key: StreamKey | None = None,
) -> tuple[TaskResult, ApiResponse | None]:
    """One API call (with retries) as a TaskResult, plus the last response if any;
    ``key``: the task's key as ``send`` quoted it, if it did."""
    attempts: list[Attempt] = []
    started = time.perf_counter()
    # blanked in everything the server says about this task
    forms = key.forms if key is not None else key_forms(task.key)
    result = TaskResult(task, Outcome.NOT_ATTEMPTED, attempts)
    response: ApiResponse | None = None
    try:
        response = await call_api(
            ctx,
            method,
            task.app_id,
            send,
            attempts,
            idempotent=idempotent,
            spare=spare,
            urgent=urgent,
            task=task,
        )
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
        message = response.message and server_text(response.message, forms)
        result.message = NOT_THE_API if response.foreign else message
        result.data = response.data if response.api_answer else None  # no facts from a proxy
        if result.outcome is Outcome.FAILED and response.status in RETRYABLE_STATUS:
            result.message = f"{result.message or response.status} (after {len(attempts)} attempts)"
    for attempt in attempts:
        attempt.server_request_id = server_request_id(attempt.server_request_id, forms)
    result.duration_ms = int((time.perf_counter() - started) * 1000)
    return result, response


async def run_call(
    ctx: RunContext,
    task: Task,
    method: str,
    send: Callable[[], Awaitable[ApiResponse]],
    classify: Callable[[ApiResponse], Outcome],
    *,
    spare: bool = False,
    urgent: bool = False,
    key: StreamKey | None = None,
) -> TaskResult:
    """A task made of one API call, turned into a TaskResult with its outcome."""
    result, _ = await call_task(
        ctx, task, method, send, classify, spare=spare, urgent=urgent, key=key
    )
    return result


def classifier(success: Outcome) -> Callable[[ApiResponse], Outcome]:
    """The API's own 200 -> ``success``, its own 404 -> absent, anything else -> failed.

    A 200 or 404 that is not the API's (:attr:`ApiResponse.foreign`: an HTML page,
    no echoed request ID) is ``failed``: counting it as revoked or absent would
    call a live key revoked.
    """

    def classify(response: ApiResponse) -> Outcome:
        if response.status == 200 and response.api_answer:
            return success
        if response.not_found:
            return Outcome.ABSENT
        return Outcome.FAILED

    return classify


classify_delete = classifier(Outcome.REVOKED)
classify_get = classifier(Outcome.PRESENT)


async def revoke_task(ctx: RunContext, task: Task) -> TaskResult:
    key = StreamKey.of(task.key)  # quoted once, for every attempt and the redactor
    return await run_call(
        ctx,
        task,
        "DELETE",
        lambda: ctx.client.delete_key(task.region, task.app_id, key),
        classify_delete,
        key=key,
    )


async def query_task(
    ctx: RunContext, task: Task, *, spare: bool = False, urgent: bool = False
) -> TaskResult:
    """GET the key in the task's region; ``spare``: only on GET slots nothing else waits
    for; ``urgent``: on the first free slot, ahead of those booked already."""
    key = StreamKey.of(task.key)
    return await run_call(
        ctx,
        task,
        "GET",
        lambda: ctx.client.get_key(task.region, task.app_id, key),
        classify_get,
        spare=spare,
        urgent=urgent,
        key=key,
    )
