"""One run of a command, end to end: plan, audit log, client, executor, verdict.

This is what the CLI calls; it never imports click. Expected failures are
raised as RevokerError subclasses; everything else ends in a RunReport.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import structlog

from revoker.audit import AuditLog, load_done, save_unrecorded
from revoker.auth import Credentials
from revoker.client import AgoraClient
from revoker.disconnect import StreamSweep, disconnect_note, resumed_identities
from revoker.errors import (
    EXIT_ABORTED,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    AuditLogError,
    AuditWriteError,
)
from revoker.executor import (
    HALT_AUDIT,
    HALT_AUTH,
    HALT_INTERRUPTED,
    Context,
    Halt,
    TaskRunner,
    Totals,
    query_task,
    revoke_task,
    run_tasks,
)
from revoker.inputs import open_sources
from revoker.models import Outcome, Task, TaskResult
from revoker.planner import Plan, PlanStats, build_plan
from revoker.ratelimit import RateLimits
from revoker.settings import RunSettings

log = structlog.get_logger("revoker")

STREAMS_NOTE = (
    "Deleting a key does not stop a stream already running with it: "
    "use --disconnect (or Agora's force-disconnect with the stream's SID)."
)
# SIGHUP too: a closed terminal or a dropped ssh session must stop a run as
# gracefully as SIGTERM, not kill it with DELETEs unrecorded.
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
OK_OUTCOMES = {
    "revoke": {str(Outcome.REVOKED), str(Outcome.ABSENT)},
    "verify": {str(Outcome.ABSENT)},
    "query": {str(Outcome.PRESENT), str(Outcome.ABSENT)},
    "disconnect": {str(Outcome.DISCONNECTED), str(Outcome.ABSENT)},
    "rotate": {str(Outcome.ROTATED), str(Outcome.ABSENT)},
}


@dataclass
class RunReport:
    """The result of one command: what the summary shows and the exit code."""

    command: str
    run_id: str
    audit_log: Path | None
    plan: PlanStats
    passes: list[Totals] = field(default_factory=list)
    halt_reason: str | None = None
    dry_run: bool = False
    exit_code: int = EXIT_OK
    notes: list[str] = field(default_factory=list)
    audit_head: str | None = None  # hash of the audit log's last line (revoker.chain)
    # Where the tasks the audit log refused were saved (None: nowhere but the summary).
    unrecorded_file: Path | None = None

    @property
    def unrecorded(self) -> list[TaskResult]:
        return [r for p in self.passes for r in p.unrecorded]

    def pass_for(self, event: str) -> Totals | None:
        return next((p for p in self.passes if p.event == event), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "run_id": self.run_id,
            "dry_run": self.dry_run,
            "exit_code": self.exit_code,
            "verdict": verdict(self),
            "halt_reason": self.halt_reason,
            "audit_log": str(self.audit_log) if self.audit_log else None,
            "audit_head": self.audit_head,
            "plan": self.plan.to_dict(),
            **{p.event: {**p.to_dict(), "failures": p.failures} for p in self.passes},
            "unrecorded": [
                {
                    "app_id": r.task.app_id,
                    "region": r.task.region,
                    "key_hint": r.task.key_hint,
                    "outcome": str(r.outcome),
                    "request_ids": [a.request_id for a in r.attempts],
                }
                for r in self.unrecorded
            ],
            "unrecorded_file": str(self.unrecorded_file) if self.unrecorded_file else None,
            "notes": self.notes,
        }


def verdict(report: RunReport) -> str:
    if report.dry_run:
        return "dry run: queried, nothing deleted" if report.passes else "dry run: nothing sent"
    if report.halt_reason == HALT_AUTH:
        return "aborted: credentials rejected (401); the rest is not_attempted"
    if report.halt_reason == HALT_INTERRUPTED:
        return "interrupted: in-flight requests finished; the rest is not_attempted"
    if report.halt_reason == HALT_AUDIT:
        return "stopped: the audit log could not be written"
    if report.exit_code == EXIT_OK:
        return {
            "revoke": "every key revoked or absent in every region",
            "verify": "every key absent in every region",
            "prune": "every matching pair deleted",
            "rotate": "every key rotated (or absent) in every region",
        }.get(report.command, "done")
    return {
        "revoke": "some keys were NOT revoked",
        "verify": "some keys are still present (or could not be checked)",
        "prune": "some pairs could NOT be checked or deleted",
        "rotate": "some keys were NOT rotated",
    }.get(report.command, "failures")


def exit_code_for(halt_reason: str | None, passes: list[Totals]) -> int:
    """The one place results become an exit code (errors map via RevokerError.exit_code)."""
    if halt_reason == HALT_AUTH:
        return EXIT_ABORTED
    if halt_reason == HALT_INTERRUPTED:
        return EXIT_INTERRUPTED
    if halt_reason == HALT_AUDIT:
        return EXIT_FAILED
    for totals in passes:
        ok = OK_OUTCOMES.get(totals.event, OK_OUTCOMES["revoke"])
        if any(n and outcome not in ok for outcome, n in totals.counts.items()):
            return EXIT_FAILED
    return EXIT_OK


@dataclass
class Pass:
    """One sweep over the plan's tasks."""

    event: str
    tasks: Callable[[], Iterator[Task]]
    runner: Callable[[Context], TaskRunner]
    notes: Callable[[], list[str]] | None = None  # summary lines, asked after the pass
    include_done: bool = False  # whether ``tasks`` yields the pairs --resume skips


