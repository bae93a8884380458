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

SCANNERS = ("gitleaks", "trufflehog")

# Where each format keeps the secret and the rule that found it.
_FIELDS = {"gitleaks": ("Secret", "RuleID"), "trufflehog": ("Raw", "DetectorName")}
REDACTED_REPORT = "this report was written with --redact: the secrets are not in it"
_REDACTED_SECRET = "REDACTED"  # noqa: S105  # nosec B105 - gitleaks's stand-in for a secret


def _rule_names(fmt: str, finding: dict[str, Any], rule: str) -> set[str]:
    """The names a ``--rule`` may give for a finding (lower case).

    TruffleHog names every custom detector ``CustomRegex`` in ``DetectorName``
    and keeps the detector's own name in ``ExtraData.name``.
    """
    names = {rule.lower()}
    extra = finding.get("ExtraData") if fmt == "trufflehog" else None
    if isinstance(extra, dict) and isinstance(extra.get("name"), str):
        names.add(extra["name"].lower())
    return names


MAX_RULES_SEEN = 10


def _shown_name(fmt: str, finding: dict[str, Any], rule: str) -> str:
    """How a finding's rule is named to the user (a custom detector by its own name)."""
    extra = finding.get("ExtraData") if fmt == "trufflehog" else None
    if isinstance(extra, dict) and isinstance(extra.get("name"), str):
        return f"{extra['name'][:64]!r} ({rule[:64]})"
    return repr(rule[:64])


def _redacted(secret: str) -> bool:
    """gitleaks --redact writes REDACTED for the secret; --redact=N keeps the first part
    and appends "..."."""
    return secret == _REDACTED_SECRET or secret.endswith("...")


def iter_findings(
    label: str,
    stream: IO[str],
    fmt: str,
    rules: tuple[str, ...] = (),
    seen: set[str] | None = None,
) -> Iterator[tuple[int, str]]:
    """``(position, secret)`` for every finding of a selected rule.

    The position is the finding's index (1-based) in a gitleaks report and the
    line number in TruffleHog's JSON lines. ``rules`` (compared without case)
    keeps only findings of those rule IDs / detector names (TruffleHog: its
    ``DetectorName`` or its custom detector's ``ExtraData.name``); empty keeps
    all; ``seen`` collects the rule names of the findings left out (a few), so
    a rule that matched nothing can be told what the report holds. Raises
    InputError for a report that is not ``fmt``, and for a gitleaks report
    written with ``--redact`` (as a whole: its secrets are not in it).
    """
    if fmt not in _FIELDS:
        raise InputError(label, 1, f"unknown scanner format {fmt!r}")
    wanted = {r.lower() for r in rules}
    secret_field, rule_field = _FIELDS[fmt]
    findings = _gitleaks(label, stream) if fmt == "gitleaks" else _trufflehog(label, stream)
    for position, finding in findings:
        secret, rule = finding.get(secret_field), finding.get(rule_field)
        if not isinstance(secret, str) or not isinstance(rule, str):
            raise InputError(
                label,
                position,
                f"not a {fmt} finding: needs string fields {secret_field!r} and {rule_field!r}",
            )
        names = _rule_names(fmt, finding, rule)
        if wanted and not wanted & names:
            if seen is not None and len(seen) < MAX_RULES_SEEN:
                seen.add(_shown_name(fmt, finding, rule))
            continue
        yield position, secret


def _gitleaks(label: str, stream: IO[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        report = json.load(stream)
    except json.JSONDecodeError as exc:
        raise InputError(label, exc.lineno, f"not a gitleaks JSON report ({exc.msg})") from None
    if not isinstance(report, list):
        raise InputError(label, 1, "not a gitleaks JSON report (expected a list of findings)")
    for index, finding in enumerate(report, start=1):
        if not isinstance(finding, dict):
            raise InputError(label, index, "not a gitleaks finding (expected an object)")
        secret = finding.get("Secret")
        # --redact covers every finding: one is enough to know, whatever its rule.
        if isinstance(secret, str) and _redacted(secret):
            raise InputError(
                label, index, f"{REDACTED_REPORT} (run gitleaks again with --redact=0)"
            )
    yield from enumerate(report, start=1)


def _trufflehog(label: str, stream: IO[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            finding = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(
                label, number, f"not TruffleHog JSON lines ({exc.msg}); run it with --json"
            ) from None
        if not isinstance(finding, dict):
            raise InputError(label, number, "not a TruffleHog finding (expected an object)")
        yield number, finding
