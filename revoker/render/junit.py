"""``revoker report --format junit``: merged audit logs as JUnit XML.

For GitLab (``artifacts:reports:junit``), Jenkins and other CI test views: a
``testsuite`` per event and region, a ``testcase`` per task named
``region / app / key hint``, and a ``failure`` for every task not done
(the same tasks ``report`` counts as problems), carrying the HTTP status,
the server's message and the request IDs; a key found in no region and never
revoked is a failure of its own (suite "keys found in no region"). Tasks a
halted run never started are one failing testcase per run and region, naming
how many; a run that never finished, or recorded fewer tasks than it planned,
is a failure in suite "runs": JUnit never passes what the text report fails.
"""

from __future__ import annotations

import re

# Only builds XML, never parses any: the parser attacks bandit warns of do not apply.
import xml.etree.ElementTree as ET  # nosec B405
from collections import defaultdict
from typing import Any

from revoker.audit.merge import AuditReport, event_rank, problem_fields, record_is_problem
from revoker.models import REGIONS

# Characters XML 1.0 cannot carry at all; a hostile server message may hold them.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: Any) -> str:
    return _NOT_XML.sub("\ufffd", "" if value is None else str(value))


def _seconds(record: dict[str, Any]) -> str:
    ms = record.get("duration_ms")
    return f"{ms / 1000:.3f}" if isinstance(ms, int | float) else "0"


def _testcase(suite: ET.Element, event: str, region: str, record: dict[str, Any]) -> bool:
    """Add one task's testcase; True if it is a failure."""
    name = f"{region} / {record.get('app_id')} / {record.get('key_hint')}"
    if record.get("sid"):
        name += f" / sid {record.get('sid')}"
    case = ET.SubElement(
        suite,
        "testcase",
        name=_text(name),
        classname=_text(f"revoker.{event}.{region}"),
        time=_seconds(record),
    )
    if not record_is_problem(record):
        return False
    p = problem_fields(record)
    message = f"{p['outcome']}: HTTP {p['http_status'] or '-'}: {p['message'] or ''}".rstrip(": ")
    failure = ET.SubElement(case, "failure", message=_text(message), type=_text(p["outcome"]))
    failure.text = _text(
        "\n".join(
            [
                f"event: {p['event']}",
                f"outcome: {p['outcome']}",
                f"http_status: {p['http_status'] or '-'}",
                f"message: {p['message'] or ''}",
                f"key_id: {p['key_id']}",
                f"request_ids: {', '.join(map(str, p['request_ids'])) or '-'}",
                f"server_request_ids: {', '.join(map(str, p['server_request_ids'])) or '-'}",
                f"run_id: {p['run_id']}",
            ]
        )
    )
    return True


def _region_rank(region: str) -> tuple[int, str]:
    return (REGIONS.index(region) if region in REGIONS else len(REGIONS), region)


def _never_started(suite: ET.Element, event: str, region: str, line: dict[str, Any]) -> None:
    """One failing testcase for the tasks of one halted run never started in a region."""
    count = line["per_region"][region]
    case = ET.SubElement(
        suite,
        "testcase",
        name=_text(f"{region} / {count} tasks never started"),
        classname=_text(f"revoker.{event}.{region}"),
        time="0",
    )
    why = line.get("message") or "the run halted"
    failure = ET.SubElement(
        case,
        "failure",
        message=_text(f"not_attempted: {count} tasks never started: {why}"),
        type="not_attempted",
    )
    failure.text = _text(f"run_id: {line['run_id']}\ntasks: {count}\nresume with --resume")


def _runs_suite(report: AuditReport) -> ET.Element | None:
    """Suite "runs": a killed run (its tasks may be in no log) and a run with task
    lines missing (cut or deleted) are failures of their own; None if neither."""
    suite = ET.Element("testsuite", name="runs", errors="0")
    unfinished = report.unfinished_runs()
    if unfinished:
        case = ET.SubElement(suite, "testcase", name="every run finished", classname="revoker")
        failure = ET.SubElement(case, "failure", message=_text(report.verdict()), type="unfinished")
        failure.text = _text("\n".join(f"run_id: {run.get('run_id')}" for run in unfinished))
    incomplete = report.incomplete_runs()
    if incomplete:
        case = ET.SubElement(
            suite, "testcase", name="every planned task recorded", classname="revoker"
        )
        missing = sum(r["planned"] - r["recorded"] for r in incomplete)
        failure = ET.SubElement(
            case,
            "failure",
            message=_text(
                f"INCOMPLETE: {len(incomplete)} run(s) recorded fewer task lines than they "
                f"planned ({missing} missing): the log was cut or edited"
            ),
            type="incomplete",
        )
        failure.text = _text(
            "\n".join(
                f"run_id: {r.get('run_id')} planned {r['planned']} recorded {r['recorded']}"
                for r in incomplete
            )
        )
    if not len(suite):
        return None
    suite.set("tests", str(len(suite)))
    suite.set("failures", str(len(suite)))
    return suite


def render_junit(report: AuditReport) -> str:
    """The report as a JUnit XML document (UTF-8, with declaration)."""
    groups: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for event, region, record in report.iter_latest():
        groups[event][region].append(record)
    never: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for line in report.pending_not_started():
        for region in line["per_region"]:
            never[line["for_event"]][region].append(line)
            groups[line["for_event"]].setdefault(region, [])
    root = ET.Element("testsuites", name="revoker")
    total = failures = 0
    for event in sorted(groups, key=event_rank):
        for region in sorted(groups[event], key=_region_rank):
            records = groups[event][region]
            suite = ET.SubElement(root, "testsuite", name=_text(f"{event} {region}"))
            bad = sum(_testcase(suite, event, region, r) for r in records)
            for line in never[event][region]:
                _never_started(suite, event, region, line)
            cases = len(records) + len(never[event][region])
            bad += len(never[event][region])
            suite.set("tests", str(cases))
            suite.set("failures", str(bad))
            suite.set("errors", "0")
            total, failures = total + cases, failures + bad
    keys = report.key_verdicts()
    if keys.not_found and not keys.absent_ok:
        # A key no region knew is not revoked: one failure per key, as the text says.
        suite = ET.SubElement(root, "testsuite", name="keys found in no region", errors="0")
        shown = keys.samples
        for found in shown:
            case = ET.SubElement(
                suite,
                "testcase",
                name=_text(f"{found.app_id} / {found.key_hint}"),
                classname="revoker.keys",
            )
            failure = ET.SubElement(
                case,
                "failure",
                message=_text(
                    f"not found in {','.join(found.regions)} and never revoked in these logs"
                ),
                type="not_found",
            )
            failure.text = _text(
                f"key_id: {found.key_id}\nlikely causes: " + "; ".join(keys.causes())
            )
        if keys.not_found > len(shown):
            case = ET.SubElement(
                suite, "testcase", name="more keys found in no region", classname="revoker.keys"
            )
            more = keys.not_found - len(shown)
            failure = ET.SubElement(
                case, "failure", message=f"{more} more keys not found", type="not_found"
            )
        count = len(suite)
        suite.set("tests", str(count))
        suite.set("failures", str(count))
        total, failures = total + count, failures + count
    runs = _runs_suite(report)
    if runs is not None:
        root.append(runs)
        total, failures = total + len(runs), failures + len(runs)
    root.set("tests", str(total))
    root.set("failures", str(failures))
    root.set("errors", "0")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
