"""Summaries for stdout: text for people, JSON for machines."""

from __future__ import annotations

import json

from revoker.engine.planner import PlanStats
from revoker.engine.pool import Totals
from revoker.engine.run import RunReport, verdict
from revoker.models import REGIONS
from revoker.redact import printable_lines
from revoker.render.table import table

MAX_FAILURES_SHOWN = 20
COLUMNS = {
    "revoke": ["revoked", "absent", "failed", "not_attempted"],
    "verify": ["absent", "present", "failed", "not_attempted"],
    "query": ["present", "absent", "failed", "not_attempted"],
    "disconnect": ["disconnected", "absent", "failed", "not_attempted"],
    "rotate": ["rotated", "absent", "failed", "unknown", "not_attempted"],
}


def render(report: RunReport, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=2, sort_keys=False)
    return render_text(report)


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
    columns = list(COLUMNS.get(totals.event, COLUMNS["revoke"]))
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
            ids = ",".join(a.request_id for a in r.attempts) or "-"
            lines.append(
                f"  {r.task.region} {r.task.app_id} {r.task.key_hint} "
                f"{r.task.key_id}: {r.outcome} request_ids={ids}"
            )
        if report.unrecorded_file:
            lines.append(f"  their audit lines are saved in {report.unrecorded_file}")
    lines += report.notes
    lines.append(f"exit code {report.exit_code}")
    return printable_lines("\n".join(lines))
