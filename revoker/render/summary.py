"""Summaries for stdout: text for people, JSON for machines."""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from typing import Any

from revoker.errors import EXIT_OK
from revoker.models import REGIONS, event_outcomes, key_hint
from revoker.redact import printable_lines
from revoker.render.table import table
from revoker.results import HaltReason, KeyVerdicts, PlanStats, RunReport, Totals

MAX_FAILURES_SHOWN = 20
MAX_NOT_FOUND_SHOWN = 20


def render(report: RunReport, fmt: str, argv: Sequence[str] | None = None) -> str:
    """The summary; ``argv`` (the run's arguments after ``revoker``) gives the text its
    exact next commands."""
    if fmt == "json":
        return json.dumps(report_dict(report), indent=2, sort_keys=False)
    return render_text(report, argv)


def report_dict(report: RunReport) -> dict[str, Any]:
    """The report's facts with its verdict sentence, right after the exit code."""
    facts = list(report.to_dict().items())
    at = next(i for i, (name, _) in enumerate(facts) if name == "exit_code") + 1
    return dict([*facts[:at], ("verdict", verdict(report)), *facts[at:]])


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def where(report: RunReport, *, done: str = "touched") -> str:
    """The regions the verdict covers: "in every region" only when all were covered."""
    left_out = [r for r in REGIONS if r not in report.regions]
    if left_out:
        return (
            f"in {', '.join(report.regions)} "
            f"({_and(left_out)} not {done}: --regions / AGORA_REGIONS)"
        )
    partial = report.plan.partial_keys
    if partial:
        return (
            f"in every region listed for it ({partial} keys limited to fewer regions "
            "by their CSV regions column)"
        )
    return "in every region"


def verdict(report: RunReport) -> str:
    """One sentence saying how the run ended, for people."""
    if report.dry_run:
        return "dry run: queried, nothing deleted" if report.passes else "dry run: nothing sent"
    if report.halt_reason == HaltReason.AUTH_REJECTED:
        return "aborted: credentials rejected (401); the rest is not_attempted"
    if report.halt_reason == HaltReason.INTERRUPTED:
        return "interrupted: in-flight requests finished; the rest is not_attempted"
    if report.halt_reason == HaltReason.AUDIT_WRITE_FAILED:
        return "stopped: the audit log could not be written"
    keys = report.keys
    not_found = keys.not_found if keys is not None else 0
    if report.exit_code == EXIT_OK:
        accepted = f" or not found ({not_found} accepted with --absent-ok)" if not_found else ""
        if report.command == "revoke":
            return f"every key revoked{accepted} {where(report)}"
        if report.command == "rotate":
            some_only_deleted = keys is not None and keys.revoked > keys.rotated
            done = "rotated or revoked" if some_only_deleted else "rotated"
            return f"every key {done}{accepted} {where(report)}"
        if report.command == "verify":
            return f"every key absent {where(report, done='checked')}"
        return {"prune": "every matching pair deleted"}.get(report.command, "done")
    passes_failed = any(p.problems for p in report.passes)
    if keys is not None and keys.problems and not passes_failed:
        return (
            f"{not_found} of {keys.keys} keys NOT FOUND in any region and never revoked "
            "in this audit log: they are NOT revoked"
        )
    return {
        "revoke": "some keys were NOT revoked",
        "verify": "some keys are still present (or could not be checked)",
        "prune": "some pairs could NOT be checked or deleted",
        "rotate": "some keys were NOT rotated",
    }.get(report.command, "failures")


def key_lines(keys: KeyVerdicts, scope: str = "this audit log") -> list[str]:
    """The keys found nowhere, their likely causes, and the app IDs none of whose keys
    was found (the likely mistake); ``scope`` names the logs that were read."""
    lines: list[str] = []
    if keys.not_found and not keys.advisory:
        state = "accepted with --absent-ok" if keys.absent_ok else "NOT revoked"
        lines.append(
            f'not found: {keys.not_found} of {keys.keys} keys answered "not found" in every '
            f"region and no run in {scope} deleted them ({state}):"
        )
        rows = [["app_id", "key", "key_id", "regions"]]
        for found in keys.samples[:MAX_NOT_FOUND_SHOWN]:
            rows.append([found.app_id, found.key_hint, found.key_id, ",".join(found.regions)])
        lines += ["  " + line for line in table(rows)]
        if keys.not_found > MAX_NOT_FOUND_SHOWN:
            lines.append(
                f"  ... and {keys.not_found - MAX_NOT_FOUND_SHOWN} more (--output json lists "
                f"up to {KeyVerdicts.MAX_SAMPLES})"
            )
        lines.append("  likely causes: " + "; ".join(keys.causes()))
        if not keys.absent_ok:
            lines.append(
                "  if they were already gone, give --absent-ok (or read the audit log "
                "that revoked them)"
            )
    for app_id, count in keys.apps_not_found:
        lines.append(f"app ID {app_id}: " + app_not_found(count, scope))
    return lines


