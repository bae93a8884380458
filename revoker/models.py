"""Plain data shared by every stage: regions, tasks, outcomes, results."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Any

from revoker.errors import UsageError
from revoker.redact import MASK

REGIONS: tuple[str, ...] = ("na", "eu", "ap", "cn")
# A list of regions is comma-separated; ";" and "|" separate too, so a CSV cell
# (where a bare "," would end the cell) can hold one without quotes.
_REGION_SEPARATORS = str.maketrans({";": ",", "|": ","})


def parse_regions(value: str | None) -> tuple[str, ...]:
    """``na,EU`` (or ``na;eu``, ``na|eu``) -> ``("na", "eu")``, in :data:`REGIONS` order.

    Case-insensitive; blank or None means every region. :class:`UsageError` for a
    list that names no region (``,``) or an unknown one.
    """
    if value is None or not value.strip():
        return REGIONS
    wanted = {p.strip().lower() for p in value.translate(_REGION_SEPARATORS).split(",")}
    wanted.discard("")
    if not wanted:
        raise UsageError(f"no region given in {value!r} (expected some of {', '.join(REGIONS)})")
    unknown = sorted(wanted - set(REGIONS))
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        raise UsageError(f"unknown region {names} (expected {', '.join(REGIONS)})")
    return tuple(r for r in REGIONS if r in wanted)


class Outcome(StrEnum):
    """What happened to one (app_id, region, key) task."""

    REVOKED = "revoked"
    ABSENT = "absent"
    PRESENT = "present"
    FAILED = "failed"
    NOT_ATTEMPTED = "not_attempted"
    DISCONNECTED = "disconnected"
    ROTATED = "rotated"  # old key deleted, replacement created and saved
    UNKNOWN = "unknown"  # a create's answer was lost: a human must look, never a second create


DONE_OUTCOMES = frozenset({Outcome.REVOKED, Outcome.ABSENT, Outcome.ROTATED})

# For each kind of task line (its event): the outcomes that are a success, then the
# outcomes that are a problem, each in the order a summary shows them. An event not
# listed here follows ``revoke``.
_EVENT_OUTCOMES: dict[str, tuple[tuple[Outcome, ...], tuple[Outcome, ...]]] = {
    "revoke": ((Outcome.REVOKED, Outcome.ABSENT), (Outcome.FAILED, Outcome.NOT_ATTEMPTED)),
    "verify": ((Outcome.ABSENT,), (Outcome.PRESENT, Outcome.FAILED, Outcome.NOT_ATTEMPTED)),
    "query": ((Outcome.PRESENT, Outcome.ABSENT), (Outcome.FAILED, Outcome.NOT_ATTEMPTED)),
    "disconnect": (
        (Outcome.DISCONNECTED, Outcome.ABSENT),
        (Outcome.FAILED, Outcome.NOT_ATTEMPTED),
    ),
    "rotate": (
        (Outcome.ROTATED, Outcome.ABSENT),
        (Outcome.FAILED, Outcome.UNKNOWN, Outcome.NOT_ATTEMPTED),
    ),
}


def ok_outcomes(event: str) -> tuple[Outcome, ...]:
    """The outcomes of an ``event`` line that count as success (for the exit code too)."""
    return _EVENT_OUTCOMES.get(event, _EVENT_OUTCOMES["revoke"])[0]


def event_outcomes(event: str) -> tuple[Outcome, ...]:
    """Every outcome an ``event`` line usually has, successes first (a summary's columns)."""
    ok, problems = _EVENT_OUTCOMES.get(event, _EVENT_OUTCOMES["revoke"])
    return ok + problems


def is_problem(event: str, outcome: str | None) -> bool:
    """Whether an ``event`` line with ``outcome`` needs attention (not a success)."""
    return outcome not in ok_outcomes(event)


@lru_cache(maxsize=1024)  # a key's pairs (one per region) are recorded close together
def key_id(key: str) -> str:
    """Stable, non-reversible identifier of a key for logs: ``sha256:`` + 32 hex."""
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def done_digest(app_id: str, region: str, kid: str) -> int:
    """A 128-bit digest of one (app ID, region, key ID) pair: all ``--resume`` keeps
    of a done pair, so resuming a huge run does not hold every record."""
    data = f"{app_id}\x00{region}\x00{kid}".encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=16).digest(), "big")


def key_hint(key: str) -> str:
    """First 4 and last 3 characters; ``***`` for keys shorter than 12."""
    if len(key) < 12:
        return MASK
    return f"{key[:4]}...{key[-3:]}"


@dataclass(frozen=True, slots=True)
class Task:
    """One request to make: a key in one region of one app."""

    app_id: str
    region: str
    key: str

    @property
    def key_id(self) -> str:
        return key_id(self.key)

    @property
    def key_hint(self) -> str:
        return key_hint(self.key)


@dataclass(slots=True)
class Attempt:
    """One HTTP attempt of a task."""

    request_id: str
    host: str
    status: int | None = None
    error: str | None = None
    ms: int = 0
    server_request_id: str | None = None

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"request_id": self.request_id, "host": self.host}
        if self.status is not None:
            record["status"] = self.status
        if self.error is not None:
            record["error"] = self.error
        record["ms"] = self.ms
        if self.server_request_id is not None:
            record["server_request_id"] = self.server_request_id
        return record


@dataclass(slots=True)
class TaskResult:
    """The end of one task: its outcome and every attempt that led there."""

    task: Task
    outcome: Outcome
    attempts: list[Attempt] = field(default_factory=list)
    duration_ms: int = 0
    message: str | None = None
    data: dict[str, Any] | None = None
    # Extra fields for this task's own audit line (e.g. prune's ``matched``).
    audit_fields: dict[str, Any] = field(default_factory=dict)
    # Further audit lines the task produced (e.g. ``disconnect`` per SID), written after it.
    follow_ups: list[FollowUp] = field(default_factory=list)
    # Work that goes on after the task's line is written, off the worker (so it delays
    # no other task): its follow-up lines are written when it ends.
    later: Callable[[], Awaitable[list[FollowUp]]] | None = None
    # False: the task writes no line of its own, only its follow-ups (a resumed pair).
    own_line: bool = True

    @property
    def last(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def http_status(self) -> int | None:
        last = self.last
        return last.status if last else None

    @property
    def request_ids(self) -> list[str]:
        """Our request ID of every attempt, in order (the last one is the answer's)."""
        return [attempt.request_id for attempt in self.attempts]

    @property
    def request_id(self) -> str | None:
        """Our request ID of the last attempt (None: nothing was sent)."""
        last = self.last
        return last.request_id if last else None

    @property
    def server_request_id(self) -> str | None:
        """The server's request ID of the last attempt, if it gave one."""
        last = self.last
        return last.server_request_id if last else None


@dataclass(slots=True)
class FollowUp:
    """One more audit line a task produced: ``event``, its own result and extra fields."""

    event: str
    result: TaskResult
    fields: dict[str, Any] = field(default_factory=dict)
