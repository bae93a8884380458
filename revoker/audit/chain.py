"""The audit log's hash chain: each line's ``prev`` and checking it afterwards.

``prev`` is the SHA-256 (hex) of the previous whole line of the file, exactly
as written (its bytes without the newline). The first line of a file chains
to :data:`GENESIS` (64 zeros). A whole line is one that parses as a JSON
object; anything else is a torn line (a crash mid-write) that the chain
skips, so a resumed run chains on from the last whole line. The head of a
log is the hash of its last whole line.

A crash tears only the last line of a log, so a torn line is accepted only
there, or right before a line whose ``after_torn`` holds its hash: the writer
that found it at the end of the log and appended after it says so. Any other
torn line was put there by hand.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from revoker.errors import AuditLogError
from revoker.jsontext import NestedTooDeep, loads

if TYPE_CHECKING:  # cryptography is imported only when signatures are checked
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

GENESIS = "0" * 64
_TAIL_CHUNK = 64 * 1024


def line_hash(line: bytes) -> str:
    """The hash the next line's ``prev`` holds: SHA-256 hex of the line without newline."""
    return hashlib.sha256(line).hexdigest()


def parse_line(line: bytes) -> dict[str, Any] | None:
    """The JSON object of a whole line, or None for a torn (or otherwise broken) one."""
    try:
        record = loads(line)
    except ValueError:  # NestedTooDeep too: the line is not one revoker wrote
        return None
    return record if isinstance(record, dict) else None


def tail_head(fd: int) -> tuple[str, str | None]:
    """The hash of the last whole line of the open file (GENESIS if there is none),
    and the hash of its last line if that one is torn (else None)."""
    end = os.fstat(fd).st_size
    carry = b""
    torn: str | None = None
    last = True
    while end > 0:
        start = max(0, end - _TAIL_CHUNK)
        block = os.pread(fd, end - start, start) + carry
        lines = block.split(b"\n")
        # The first piece may be the end of a line that starts in an earlier block.
        carry = lines[0] if start > 0 else b""
        for line in reversed(lines if start == 0 else lines[1:]):
            if not line.strip():
                continue
            try:
                record = loads(line)
            except NestedTooDeep:
                # No torn write makes one: appending after it would chain to a forgery.
                raise AuditLogError(
                    "its last line is JSON nested too deep to be an audit line: "
                    "not a revoker audit log (give another --audit-log)"
                ) from None
            except ValueError:
                record = None
            if isinstance(record, dict):
                return line_hash(line), torn
            if last:
                torn = line_hash(line)
            last = False
        end = start
    return GENESIS, torn


@dataclass
class ChainReport:
    """What verifying one log found: its head, notes, and the first error if any."""

    path: str
    lines: int = 0
    chained: int = 0
    unchained: int = 0
    head: str = GENESIS
    runs_signed: int = 0
    # The line of a torn line not yet followed by a whole line (allowed only at the end).
    torn_at: int = 0
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def status(self) -> str:
        if not self.chained:
            return "unchained"
        return "partly unchained" if self.unchained else "chained"

    def fail(self, line: int, reason: str) -> None:
        if self.error is None:
            self.error = f"{self.path}:{line}: {reason}"


def verify_log(path: Path, public_key: Ed25519PublicKey | None = None) -> ChainReport:
    """Recompute the chain of one log (AuditLogError, exit 2, if it cannot be read).

    Stops at the first broken link. With ``public_key`` every ``run_finished``
    must carry a good signature, and the log must end with one.
    """
    walker = ChainWalker(str(path), public_key)
    try:
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                line = raw[:-1] if raw.endswith(b"\n") else raw
                if line.strip():
                    walker.line(number, line, parse_line(line))
    except OSError as exc:
        raise AuditLogError(f"{path}: cannot read audit log ({exc.strerror})") from None
    return walker.finish()