def app_not_found(count: int, scope: str) -> str:
    """What it means that none of an app ID's ``count`` keys was found: with one key,
    the key is as likely wrong as the app ID."""
    if count == 1:
        return (
            f"its only key was found in no region and never deleted in {scope}: "
            "the key or the app ID is wrong"
        )
    return (
        f"none of its {count} keys was found in any region and none was ever deleted "
        f"in {scope}: the app ID is the likely mistake"
    )


def plan_lines(stats: PlanStats) -> list[str]:
    lines = [
        f"plan: {stats.keys} keys, {stats.tasks} tasks (key x region)"
        + (f", {stats.duplicates} duplicate rows skipped" if stats.duplicates else "")
        + (f", {stats.already_done} already done (resume)" if stats.already_done else "")
        + (f", {stats.out_of_shard} rows in other shards" if stats.out_of_shard else "")
        + (f", {stats.invalid_count} invalid rows skipped" if stats.invalid_count else "")
    ]
    apps = sorted({app for app, _ in stats.per_app_region})
    if apps:
        rows = [["app_id", *REGIONS, "total"]]
        for app in apps[:20]:
            counts = [stats.per_app_region.get((app, r), 0) for r in REGIONS]
            rows.append([app, *map(str, counts), str(sum(counts))])
        lines += ["  " + line for line in table(rows)]
        if len(apps) > 20:
            lines.append(f"  ... and {len(apps) - 20} more app IDs")
    if stats.sample:
        lines.append(
            "  sample: " + ", ".join(f"{t.region}/{t.app_id}/{t.key_hint}" for t in stats.sample)
        )
    return lines


def totals_lines(totals: Totals, log: str = "AUDIT_LOG") -> list[str]:
    columns = [str(outcome) for outcome in event_outcomes(totals.event)]
    columns += sorted(set(totals.counts) - set(columns))
    rows = [["region", *columns]]
    for region in REGIONS:
        if region in totals.per_region:
            counts = totals.per_region[region]
            rows.append([region, *(str(counts.get(c, 0)) for c in columns)])
    rows.append(["total", *(str(totals.counts.get(c, 0)) for c in columns)])
    lines = [f"{totals.event}: {totals.total} tasks"]
    lines += ["  " + line for line in table(rows)]
    for name, value in sorted(totals.extra.items()):
        if value:
            lines.append(f"  {name.replace('_', ' ')}: {value}")
    if totals.failures:
        shown = min(len(totals.failures), MAX_FAILURES_SHOWN)
        failed = totals.counts.get("failed", 0)
        rest = f" of {failed}; all of them: revoker report {log}" if failed > shown else ""
        lines.append(f"  failures (first {shown}{rest}):")
        for f in totals.failures[:MAX_FAILURES_SHOWN]:
            lines.append(
                f"    {f['region']} {f['app_id']} {f['key_hint']} {f['key_id']}: "
                f"HTTP {_status(f['http_status'])} {f['message'] or ''} "
                f"request_ids={','.join(f['request_ids'][-3:]) or '-'}"
            )
    return lines


def _status(status: object) -> str:
    """An HTTP status for a failure line: ``-`` when nothing was answered (or sent)."""
    return "-" if status is None else str(status)


def _masked_argv(argv: Sequence[str]) -> tuple[list[str], bool]:
    """``argv`` with each ``--key`` value masked (a key is never printed); whether any was."""
    out: list[str] = []
    masked = False
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(f"<{key_hint(arg)}>")
            hide_next, masked = False, True
        elif arg == "--key":
            out.append(arg)
            hide_next = True
        elif arg.startswith("--key="):
            out.append(f"--key=<{key_hint(arg[len('--key=') :])}>")
            masked = True
        else:
            out.append(arg)
    return out, masked


