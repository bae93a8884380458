"""Summaries for stdout: text for people, JSON for machines."""

from __future__ import annotations

import json
from typing import Any

from revoker.errors import EXIT_OK
from revoker.models import REGIONS, event_outcomes
from revoker.redact import printable_lines
from revoker.render.table import table
from revoker.results import HaltReason, PlanStats, RunReport, Totals

MAX_FAILURES_SHOWN = 20


def render(report: RunReport, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report_dict(report), indent=2, sort_keys=False)
    return render_text(report)


def report_dict(report: RunReport) -> dict[str, Any]:
    """The report's facts with its verdict sentence, right after the exit code."""
    facts = list(report.to_dict().items())
    at = next(i for i, (name, _) in enumerate(facts) if name == "exit_code") + 1
    return dict([*facts[:at], ("verdict", verdict(report)), *facts[at:]])


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


def totals_lines(totals: Totals) -> list[str]:
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
        lines.append(f"  failures (first {min(len(totals.failures), MAX_FAILURES_SHOWN)}):")
        for f in totals.failures[:MAX_FAILURES_SHOWN]:
            lines.append(
                f"    {f['region']} {f['app_id']} {f['key_hint']} {f['key_id']}: "
                f"HTTP {f['http_status']} {f['message'] or ''} "
                f"request_ids={','.join(f['request_ids'][-3:])}"
            )
    return lines


def render_text(report: RunReport) -> str:
    lines = [f"revoker {report.command}: {verdict(report)}"]
    if report.audit_log is not None:
        lines.append(f"  run {report.run_id}, audit log {report.audit_log}")
    if report.audit_head is not None:
        lines.append(f"  audit head {report.audit_head} (check with revoker report --verify)")
    lines += plan_lines(report.plan)
    for totals in report.passes:
        lines += totals_lines(totals)
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
            lines.append(f"  their audit lines are saved in {report.unrecorded_file}")
    lines += report.notes
    lines.append(f"exit code {report.exit_code}")
    return printable_lines("\n".join(lines))