class ChainWalker:
    """Follows one log's chain line by line as its reader hands them over, so the
    report and its check share one pass over the file (logs can be large)."""

    def __init__(self, path: str, public_key: Ed25519PublicKey | None = None) -> None:
        self.report = ChainReport(path)
        self.public_key = public_key
        self._run_lines: dict[str, int] = {}
        self._last_whole = 0
        self._last_signed = 0
        self._torn_hash = ""
        self._stopped = False

    def line(self, number: int, line: bytes, record: dict[str, Any] | None) -> None:
        """One non-blank line (without its newline) and its JSON object, None if torn."""
        if self._stopped:
            return
        report = self.report
        report.lines = number
        if record is None:
            if report.torn_at:
                self._fail(report.torn_at, _TORN_INSIDE)
                return
            report.torn_at, self._torn_hash = number, line_hash(line)
            return
        if report.torn_at:
            if record.get("after_torn") != self._torn_hash:
                self._fail(report.torn_at, _TORN_INSIDE)
                return
            report.notes.append(
                f"{report.path}:{report.torn_at}: torn line skipped (a crash mid-write; "
                f"line {number} was appended after it by a later run)"
            )
            report.torn_at = 0
        prev = record.get("prev")
        if prev is None:
            if report.chained:
                self._fail(number, "no prev: the chain was broken here (a line edited or forged)")
                return
            report.unchained += 1
        elif prev != report.head:
            self._fail(number, _broken_link(Path(report.path), prev, number, self._last_whole))
            return
        else:
            report.chained += 1
        report.head = line_hash(line)
        self._last_whole = number
        run_id = str(record.get("run_id"))
        self._run_lines[run_id] = self._run_lines.get(run_id, 0) + 1
        if record.get("event") == "run_finished" and prev is not None:
            reason = _check_finished(record, line, self._run_lines[run_id], self.public_key)
            if reason:
                self._fail(number, reason)
                return
            if "signature" in record:
                report.runs_signed += 1
                self._last_signed = number

    def _fail(self, line: int, reason: str) -> None:
        self.report.fail(line, reason)
        self._stopped = True

    def finish(self) -> ChainReport:
        """The report, once every line was handed over."""
        report = self.report
        if report.error is None and report.torn_at:
            report.notes.append(
                f"{report.path}:{report.torn_at}: torn last line skipped (a crash mid-write, "
                "or lines made unreadable by hand: only --expect-head tells them apart)"
            )
        unsigned_tail = self.public_key is not None and self._last_signed != self._last_whole
        if report.error is None and unsigned_tail:
            report.fail(
                self._last_whole,
                "not covered by a signature: the log does not end with a signed "
                "run_finished (a run that never finished, or lines added later)",
            )
        return report


_TORN_INSIDE = (
    "torn line inside the log: a crash tears only the last line, and a later run "
    "appending after one records it (after_torn); this one was put here or made unreadable"
)


def _broken_link(path: Path, prev: Any, number: int, last_whole: int) -> str:
    """The reason for a broken link, naming the earlier line ``prev`` points at if any."""
    where = f"line {last_whole}" if last_whole else "the start of the file"
    reason = f"prev does not match the hash of {where}"
    if prev == GENESIS:
        return f"{reason} but the start of the file: lines were inserted before it"
    with path.open("rb") as handle:  # a second pass, only once a link is broken
        for earlier, raw in enumerate(handle, start=1):
            if earlier >= number:
                break
            if earlier != last_whole and line_hash(raw.rstrip(b"\n")) == prev:
                return f"{reason} but of line {earlier}: a line was deleted, duplicated or moved"
    return f"{reason}: that line was edited, or a line was inserted or removed here"


def _check_finished(
    record: dict[str, Any], line: bytes, written: int, public_key: Ed25519PublicKey | None
) -> str | None:
    """Why a chained run_finished line fails its own checks (None if it passes)."""
    run_id = str(record.get("run_id"))
    lines = record.get("lines")
    if lines is not None and lines != written:
        return f"run {run_id} says it wrote {lines} lines, the log holds {written} of them"
    if public_key is None:
        return None
    from revoker.audit import signing

    if "signature" not in record:
        return f"run {run_id} is not signed"
    parts = signing.split_signature(line)
    if parts is None or not isinstance(lines, int):
        return f"run {run_id}: malformed signature"
    body, signature = parts
    if not signing.verify(public_key, signature, run_id, body, lines):
        return f"run {run_id}: bad signature (the line was changed, or another key signed it)"
    return None