def command_line(argv: Sequence[str], *, add: Sequence[str] = (), drop: Sequence[str] = ()) -> str:
    """``revoker ARGV`` with ``add`` appended (unless already there) and ``drop`` removed,
    quoted for a POSIX shell; --key values masked."""
    args, _ = _masked_argv([a for a in argv if a not in drop])
    args += [flag for flag in add if flag not in args]
    return shlex.join(["revoker", *args])


def _count(report: RunReport, *outcomes: str) -> int:
    return sum(p.counts.get(o, 0) for p in report.passes for o in outcomes)


def next_steps(report: RunReport, argv: Sequence[str] | None) -> list[str]:
    """What to do next, as commands to copy: resume, the full list, the cuts."""
    if argv is None:
        return []
    log = shlex.quote(str(report.audit_log)) if report.audit_log is not None else None
    steps: list[str] = []
    if report.dry_run and not report.passes:
        return ["next:", f"  run it: {command_line(argv, drop=('--dry-run',))}"]
    unfinished = _count(report, "failed", "not_attempted")
    halted = report.halt_reason is not None
    if halted or unfinished:
        before = ""
        if report.halt_reason == HaltReason.AUTH_REJECTED:
            before = "fix the credentials (AGORA_CUSTOMER_ID/SECRET), then "
        elif report.halt_reason == HaltReason.AUDIT_WRITE_FAILED:
            before = "make the audit log writable (disk space), then "
        elif report.refused_apps:
            # The same app ID would be refused again: resuming alone cannot help.
            before = (
                f"fix the app ID {', '.join(report.refused_apps)} (wrong, or Media Gateway "
                "not enabled for it: --app-id / AGORA_APP_ID, or the app_id column), then "
            )
        what = f"{unfinished} tasks failed or not attempted" if unfinished else "the rest"
        if report.command == "verify":  # its --resume skips nothing: run it again
            steps.append(f"{before}check again ({what}):")
            steps.append(f"  {command_line(argv)}")
        else:
            steps.append(f"{before}resume ({what}; done pairs are skipped):")
            steps.append(f"  {command_line(argv, add=('--resume',))}")
        if any(a == "-" for a in argv):
            steps.append("  (feed it the same keys on stdin)")
    keys = report.keys
    live = keys.live_streams if keys is not None else 0
    if live and "--disconnect" not in argv and report.command in ("revoke", "rotate"):
        steps.append(f"cut the {live} live streams still running with these keys:")
        steps.append(f"  {command_line(argv, add=('--resume', '--disconnect'))}")
    if log is not None and report.exit_code != EXIT_OK:
        steps.append(f"every failure with its request IDs: revoker report {log}")
    elif log is not None and report.audit_head is not None:
        steps.append(
            f"keep the head for the review: revoker report --verify {log} "
            f"--expect-head {report.audit_head}"
        )
    if steps and _masked_argv(argv)[1]:
        steps.append("  (--key values are masked above: give the same keys again)")
    return ["next:", *("  " + step for step in steps)] if steps else []


def render_text(report: RunReport, argv: Sequence[str] | None = None) -> str:
    # The verdict comes first and again last: on a small terminal a long summary
    # scrolls the first line away.
    lines = [f"revoker {report.command}: {verdict(report)}"]
    if report.audit_log is not None:
        lines.append(f"  run {report.run_id}, audit log {report.audit_log}")
    if report.audit_head is not None:
        lines.append(f"  audit head {report.audit_head} (check with revoker report --verify)")
    lines += plan_lines(report.plan)
    log = shlex.quote(str(report.audit_log)) if report.audit_log is not None else "AUDIT_LOG"
    for totals in report.passes:
        lines += totals_lines(totals, log)
    if report.keys is not None:
        lines += key_lines(report.keys)
    if report.unrecorded:
        # All of them, however many: a request ID left out here is lost evidence.
        lines.append(f"NOT RECORDED in the audit log ({len(report.unrecorded)} tasks):")
        for r in report.unrecorded:
            ids = ",".join(r.request_ids) or "-"
            lines.append(
                f"  {r.task.region} {r.task.app_id} {r.task.key_hint} "
                f"{r.task.key_id}: {r.outcome} request_ids={ids}"
            )
        if report.unrecorded_file:
            lines.append(
                f"  their audit lines are saved in {report.unrecorded_file}; add them with "
                f"revoker report --merge-fallback {report.unrecorded_file} {report.audit_log}"
            )
    lines += report.notes
    lines += next_steps(report, argv)
    lines.append(f"revoker {report.command}: {verdict(report)} (exit code {report.exit_code})")
    return printable_lines("\n".join(lines))
