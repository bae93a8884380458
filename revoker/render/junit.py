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

import contextlib
import re
import tempfile

# Only builds XML, never parses any: the parser attacks bandit warns of do not apply.
import xml.etree.ElementTree as ET  # nosec B405
from collections import defaultdict
from collections.abc import Iterator
from typing import IO, Any

from revoker.audit.merge import AuditReport, event_rank, problem_fields, record_is_problem
from revoker.models import REGIONS

# Characters XML 1.0 cannot carry at all; a hostile server message may hold them.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: Any) -> str:
    return _NOT_XML.sub("\ufffd", "" if value is None else str(value))


def _seconds(record: dict[str, Any]) -> str:
    ms = record.get("duration_ms")
    return f"{ms / 1000:.3f}" if isinstance(ms, int | float) else "0"


def _testcase(event: str, region: str, record: dict[str, Any]) -> tuple[ET.Element, bool]:
    """One task's testcase, and whether it is a failure."""
    name = f"{region} / {record.get('app_id')} / {record.get('key_hint')}"
    if record.get("sid"):
        name += f" / sid {record.get('sid')}"
    case = ET.Element(
        "testcase",
        name=_text(name),
        classname=_text(f"revoker.{event}.{region}"),
        time=_seconds(record),
    )
    if not record_is_problem(record):
        return case, False
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
    return case, True


def _region_rank(region: str) -> tuple[int, str]:
    return (REGIONS.index(region) if region in REGIONS else len(REGIONS), region)


def _never_started(event: str, region: str, line: dict[str, Any]) -> ET.Element:
    """One failing testcase for the tasks of one halted run never started in a region."""
    count = line["per_region"][region]
    case = ET.Element(
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
    return case


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
    return "".join(junit_chunks(report))


def junit_chunks(report: AuditReport) -> Iterator[str]:
    """The JUnit document in pieces, in bounded memory whatever the log's length.

    A suite's opening tag carries its counts, known only once every task is read:
    each task's testcase is written to its suite's temporary file as it is read
    (a spooled file, on disk past :data:`_SPOOL_IN_MEMORY` bytes), and the suites
    are put together at the end. Byte for byte what ``ElementTree`` writes for the
    whole tree with ``indent``.
    """
    with contextlib.ExitStack() as stack:
        suites: dict[tuple[str, str], _Suite] = {}

        def suite_of(event: str, region: str) -> _Suite:
            found = suites.get((event, region))
            if found is None:
                spool = stack.enter_context(
                    tempfile.SpooledTemporaryFile(_SPOOL_IN_MEMORY, "w+", encoding="utf-8")
                )
                found = suites[(event, region)] = _Suite(spool)
            return found

        for event, region, record in report.iter_latest():
            suite_of(event, region).add(*_testcase(event, region, record))
        never: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
        for line in report.pending_not_started():
            for region in line["per_region"]:
                never[line["for_event"]][region].append(line)
                suite_of(line["for_event"], region)
        for (event, region), suite in suites.items():
            for line in never[event][region]:
                suite.add(_never_started(event, region, line), True)
        small = [s for s in (_not_found_suite(report), _runs_suite(report)) if s is not None]
        total = sum(s.tests for s in suites.values()) + sum(len(s) for s in small)
        failures = sum(s.failures for s in suites.values()) + sum(len(s) for s in small)
        root = ET.Element(
            "testsuites", name="revoker", tests=str(total), failures=str(failures), errors="0"
        )
        yield "<?xml version='1.0' encoding='utf-8'?>\n"
        if not suites and not small:
            yield ET.tostring(root, encoding="unicode") + "\n"
            return
        yield _open_tag(root)
        for event, region in sorted(
            suites, key=lambda at: (event_rank(at[0]), _region_rank(at[1]))
        ):
            yield from suites[(event, region)].chunks(f"{event} {region}")
        for element in small:
            ET.indent(element, space=_INDENT, level=1)
            yield "\n" + _INDENT + ET.tostring(element, encoding="unicode")
        yield "\n</testsuites>\n"


# Spooled in memory up to this many bytes a suite, then on disk.
_SPOOL_IN_MEMORY = 1 << 20
_INDENT = "  "


def _open_tag(element: ET.Element) -> str:
    """``<tag attr="...">`` of an element with no children, as ``ElementTree`` writes it."""
    return ET.tostring(element, encoding="unicode").removesuffix(" />") + ">"


class _Suite:
    """The testcases of one (event, region), spooled, with their counts."""

    def __init__(self, spool: IO[str]) -> None:
        self.spool = spool
        self.tests = 0
        self.failures = 0

    def add(self, case: ET.Element, failed: bool) -> None:
        ET.indent(case, space=_INDENT, level=2)
        self.spool.write("\n" + _INDENT * 2 + ET.tostring(case, encoding="unicode"))
        self.tests += 1
        self.failures += failed

    def chunks(self, name: str) -> Iterator[str]:
        tag = ET.Element(
            "testsuite",
            name=_text(name),
            tests=str(self.tests),
            failures=str(self.failures),
            errors="0",
        )
        if not self.tests:
            yield "\n" + _INDENT + ET.tostring(tag, encoding="unicode")
            return
        yield "\n" + _INDENT + _open_tag(tag)
        self.spool.seek(0)
        while block := self.spool.read(_SPOOL_IN_MEMORY):
            yield block
        yield "\n" + _INDENT + "</testsuite>"


def _not_found_suite(report: AuditReport) -> ET.Element | None:
    """Suite "keys found in no region": a key no region knew is not revoked, one
    failure per key shown (as the text report says), then one for the rest."""
    keys = report.key_verdicts()
    if not keys.not_found or keys.absent_ok:
        return None
    suite = ET.Element("testsuite", name="keys found in no region", errors="0")
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
        failure.text = _text(f"key_id: {found.key_id}\nlikely causes: " + "; ".join(keys.causes()))
    if keys.not_found > len(shown):
        case = ET.SubElement(
            suite, "testcase", name="more keys found in no region", classname="revoker.keys"
        )
        more = keys.not_found - len(shown)
        ET.SubElement(case, "failure", message=f"{more} more keys not found", type="not_found")
    count = len(suite)
    suite.set("tests", str(count))
    suite.set("failures", str(count))
    return suite
