"""Positive evidence per key: was it ever deleted, according to the audit log?

A key answered "not found" in every region was either deleted before (by an
earlier run recorded in this log) or never named a real key (a typo, another
app ID, a redacted scanner finding). Only the log can tell the two apart, so
the run's summary and ``revoker report`` both ask these functions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Container
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from revoker.audit.log import iter_records

# The events whose lines may record a DELETE of a key.
DELETING_EVENTS = ("revoke", "rotate")


@lru_cache(maxsize=1024)  # a key's pairs (one per region) are told to the ledger in a row
def key_digest(app_id: str, key_id: str) -> int:
    """A 64-bit digest of one (app ID, key ID): what per-key bookkeeping holds."""
    data = f"{app_id}\x00{key_id}".encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def record_deleted_key(record: dict[str, Any]) -> bool:
    """Whether a task line proves a DELETE of its key succeeded (the API answered 200).

    ``revoke`` lines say so by their outcome; a ``rotate`` line by its outcome
    ``rotated`` or by its ``delete`` step (a key not stored in a region is still
    deleted there, and a refused create does not undo a DELETE).
    """
    event = record.get("event")
    if event == "revoke":
        return record.get("outcome") == "revoked"
    if event == "rotate" and record.get("phase") in (None, "result"):
        step = record.get("delete")
        deleted = isinstance(step, dict) and step.get("outcome") == "revoked"
        return deleted or record.get("outcome") == "rotated"
    return False


@dataclass
class LogEvidence:
    """What an audit log says about some keys: which were deleted (digest to app ID),
    and whether any run in it never finished (killed between a DELETE's answer and
    its line?)."""

    deleted: dict[int, str]
    unfinished_runs: int


def deleted_keys(
    path: Path,
    wanted: Container[int],
    *,
    skip_run: str | None = None,
    own_line: Callable[[dict[str, Any]], None] | None = None,
) -> LogEvidence:
    """Of the ``wanted`` key digests (:func:`key_digest`), those some line of the log at
    ``path`` shows deleted; and how many runs other than ``skip_run`` never finished.
    ``own_line`` is shown every line of ``skip_run`` on the way (read once for both)."""
    deleted: dict[int, str] = {}
    started: set[str] = set()
    finished: set[str] = set()
    if not path.exists():
        return LogEvidence(deleted, 0)
    for record in iter_records(path):
        event = record.get("event")
        if event == "run_started":
            started.add(str(record.get("run_id")))
        elif event == "run_finished":
            finished.add(str(record.get("run_id")))
        else:
            if own_line is not None and skip_run is not None and record.get("run_id") == skip_run:
                own_line(record)
            if event in DELETING_EVENTS and record_deleted_key(record):
                app_id = str(record.get("app_id"))
                digest = key_digest(app_id, str(record.get("key_id")))
                if digest in wanted:
                    deleted[digest] = app_id
    started.discard(str(skip_run))
    return LogEvidence(deleted, len(started - finished))
