"""``revoker report --format junit``: merged audit logs as JUnit XML.

For GitLab (``artifacts:reports:junit``), Jenkins and other CI test views: a
``testsuite`` per event and region, a ``testcase`` per task named
``region / app / key hint``, and a ``failure`` for every task not done
(the same tasks ``report`` counts as problems), carrying the HTTP status,
the server's message and the request IDs; a key found in no region and never
revoked is a failure of its own (suite "keys found in no region").
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
                f"http_status: {p['http_status']}",
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


def render_junit(report: AuditReport) -> str:
    """The report as a JUnit XML document (UTF-8, with declaration)."""
    groups: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for (event, _app, region, _kid, _sid), record in report.latest.items():
        groups[event][region].append(record)
    root = ET.Element("testsuites", name="revoker")
    total = failures = 0
    for event in sorted(groups, key=event_rank):
        for region in sorted(groups[event], key=_region_rank):
            records = groups[event][region]
            suite = ET.SubElement(root, "testsuite", name=_text(f"{event} {region}"))
            bad = sum(_testcase(suite, event, region, r) for r in records)
            suite.set("tests", str(len(records)))
            suite.set("failures", str(bad))
            suite.set("errors", "0")
            total, failures = total + len(records), failures + bad
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
    unfinished = report.unfinished_runs()
    if unfinished:
        # Tasks of a killed run may be in no log: say so as a failure of its own.
        suite = ET.SubElement(root, "testsuite", name="runs", tests="1", errors="0")
        suite.set("failures", "1")
        case = ET.SubElement(suite, "testcase", name="every run finished", classname="revoker")
        failure = ET.SubElement(case, "failure", message=_text(report.verdict()), type="unfinished")
        failure.text = _text("\n".join(f"run_id: {run.get('run_id')}" for run in unfinished))
        total, failures = total + 1, failures + 1
    root.set("tests", str(total))
    root.set("failures", str(failures))
    root.set("errors", "0")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
