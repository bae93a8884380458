"""``revoker report --merge-fallback FILE LOG``: put the lines a full disk kept out
of an audit log back into it, as the writer would have.

A run whose audit log refused lines saves them to a fallback file (see
:func:`revoker.audit.log.save_unrecorded`); those lines have no ``prev``, so
appending them by hand breaks the chain. Merging appends each one chained to
the log's head, inside a run of its own (``command: "merge-fallback"``) whose
``run_finished`` is signed with ``--sign-key`` like any run's. Each merged line
keeps its own ``run_id`` and ``ts``: it is still the line of the run that did
the work. A file already merged is refused, so no line is recorded twice.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from revoker.audit.log import AuditLog, iter_records
from revoker.errors import AuditLogError, InputError, UsageError
from revoker.jsontext import loads

if TYPE_CHECKING:
    from revoker.audit.signing import Signer

COMMAND = "merge-fallback"
# Fields the writer adds to a line when it appends it: not part of what was saved.
_CHAIN_FIELDS = ("prev", "after_torn")


@dataclass(frozen=True)
class Merged:
    """What a merge appended: how many lines, under which run, and the new head."""

    lines: int
    run_id: str
    head: str


def _saved(record: dict[str, Any]) -> str:
    """A line as the fallback file saved it (chain fields left out), to compare by."""
    kept = {k: v for k, v in record.items() if k not in _CHAIN_FIELDS}
    return json.dumps(kept, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def read_fallback(path: Path) -> list[dict[str, Any]]:
    """The audit lines of a fallback file; InputError (FILE:LINE, exit 2) for a line
    that is not one, AuditLogError if it cannot be read or holds none."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AuditLogError(f"{path}: cannot read fallback file ({exc.strerror})") from None
    records = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            record = loads(raw)
        except ValueError:  # NestedTooDeep too
            raise InputError(str(path), number, "not a JSON audit line") from None
        if not (
            isinstance(record, dict)
            and isinstance(record.get("event"), str)
            and isinstance(record.get("run_id"), str)
            and record.get("event") not in ("run_started", "run_finished")
        ):
            raise InputError(str(path), number, "not an audit line of a run's work")
        records.append(record)
    if not records:
        raise AuditLogError(f"{path}: no audit lines to merge")
    return records


def merge_fallback(fallback: Path, log_path: Path, *, signer: Signer | None = None) -> Merged:
    """Append the fallback file's lines to ``log_path``, chained (and signed with ``signer``)."""
    if fallback.exists() and log_path.exists() and fallback.samefile(log_path):
        raise UsageError(f"{fallback}: the fallback file is the audit log itself")
    if not log_path.is_file():
        raise AuditLogError(f"{log_path}: no such audit log (give the log the run wrote)")
    records = read_fallback(fallback)
    wanted = {_saved(r) for r in records}
    run_ids = {r["run_id"] for r in records}
    for record in iter_records(log_path):
        if record.get("run_id") in run_ids and _saved(record) in wanted:
            raise UsageError(
                f"{fallback}: already merged into {log_path} (its lines are in the log); "
                "nothing appended"
            )
    run_id = str(uuid.uuid4())
    audit = AuditLog.open(log_path, run_id, signer=signer)
    try:
        audit.run_started(COMMAND, {"fallback": str(fallback)}, {"lines": len(records)})
        for record in records:
            audit.append_line({k: v for k, v in record.items() if k not in _CHAIN_FIELDS})
        audit.run_finished(command=COMMAND, exit_code=0, halt_reason=None, merged=len(records))
    finally:
        audit.close()
    return Merged(len(records), run_id, audit.head)
