"""``revoker report``: a merged audit report as text, Markdown or JSON.

The merging itself (latest record per task, problems, verdict) is
:mod:`revoker.audit.merge`; this module only lays it out.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from revoker.audit.merge import AuditReport, event_rank, problem_fields, region_sorted
from revoker.redact import markdown_cell, printable_lines
from revoker.render.summary import app_not_found, key_lines
from revoker.render.table import table

OUTCOME_ORDER = (
    "revoked",
    "rotated",
    "disconnected",
    "present",
    "absent",
    "failed",
    "unknown",
    "not_attempted",
)
MAX_PROBLEMS_SHOWN = 200


def _outcomes(counts: dict[str, Counter[str]]) -> list[str]:
    seen = {o for c in counts.values() for o in c}
    return [o for o in OUTCOME_ORDER if o in seen] + sorted(seen - set(OUTCOME_ORDER))


def render_report(report: AuditReport, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=2)
    if fmt == "markdown":
        return render_markdown(report)
    return render_text(report)


def _count_rows(regions: dict[str, Counter[str]]) -> tuple[list[str], list[list[str]]]:
    outcomes = _outcomes(regions)
    rows = []
    total: Counter[str] = Counter()
    for region, counts in region_sorted(regions).items():
        rows.append([region, *(str(counts.get(o, 0)) for o in outcomes)])
        total.update(counts)
    rows.append(["total", *(str(total.get(o, 0)) for o in outcomes)])
    return outcomes, rows


def render_text(report: AuditReport) -> str:
    lines = [f"revoker report: {report.verdict()}"]
    lines.append(
        f"  {len(report.logs)} logs, {len(report.runs)} runs, {report.task_count} tasks"
        + (f", {report.superseded} older records superseded" if report.superseded else "")
        + (f", {report.torn} torn lines skipped" if report.torn else "")
    )
    counts = report.counts()
    for event in sorted(counts, key=event_rank):
        outcomes, rows = _count_rows(counts[event])
        lines.append(f"{event}:")
        lines += ["  " + line for line in table([["region", *outcomes], *rows])]
    for line in report.pending_not_started():
        lines.append(
            f"not started ({line['for_event']}, run {line['run_id']}): {line['tasks']} tasks, "
            "counted not_attempted; run again with --resume"
        )
    problem_count = report.problem_count
    if problem_count:
        lines.append(f"problems ({problem_count}):")
        for p in (problem_fields(r) for r in report.problems(MAX_PROBLEMS_SHOWN)):
            status = "-" if p["http_status"] is None else p["http_status"]  # nothing answered
            lines.append(
                f"  {p['event']} {p['region']} {p['app_id']} {p['key_hint']} {p['key_id']}"
                + (f" sid={p['sid']}" if p["sid"] else "")
                + f": {p['outcome']} HTTP {status} {p['message'] or ''} "
                f"request_ids={','.join(p['request_ids'][-3:]) or '-'}"
            )
    lines += key_lines(report.key_verdicts(), "these logs")
    lines.append(f"exit code {report.exit_code}")
    return printable_lines("\n".join(lines))


def _md(value: Any) -> str:
    return markdown_cell(value)


def render_markdown(report: AuditReport) -> str:
    """A GitHub-flavoured summary: heading, verdict, region x outcome tables, problems."""
    mark = "❌" if report.exit_code else "✅"
    lines = ["## revoker audit report", "", f"**{mark} {_md(report.verdict())}**", ""]
    lines.append(
        f"{len(report.logs)} audit logs, {len(report.runs)} runs, {report.task_count} tasks"
        + (f", {report.superseded} older records superseded" if report.superseded else "")
        + (f", **{report.torn} torn lines skipped**" if report.torn else "")
        + "."
    )
    counts = report.counts()
    for event in sorted(counts, key=event_rank):
        outcomes, rows = _count_rows(counts[event])
        # Event, region and outcome names come from the log, which may be forged.
        lines += ["", f"### {_md(event)}", ""]
        lines.append("| region | " + " | ".join(_md(o) for o in outcomes) + " |")
        lines.append("|---|" + "---:|" * len(outcomes))
        for index, row in enumerate(rows):
            total = index == len(rows) - 1  # the last row is the total, whatever a region is called
            cells = [f"**{_md(c)}**" if total else _md(c) for c in row]
            lines.append("| " + " | ".join(cells) + " |")
    problem_count = report.problem_count
    if problem_count:
        lines += ["", f"### Problems ({problem_count})", ""]
        lines.append(
            "| event | region | app_id | key | outcome | HTTP | message "
            "| request IDs (sent / echoed) |"
        )
        lines.append("|---|---|---|---|---|---:|---|---|")
        for p in (problem_fields(r) for r in report.problems(MAX_PROBLEMS_SHOWN)):
            key = f"`{_md(p['key_hint'])}` {_md(p['key_id'])}"
            if p["sid"]:
                key += f" sid `{_md(p['sid'])}`"
            ids = ", ".join(p["request_ids"][-3:]) or "-"
            echoed = ", ".join(p["server_request_ids"][-3:]) or "-"
            lines.append(
                f"| {_md(p['event'])} | {_md(p['region'])} | {_md(p['app_id'])} | {key} | "
                f"{_md(p['outcome'])} | {_md(p['http_status'])} | {_md(p['message'])} | "
                f"{_md(ids)} / {_md(echoed)} |"
            )
        if problem_count > MAX_PROBLEMS_SHOWN:
            lines.append(f"\n... and {problem_count - MAX_PROBLEMS_SHOWN} more (see --format json)")
    lines += _markdown_keys(report)
    return "\n".join(lines) + "\n"


def _markdown_keys(report: AuditReport) -> list[str]:
    """The keys found nowhere (never revoked) and the app IDs that are the likely mistake."""
    keys = report.key_verdicts()
    if not keys.not_found:
        return []
    state = "accepted with --absent-ok" if keys.absent_ok else "NOT revoked"
    lines = ["", f"### Not found in any region ({keys.not_found} keys, {state})", ""]
    lines.append(
        f'{keys.not_found} of {keys.keys} keys answered "not found" in every region and no '
        "run in these logs deleted them. Likely causes: " + _md("; ".join(keys.causes())) + "."
    )
    for app_id, count in keys.apps_not_found:
        lines += [
            "",
            f"**App ID `{_md(app_id)}`: {_md(app_not_found(count, 'these logs'))}.**",
        ]
    lines += ["", "| app_id | key | regions |", "|---|---|---|"]
    for found in keys.samples[:MAX_PROBLEMS_SHOWN]:
        lines.append(
            f"| {_md(found.app_id)} | `{_md(found.key_hint)}` {_md(found.key_id)} | "
            f"{_md(','.join(found.regions))} |"
        )
    if keys.not_found > MAX_PROBLEMS_SHOWN:
        lines.append(f"\n... and {keys.not_found - MAX_PROBLEMS_SHOWN} more (see --format json)")
    return lines
