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
from revoker.jsontext import NestedTooDeep, loads

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


CHUNK = 1 << 16  # characters read at a time; doubled while one finding spans more
_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\n\r"


def _gitleaks(label: str, stream: IO[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """The findings of a gitleaks report (one JSON array), one at a time.

    Streamed: memory holds about one finding and one chunk of text, whatever the
    report's size. Errors name the report's line, as ``json.load``'s would.
    """
    reader = _ArrayReader(label, stream)
    for index, finding in enumerate(reader, start=1):
        if not isinstance(finding, dict):
            raise InputError(label, index, "not a gitleaks finding (expected an object)")
        secret = finding.get("Secret")
        # --redact covers every finding: one is enough to know, whatever its rule.
        if isinstance(secret, str) and _redacted(secret):
            raise InputError(
                label, index, f"{REDACTED_REPORT} (run gitleaks again with --redact=0)"
            )
        yield index, finding


class _ArrayReader:
    """The elements of a JSON array read from a text stream chunk by chunk."""

    def __init__(self, label: str, stream: IO[str]) -> None:
        self.label = label
        self.stream = stream
        self.buffer = ""
        self.pos = 0
        self.line = 1  # the line of buffer[0] in the report
        self.eof = False
        self.want = CHUNK

    def _more(self) -> bool:
        """Read another chunk (dropping what was parsed); False at the end."""
        if self.eof:
            return False
        done = self.buffer[: self.pos]
        self.line += done.count("\n")
        chunk = self.stream.read(self.want)
        self.buffer = self.buffer[self.pos :] + chunk
        self.pos = 0
        self.eof = not chunk
        return bool(chunk)

    def _skip(self) -> str:
        """The next non-whitespace character (not consumed); "" at the end."""
        while True:
            while self.pos < len(self.buffer) and self.buffer[self.pos] in _WHITESPACE:
                self.pos += 1
            if self.pos < len(self.buffer):
                return self.buffer[self.pos]
            if not self._more():
                return ""

    def _fail(self, message: str, at: int | None = None) -> InputError:
        at = self.pos if at is None else at
        line = self.line + self.buffer.count("\n", 0, at)
        return InputError(self.label, line, f"not a gitleaks JSON report ({message})")

    def _value(self) -> Any:
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buffer, self.pos)
            except json.JSONDecodeError as exc:
                # Cut by the chunk's end (an open string, a literal, an escape): read on.
                cut = exc.pos >= len(self.buffer) - 16 or exc.msg.startswith("Unterminated")
                if cut and self._more():
                    self.want = min(self.want * 2, 1 << 24)
                    continue
                raise self._fail(exc.msg, exc.pos) from None
            except RecursionError:
                raise self._fail("nested too deeply") from None
            if end == len(self.buffer) and not self.eof and self._more():
                continue  # a number or literal may go on in the next chunk
            self.pos = end
            self.want = CHUNK
            return value

    def __iter__(self) -> Iterator[Any]:
        first = self._skip()
        if first != "[":
            if first == "":
                raise self._fail("Expecting value")
            self._value()  # a malformed document says why; a well-formed one is no list
            raise InputError(
                self.label, 1, "not a gitleaks JSON report (expected a list of findings)"
            )
        self.pos += 1
        if self._skip() == "]":
            self.pos += 1
        else:
            while True:
                if self._skip() == "":
                    raise self._fail("Expecting value")
                yield self._value()
                following = self._skip()
                self.pos += 1
                if following == "]":
                    break
                if following != ",":
                    raise self._fail("Expecting ',' delimiter", self.pos - 1)
        if self._skip() != "":
            raise self._fail("Extra data")


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
