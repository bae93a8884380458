"""One run of a command, end to end: plan, audit log, client, worker pool, report.

This is what the CLI calls; it never imports click. Expected failures are
raised as RevokerError subclasses; everything else ends in a RunReport.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from typing import IO

import httpx

from revoker.agora.client import AgoraClient
from revoker.audit.log import AuditLog, load_done, save_unrecorded
from revoker.credentials import Credentials
from revoker.engine.input.planner import Plan, build_plan
from revoker.engine.input.sources import open_sources
from revoker.engine.interface import FrontLane, Pass
from revoker.engine.jobs.disconnect import DisconnectPlan
from revoker.engine.jobs.disconnect_records import (
    disconnect_note,
)
from revoker.engine.jobs.keyverdicts import KeyLedger
from revoker.engine.jobs.preflight import AppCheck, check_apps
from revoker.engine.jobs.scout import scout_concurrency
from revoker.engine.sched.calls import query_task, revoke_task
from revoker.engine.sched.collector import run_heap
from revoker.engine.sched.delayqueue import DelayQueue
from revoker.engine.sched.estimate import paced_estimate
from revoker.engine.sched.fairfeed import AppFairFeed
from revoker.engine.sched.observe import RunObserver
from revoker.engine.sched.pacing import RateLimits
from revoker.engine.sched.pool import Halt, RunContext, TaskFeed, TaskRunner, run_tasks
from revoker.engine.sched.retry import RetryPolicy
from revoker.engine.sched.signals import stop_on_signals
from revoker.errors import EXIT_FAILED, AuditLogError, AuditWriteError
from revoker.logs import log
from revoker.models import Outcome, Task, TaskResult
from revoker.results import HaltReason, PlanStats, RunReport, Totals, exit_code_for
from revoker.settings import RunSettings

STREAMS_NOTE = (
    "Deleting a key does not stop a stream already running with it: "
    "use --disconnect (or Agora's force-disconnect with the stream's SID)."
)
# The commands whose verdict is per key (revoked or not found), checked by a listing
# per app and region before their first DELETE.
KEY_VERDICT_COMMANDS = ("revoke", "rotate")
# verify judges keys too, but only to point out an app ID none of whose keys exists.
LEDGER_COMMANDS = (*KEY_VERDICT_COMMANDS, "verify")


def prepare(
    settings: RunSettings,
    stdin: IO[str] | None = None,
    *,
    resume_events: tuple[str, ...] = (),
    keep_keys: bool = True,
    keep_rows: bool = True,
) -> Plan:
    """Read and validate every input row (raises InputErrors: exit 2, nothing sent);
    ``keep_keys``, ``keep_rows``: see :func:`~revoker.engine.input.planner.build_plan`."""
    done = None
    if settings.resume and resume_events:
        done = load_done(settings.audit_log, resume_events)
    inputs = settings.inputs
    sources = open_sources(inputs.sources, inputs.keys, stdin, inputs.scanner, inputs.rules)
    try:
        return build_plan(sources, settings.inputs, done, keep_keys=keep_keys, keep_rows=keep_rows)
    except BaseException:
        for source in sources:
            source.close()
        raise


def execute(
    command: str,
    settings: RunSettings,
    plan: Plan,
    credentials: Credentials,
    passes: list[Pass],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    on_result: Callable[[TaskResult], None] | None = None,
    install_signal_handlers: bool = True,
    retry: RetryPolicy | None = None,
    ledger: KeyLedger | None = None,
    observer: RunObserver | None = None,
) -> RunReport:
    """Open the audit log, run every pass, write ``run_finished``; return the report.

    ``retry`` replaces the policy built from ``settings.retry`` (e.g. shorter waits).
    With a ``ledger`` (revoke, rotate), each (app ID, region) is listed before the
    first DELETE (:mod:`revoker.engine.jobs.preflight`) and the report gets the verdict
    per key (:mod:`revoker.engine.jobs.keyverdicts`). An ``observer`` is told each pass's
    start and each task line (a progress display).
    """
    run_id = str(uuid.uuid4())
    signer = None
    if settings.sign_key is not None:
        from revoker.audit.signing import load_signer

        signer = load_signer(settings.sign_key)
    audit = AuditLog.open(
        settings.audit_log, run_id, reveal_keys=settings.reveal_keys, signer=signer
    )
    report = RunReport(command, run_id, settings.audit_log, plan.stats)
    report.regions = settings.inputs.regions
    try:
        try:
            for each in passes:
                if each.start is not None:
                    each.start()
            audit.run_started(command, settings.public_options(), plan.stats.to_dict())
            log.info(
                "run started",
                command=command,
                run_id=run_id,
                tasks=plan.stats.tasks,
                audit_log=str(settings.audit_log),
            )
        except AuditWriteError as exc:
            raise AuditLogError(str(exc)) from None
        with run_heap():
            asyncio.run(
                _run_passes(
                    settings,
                    plan,
                    credentials,
                    passes,
                    audit,
                    report,
                    transport,
                    on_result,
                    install_signal_handlers,
                    retry or RetryPolicy.from_settings(settings.retry),
                    ledger,
                    observer,
                )
            )
        if ledger is not None:
            if settings.resume and ledger.event in KEY_VERDICT_COMMANDS:
                ledger.add_earlier(plan.done_tasks())
            report.keys = ledger.settle(settings.audit_log, run_id)
        report.exit_code = exit_code_for(
            report.halt_reason,
            problems=any(p.problems for p in report.passes)
            or (report.keys is not None and report.keys.problems),
        )
        if plan.changed and report.halt_reason is None:
            log.error("input changed during the run", detail=plan.changed)
            report.notes.append(f"ERROR: {plan.changed}; check the input, then run again")
            report.exit_code = EXIT_FAILED
        revoked = report.pass_for("revoke") or report.pass_for("rotate")
        deleted = revoked and (
            revoked.counts.get(str(Outcome.REVOKED)) or revoked.counts.get(str(Outcome.ROTATED))
        )
        live = report.keys.live_streams if report.keys is not None else 0
        if revoked and live and not settings.disconnect:
            report.notes.append(
                f"{live} live streams were running with these keys when the run started "
                "(listing before the first DELETE): deleting a key does not stop them: "
                "add --disconnect"
            )
        elif revoked and deleted and not settings.disconnect and command in ("revoke", "rotate"):
            report.notes.append(STREAMS_NOTE)
        elif revoked and settings.disconnect and command in ("revoke", "rotate"):
            report.notes.append(disconnect_note(report.pass_for("disconnect")))
        if report.halt_reason != HaltReason.AUDIT_WRITE_FAILED:
            audit.run_finished(
                command=command,
                exit_code=report.exit_code,
                halt_reason=report.halt_reason,
                **{p.event: p.to_dict() for p in report.passes},
                **({"keys": report.keys.counts()} if report.keys is not None else {}),
            )
        log.info(
            "run finished",
            command=command,
            run_id=run_id,
            exit_code=report.exit_code,
            halt_reason=report.halt_reason,
            **{p.event: dict(p.counts) for p in report.passes},
        )
    except AuditWriteError:
        report.halt_reason = HaltReason.AUDIT_WRITE_FAILED
        report.exit_code = EXIT_FAILED
    finally:
        report.audit_head = audit.head
        plan.close()
        try:
            audit.close()
        except AuditWriteError:
            report.halt_reason = report.halt_reason or HaltReason.AUDIT_WRITE_FAILED
            report.exit_code = EXIT_FAILED
        if report.unrecorded:
            records = [r for p in report.passes for r in p.unrecorded_records]
            report.unrecorded_file = save_unrecorded(settings.audit_log, run_id, records)
    return report


async def _run_passes(
    settings: RunSettings,
    plan: Plan,
    credentials: Credentials,
    passes: list[Pass],
    audit: AuditLog,
    report: RunReport,
    transport: httpx.AsyncBaseTransport | None,
    on_result: Callable[[TaskResult], None] | None,
    install_signal_handlers: bool,
    retry: RetryPolicy,
    ledger: KeyLedger | None = None,
    observer: RunObserver | None = None,
) -> None:
    halt = Halt()
    limits = {m: RateLimits(settings.rps_for(m)) for m in ("DELETE", "GET", "POST")}
    client_settings = settings.client
    connections = settings.client.concurrency
    if any(p.delay is not None for p in passes):
        # Two pools of workers at once: a connection each, so a verify GET never
        # holds the connection a DELETE waits for.
        connections += settings.client.concurrency
    if any(p.front is not None for p in passes):
        connections += scout_concurrency(settings.client.concurrency)  # the same for the scout
    if connections != client_settings.concurrency:
        client_settings = replace(client_settings, concurrency=connections)
    try:
        with stop_on_signals(halt, install=install_signal_handlers):
            async with AgoraClient(
                client_settings, credentials, transport=transport, keys=plan.keys
            ) as client:
                ctx = RunContext(client, retry, limits, halt, audit=audit)
                check = None
                if ledger is not None and ledger.event in KEY_VERDICT_COMMANDS:
                    check = await _check_apps(ctx, plan, audit, ledger, settings)
                    report.refused_apps = tuple(sorted({app for app, _ in check.refused}))
                sweeper = _Sweeper(
                    plan, ctx, audit, settings.client.concurrency, ledger, check, observer
                )
                if halt.is_set:
                    # Stopped by the check (a 401): every pass's tasks are recorded as
                    # never started, so --resume does them all.
                    for stopped in passes:
                        runner = stopped.runner(ctx)
                        report.passes.append(await sweeper.run(stopped, iter(()), runner, None))
                    return
                index = 0
                while index < len(passes) and not halt.is_set:
                    sweep = passes[index]
                    behind = passes[index + 1] if index + 1 < len(passes) else None
                    if behind is None or behind.delay is None:
                        ran = [sweep]
                        totals = await _sweep(sweep, sweeper, on_result)
                    else:
                        ran = [sweep, behind]
                        totals = await _sweep_with_follower(
                            sweep, behind, behind.delay, sweeper, on_result
                        )
                    report.passes.extend(totals)
                    report.notes.extend(note for p in ran if p.notes for note in p.notes())
                    index += len(ran)
    finally:
        report.halt_reason = halt.reason


async def _check_apps(
    ctx: RunContext, plan: Plan, audit: AuditLog, ledger: KeyLedger, settings: RunSettings
) -> AppCheck:
    """The listings before the first DELETE (engine.jobs.preflight), handed to the cuts and
    to the ledger (which counts the live streams of the run's keys)."""
    where = sorted(plan.stats.per_app_region)
    check = await check_apps(ctx, where, audit, concurrency=settings.client.concurrency)
    if settings.disconnect:
        ctx.listings.update(
            (place, listing)
            for place, listing in check.listings.items()
            if listing.entries is not None
        )
    for (app_id, region), named in check.streams.items():
        ledger.watch_streams(app_id, region, named)
    return check


@dataclass(frozen=True)
class _Sweeper:
    """What every pass of one run shares: the plan, the context, the log, the workers;
    for revoke and rotate, the ledger of verdicts per key and the app check."""

    plan: Plan
    ctx: RunContext
    audit: AuditLog
    concurrency: int
    ledger: KeyLedger | None = None
    check: AppCheck | None = None
    observer: RunObserver | None = None

    def tasks(self, sweep: Pass) -> Iterator[Task]:
        """The pass's tasks; for revoke and rotate, those of keys that live streams push
        with right now first (the check's listings), then the rest, each in plan order."""
        streamed = self.check.streamed_keys() if self.check is not None else frozenset()
        if not streamed or sweep.event not in KEY_VERDICT_COMMANDS:
            return sweep.tasks()
        return _danger_first(sweep.tasks, streamed)

    async def run(
        self,
        sweep: Pass,
        tasks: Iterator[Task] | TaskFeed,
        runner: TaskRunner,
        on_result: Callable[[TaskResult], None] | None,
        *,
        behind: tuple[Pass, float] | None = None,
    ) -> Totals:
        """Run one pass; ``behind``: the pass it follows and how long after (its ETA's)."""
        if self.ledger is not None and sweep.event == self.ledger.event:
            on_result = _also(self.ledger.add, on_result)
        if self.check is not None and self.check.refused and sweep.event in KEY_VERDICT_COMMANDS:
            runner = _unless_refused(self.check, runner, sweep.done_before)
        front = None
        if sweep.front is not None and self.check is not None and isinstance(tasks, Iterator):
            front = sweep.front(self.ctx, self.check.streamed_keys())
        if front is not None and isinstance(tasks, Iterator):
            tasks = front.source(tasks)
        limits = self.ctx.limits[sweep.budget] if sweep.budget is not None else None
        # Without a cap every app is free alike: the feed would hand out the plan's order.
        if limits is not None and limits.rate > 0 and isinstance(tasks, Iterator):
            tasks = AppFairFeed(tasks, limits)
        if front is not None:
            tasks = front.feed(tasks)
        planned = self.plan.region_counts(include_done=sweep.include_done)
        observe = None
        if self.observer is not None:
            lead, delay = behind if behind is not None else (None, 0.0)
            self.observer.pass_started(
                sweep.event,
                sum(planned.values()),
                self._rate(sweep),
                behind=lead.event if lead is not None else None,
                delay=delay,
            )
            observe = self.observer.recorded
        async with _beside(front):
            totals = await run_tasks(
                tasks,
                runner,
                ctx=self.ctx,
                audit=self.audit,
                event=sweep.event,
                concurrency=self.concurrency,
                on_result=on_result,
                planned=planned,
                done_before=sweep.done_before,
                observe=observe,
            )
        if front is not None:
            # The lane's requests the log has no line of are the pass's to save.
            for result, record in front.unrecorded():
                totals.unrecorded.append(result)
                totals.unrecorded_records.append(record)
        return totals

    def _rate(self, sweep: Pass) -> float | None:
        """The pass's paced requests/s over all its app IDs (each has its own budget)."""
        limits = self.ctx.limits.get(sweep.budget or "")
        if limits is None or not limits.rate:
            return None
        apps = {app for app, _ in self.plan.stats.per_app_region} or {""}
        return limits.rate * len(apps)


@contextlib.asynccontextmanager
async def _beside(front: FrontLane | None) -> AsyncIterator[None]:
    """Run ``front``'s work while the block runs; stopped when the block ends, and waited
    for. A failure in it is logged: it only ever moves tasks forward, the pass does them
    anyway."""
    if front is None:
        yield
        return
    work = asyncio.ensure_future(front.run())
    try:
        yield
    finally:
        front.stop()
        try:
            await work
        except Exception as exc:  # a bug in the lane must not end the run
            log.error("front lane failed", error=type(exc).__name__)


def _danger_first(
    tasks: Callable[[], Iterator[Task]], streamed: frozenset[tuple[str, str]]
) -> Iterator[Task]:
    """The tasks of keys in ``streamed`` (app ID, key), then the others: the input is
    read twice, so memory stays bounded by the streams, not the input."""
    yield from (task for task in tasks() if (task.app_id, task.key) in streamed)
    yield from (task for task in tasks() if (task.app_id, task.key) not in streamed)


def _also(
    first: Callable[[TaskResult], None], then: Callable[[TaskResult], None] | None
) -> Callable[[TaskResult], None]:
    """One result callback that calls ``first``, then ``then`` (if any)."""

    def both(result: TaskResult) -> None:
        first(result)
        if then is not None:
            then(result)

    return both


def _unless_refused(
    check: AppCheck, runner: TaskRunner, done_before: Callable[[Task], bool] | None
) -> TaskRunner:
    """``runner``, except for pairs whose app the check refused: failed, nothing sent."""

    async def run(task: Task) -> TaskResult:
        refusal = check.refusal(task)
        if refusal is None or (done_before is not None and done_before(task)):
            return await runner(task)
        return TaskResult(task, Outcome.FAILED, message=refusal)

    return run


async def _sweep(
    sweep: Pass, sweeper: _Sweeper, on_result: Callable[[TaskResult], None] | None
) -> list[Totals]:
    """Run one pass on its own; its totals, then those of its follow-up lines."""
    ctx = sweeper.ctx
    throttled_before = ctx.throttled
    totals = await sweeper.run(sweep, sweeper.tasks(sweep), sweep.runner(ctx), on_result)
    totals.extra["throttled_429"] = ctx.throttled - throttled_before
    return [totals, *totals.related.values()]


async def _sweep_with_follower(
    lead: Pass,
    follower: Pass,
    delay: float,
    sweeper: _Sweeper,
    on_result: Callable[[TaskResult], None] | None,
) -> list[Totals]:
    """Run ``lead`` and, alongside, ``follower`` on each task ``delay`` s after ``lead`` ends it.

    The follower has its own workers fed by a DelayQueue, so the lead's requests
    never wait for it; the follower ends when its last task does. After a halt
    both record what they did not do as ``not_attempted``.
    """
    ctx = sweeper.ctx
    queue: DelayQueue[Task] = DelayQueue(
        delay, sleep=ctx.halt.sleep, hurried=lambda: ctx.halt.is_set, backlog=follower.tasks()
    )

    def lead_recorded(result: TaskResult) -> None:
        queue.put(result.task)
        if on_result is not None:
            on_result(result)

    throttled_before = ctx.throttled
    follower_429 = 0
    follow = follower.runner(ctx)

    async def counted(task: Task) -> TaskResult:
        nonlocal follower_429
        result = await follow(task)
        follower_429 += sum(1 for a in result.attempts if a.status == 429)
        return result

    async def run_lead() -> Totals:
        try:
            return await sweeper.run(lead, sweeper.tasks(lead), lead.runner(ctx), lead_recorded)
        finally:
            queue.close()

    lead_totals, follower_totals = await asyncio.gather(
        run_lead(), sweeper.run(follower, queue, counted, on_result, behind=(lead, delay))
    )
    lead_totals.extra["throttled_429"] = ctx.throttled - throttled_before - follower_429
    follower_totals.extra["throttled_429"] = follower_429
    return [lead_totals, *lead_totals.related.values(), follower_totals]


def revoke_passes(settings: RunSettings, plan: Plan) -> list[Pass]:
    """The passes of ``revoke``: DELETE every pair and (with --verify), behind the
    DELETEs, GET every pair ``verify_delay`` seconds after its DELETE ended (pairs
    done in an earlier run at once)."""
    passes = [Pass("revoke", plan.tasks, lambda ctx: lambda t: revoke_task(ctx, t))]
    if settings.disconnect:
        passes = [disconnect_pass(settings, plan)]
    if settings.verify:
        passes.append(verify_pass(plan, include_done=True, behind=settings.verify_delay))
    return passes


def disconnect_pass(settings: RunSettings, plan: Plan) -> Pass:
    """DELETE every pair and cut off its live streams; with --resume, the pairs deleted
    in an earlier run are not deleted again but their streams are listed and cut."""
    cuts = DisconnectPlan(settings, plan, "revoke")
    return Pass(
        "revoke",
        cuts.tasks,
        lambda ctx: cuts.sweep(ctx).run,
        done_before=cuts.done_before,
        front=cuts.scout,
        notes=cuts.notes,
    )


def verify_pass(plan: Plan, *, include_done: bool = False, behind: float | None = None) -> Pass:
    """GET every pair (with ``include_done``, those done in an earlier run too).

    With ``behind``, the pass runs behind the pass before it (see :class:`Pass`):
    its own tasks are then only those done in an earlier run, and its GETs take
    only spare slots of the GET budget, so the lookups that DELETEs wait for
    (``--disconnect``) are never queued behind verifications.
    """

    def runner(ctx: RunContext) -> TaskRunner:
        return lambda task: query_task(ctx, task, spare=behind is not None)

    if behind is not None:
        earlier = plan.done_tasks if include_done else lambda: iter(())
        return Pass("verify", earlier, runner, include_done=include_done, delay=behind)
    return Pass(
        "verify",
        lambda: plan.tasks(include_done=include_done),
        runner,
        include_done=include_done,
    )


def run_command(
    command: str,
    settings: RunSettings,
    credentials: Credentials | None,
    stdin: IO[str] | None,
    *,
    passes_for: Callable[[RunSettings, Plan], list[Pass]],
    resume_events: tuple[str, ...] = (),
    on_plan: Callable[[PlanStats], None] | None = None,
    observer: RunObserver | None = None,
) -> RunReport:
    """One bulk command end to end: read the plan, build its passes, run them.

    Without ``credentials`` (a dry run) nothing is sent: the report holds the plan
    only. ``on_plan`` sees the plan's counts (and its invalid rows) before anything
    is sent; ``observer`` follows the passes (see :func:`execute`).
    ``settings.dry_run`` with credentials (prune) still sends what the passes send
    and marks the report as a dry run.
    """
    # Only revoke and rotate send requests that name no key (listings, cuts, creates).
    lists = credentials is not None and command in KEY_VERDICT_COMMANDS
    plan = prepare(
        settings,
        stdin,
        resume_events=resume_events,
        keep_keys=lists,
        keep_rows=credentials is not None,
    )
    if on_plan is not None:
        on_plan(plan.stats)
    if credentials is None:
        plan.close()
        report = RunReport(command, "-", None, plan.stats, dry_run=True)
        estimate = paced_estimate(command, settings, plan.stats)
        if estimate is not None:
            report.notes.append(estimate)
        return report
    try:
        passes = passes_for(settings, plan)
    except BaseException:
        plan.close()
        raise
    ledger = (
        KeyLedger(command, absent_ok=settings.absent_ok) if command in LEDGER_COMMANDS else None
    )
    report = execute(command, settings, plan, credentials, passes, ledger=ledger, observer=observer)
    report.dry_run = settings.dry_run
    return report
