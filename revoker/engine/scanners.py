"""Secret-scanner reports as key input (``--from gitleaks`` / ``--from trufflehog``).

Each finding's secret becomes a key; everything else in the finding is
ignored. A report that is not of the stated format is refused whole (an
:class:`~revoker.errors.InputError` naming the file), so a wrong ``--from``
or a truncated report never turns into a partial run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO, Any

from revoker.errors import InputError
from revoker.jsontext import NestedTooDeep, deep_line, loads

SCANNERS = ("gitleaks", "trufflehog")

# Where each format keeps the secret and the rule that found it.
_FIELDS = {"gitleaks": ("Secret", "RuleID"), "trufflehog": ("Raw", "DetectorName")}


def iter_findings(
    label: str, stream: IO[str], fmt: str, rules: tuple[str, ...] = ()
) -> Iterator[tuple[int, str]]:
    """``(position, secret)`` for every finding of a selected rule.

    The position is the finding's index (1-based) in a gitleaks report and the
    line number in TruffleHog's JSON lines. ``rules`` (compared without case)
    keeps only findings of those rule IDs / detector names; empty keeps all.
    Raises InputError for a report that is not ``fmt``.
    """
    if fmt not in _FIELDS:
        raise InputError(label, 1, f"unknown scanner format {fmt!r}")
    wanted = {r.lower() for r in rules}
    findings = _gitleaks(label, stream) if fmt == "gitleaks" else _trufflehog(label, stream)
    secret_field, rule_field = _FIELDS[fmt]
    for position, finding in findings:
        secret, rule = finding.get(secret_field), finding.get(rule_field)
        if not isinstance(secret, str) or not isinstance(rule, str):
            raise InputError(
                label,
                position,
                f"not a {fmt} finding: needs string fields {secret_field!r} and {rule_field!r}",
            )
        if wanted and rule.lower() not in wanted:
            continue
        yield position, secret


def _gitleaks(label: str, stream: IO[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    text = stream.read()
    try:
        report = loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(label, exc.lineno, f"not a gitleaks JSON report ({exc.msg})") from None
    except NestedTooDeep as exc:
        raise InputError(label, deep_line(text), f"not a gitleaks JSON report ({exc})") from None
    if not isinstance(report, list):
        raise InputError(label, 1, "not a gitleaks JSON report (expected a list of findings)")
    for index, finding in enumerate(report, start=1):
        if not isinstance(finding, dict):
            raise InputError(label, index, "not a gitleaks finding (expected an object)")
        yield index, finding


def _trufflehog(label: str, stream: IO[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            finding = loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(
                label, number, f"not TruffleHog JSON lines ({exc.msg}); run it with --json"
            ) from None
        except NestedTooDeep as exc:
            raise InputError(label, number, f"not a TruffleHog finding ({exc})") from None
        if not isinstance(finding, dict):
            raise InputError(label, number, "not a TruffleHog finding (expected an object)")
        yield number, finding