def prepare(
    settings: RunSettings, stdin: IO[str] | None = None, *, resume_events: tuple[str, ...] = ()
) -> Plan:
    """Read and validate every input row (raises InputErrors: exit 2, nothing sent)."""
    done = None
    if settings.resume and resume_events:
        done = load_done(settings.audit_log, resume_events)
    inputs = settings.inputs
    sources = open_sources(inputs.sources, inputs.keys, stdin, inputs.scanner, inputs.rules)
    try:
        return build_plan(sources, settings.inputs, done)
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
) -> RunReport:
    """Open the audit log, run every pass, write ``run_finished``; return the report."""
    run_id = str(uuid.uuid4())
    signer = None
    if settings.sign_key is not None:
        from revoker.signing import load_signer

        signer = load_signer(settings.sign_key)
    audit = AuditLog.open(
        settings.audit_log, run_id, reveal_keys=settings.reveal_keys, signer=signer
    )
    report = RunReport(command, run_id, settings.audit_log, plan.stats)
    try:
        try:
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
            )
        )
        report.exit_code = exit_code_for(report.halt_reason, report.passes)
        if plan.changed and report.halt_reason is None:
            log.error("input changed during the run", detail=plan.changed)
            report.notes.append(f"ERROR: {plan.changed}; run again to be sure")
            report.exit_code = EXIT_FAILED
        revoked = report.pass_for("revoke") or report.pass_for("rotate")
        deleted = revoked and (
            revoked.counts.get(str(Outcome.REVOKED)) or revoked.counts.get(str(Outcome.ROTATED))
        )
        if revoked and deleted and not settings.disconnect:
            report.notes.append(STREAMS_NOTE)
        elif revoked and settings.disconnect and command in ("revoke", "rotate"):
            report.notes.append(disconnect_note(report.pass_for("disconnect")))
        if report.halt_reason != HALT_AUDIT:
            audit.run_finished(
                command=command,
                exit_code=report.exit_code,
                halt_reason=report.halt_reason,
                **{p.event: p.to_dict() for p in report.passes},
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
        report.halt_reason = HALT_AUDIT
        report.exit_code = EXIT_FAILED
    finally:
        report.audit_head = audit.head
        plan.close()
        try:
            audit.close()
        except AuditWriteError:
            report.halt_reason = report.halt_reason or HALT_AUDIT
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
) -> None:
    halt = Halt()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    if install_signal_handlers:
        for sig in STOP_SIGNALS:
            try:
                loop.add_signal_handler(sig, _on_signal, loop, halt, sig)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
                pass
    limits = {m: RateLimits(settings.rps_for(m)) for m in ("DELETE", "GET", "POST")}
    try:
        async with AgoraClient(settings.client, credentials, transport=transport) as client:
            ctx = Context(client, settings.retry, limits, halt, audit=audit)
            for sweep in passes:
                if halt.is_set:
                    break
                throttled_before = ctx.throttled
                totals = await run_tasks(
                    sweep.tasks(),
                    sweep.runner(ctx),
                    ctx=ctx,
                    audit=audit,
                    event=sweep.event,
                    concurrency=settings.client.concurrency,
                    on_result=on_result,
                    planned=plan.region_counts(include_done=sweep.include_done),
                )
                totals.extra["throttled_429"] = ctx.throttled - throttled_before
                report.passes.append(totals)
                report.passes.extend(totals.related.values())
                if sweep.notes is not None:
                    report.notes.extend(sweep.notes())
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        report.halt_reason = halt.reason


def _on_signal(loop: asyncio.AbstractEventLoop, halt: Halt, sig: signal.Signals) -> None:
    """First signal: finish in-flight requests, record the rest. Second: default action."""
    log.warning("signal received: finishing in-flight requests", signal=sig.name)
    halt.trip(HALT_INTERRUPTED)
    for stop in STOP_SIGNALS:
        loop.remove_signal_handler(stop)


def revoke_passes(settings: RunSettings, plan: Plan) -> list[Pass]:
    """The passes of ``revoke``: DELETE every pair, then (with --verify) GET every pair."""
    passes = [Pass("revoke", plan.tasks, lambda ctx: lambda t: revoke_task(ctx, t))]
    if settings.disconnect:
        passes = [disconnect_pass(settings, plan)]
    if settings.verify:
        passes.append(verify_pass(plan, include_done=True))
    return passes


def disconnect_pass(settings: RunSettings, plan: Plan) -> Pass:
    """DELETE every pair and cut off its live streams; with --resume, the pairs deleted
    in an earlier run are not deleted again but their streams are listed and cut."""
    resumed = settings.resume and bool(plan.done)

    def tasks() -> Iterator[Task]:
        return plan.tasks(include_done=resumed)

    def runner(ctx: Context) -> TaskRunner:
        expected: Counter[tuple[str, str]] = Counter(plan.stats.per_app_region)
        done = {}
        if resumed:
            # The earlier run's pairs of this input: counted and matched, not deleted.
            expected = Counter((t.app_id, t.region) for t in tasks())
            assert plan.done is not None
            done = resumed_identities(settings.audit_log, plan.done)
        sweep = StreamSweep(
            ctx, expected, confirm_timeout=settings.disconnect_timeout, resumed=done
        )
        return sweep.run

    return Pass("revoke", tasks, runner)


def verify_pass(plan: Plan, *, include_done: bool = False) -> Pass:
    def runner(ctx: Context) -> TaskRunner:
        return lambda task: query_task(ctx, task)

    return Pass(
        "verify", lambda: plan.tasks(include_done=include_done), runner, include_done=include_done
    )
