"""The lines ``--disconnect`` writes besides the cuts, and what it reads back.

A failed listing or lookup as a ``disconnect`` line, the record of one request
step, the identities an earlier run recorded (for ``--resume``), and the
summary note.
"""

from __future__ import annotations

from collections.abc import Awaitable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from revoker.agora.client import ApiResponse
from revoker.audit.log import AuditLog, answer_fields, iter_records
from revoker.engine.matching import KeyIdentity, PushUrl, parse_push_url
from revoker.engine.sched.calls import call_task, classify_get
from revoker.engine.sched.pool import RunContext
from revoker.models import FollowUp, Outcome, Task, TaskResult, done_digest
from revoker.results import Totals

DISCONNECT = "disconnect"


@dataclass
class Listing:
    """One answer of ``GET .../online-streams``; ``entries`` is None if the listing failed."""

    result: TaskResult
    entries: list[tuple[dict[str, Any], PushUrl]] | None

    @property
    def request_id(self) -> str | None:
        return self.result.request_id


async def list_streams(ctx: RunContext, task: Task) -> Listing:
    """Every live stream of the task's app ID in its region, each with its parsed URL."""

    def send() -> Awaitable[ApiResponse]:
        return ctx.client.list_streams(task.region, task.app_id)

    result, response = await call_task(ctx, task, "GET", send, classify_get)
    if (
        response is None
        or result.outcome is not Outcome.PRESENT
        or not isinstance(response.data, list)
    ):
        return Listing(result, None)
    entries = [(s, parse_push_url(s.get("url"))) for s in response.data if isinstance(s, dict)]
    return Listing(result, entries)


LISTING = "listing"


def record_listing(
    audit: AuditLog | None,
    listing: Listing,
    app_id: str,
    region: str,
    purpose: str,
    *,
    refused: str | None = None,
) -> None:
    """One ``listing`` line: every listing is in the audit log with its request IDs,
    whether or not a stream of it matched (AuditWriteError if it cannot be written)."""
    if audit is None:
        return
    result = listing.result
    listed = listing.entries is not None
    fields = answer_fields(result)
    if listed:
        fields.update(outcome="listed", message=None)
    audit.event(
        LISTING,
        purpose=purpose,
        app_id=app_id,
        region=region,
        **fields,
        live_streams=len(listing.entries) if listing.entries is not None else None,
        refused=refused is not None,
    )


def listing_failed(task: Task, listing: Listing, which: str) -> FollowUp:
    source = listing.result
    outcome = Outcome.NOT_ATTEMPTED if source.outcome is Outcome.NOT_ATTEMPTED else Outcome.FAILED
    what = (
        "listing live streams failed"
        if which == "before"
        else "listing live streams after the last DELETE failed (streams started "
        "during the run were not checked)"
    )
    result = TaskResult(
        task,
        outcome,
        list(source.attempts),
        source.duration_ms,
        f"{what}: {source.message or 'unexpected answer'}",
    )
    fields = {"sid": None, "listing": which, "list_request_id": listing.request_id}
    return FollowUp(DISCONNECT, result, fields)


def key_identity(task: Task, lookup: TaskResult) -> KeyIdentity:
    """The key with the channel and uid its GET answered (200), if it did."""
    data = lookup.data if lookup.outcome is Outcome.PRESENT else None
    if not isinstance(data, dict) or not isinstance(data.get("channel"), str):
        return KeyIdentity(task.key)
    uid = data.get("uid")
    return KeyIdentity(task.key, data["channel"], str(uid) if uid is not None else None)


def step_record(lookup: TaskResult) -> dict[str, Any]:
    """One request a pair's line records besides its own: outcome, request IDs, attempts."""
    return {
        "outcome": str(lookup.outcome),
        "http_status": lookup.http_status,
        "request_id": lookup.request_id,
        "server_request_id": lookup.server_request_id,
        "attempts": [a.to_record() for a in lookup.attempts],
    }


def resumed_identities(
    path: Path, done: Collection[int], *, event: str
) -> dict[int, KeyIdentity | None]:
    """Pairs whose key an earlier run deleted (by :func:`~revoker.models.done_digest`),
    with the channel and uid its ``event`` lines (``revoke`` or ``rotate``) recorded
    (None if they recorded none); the key itself comes from the input."""
    wanted: dict[int, KeyIdentity | None] = dict.fromkeys(done)
    if not wanted or not path.exists():
        return wanted
    for record in iter_records(path):
        if record.get("event") != event:
            continue
        digest = done_digest(
            str(record.get("app_id")), str(record.get("region")), str(record.get("key_id"))
        )
        channel = record.get("channel")
        if digest in wanted and isinstance(channel, str):
            uid = record.get("uid")
            wanted[digest] = KeyIdentity("", channel, str(uid) if uid is not None else None)
    return wanted


UNCONFIRMED_FIELDS = ("sid", "match", "protocol", "channel", "stream_uid", "run_id")


def unconfirmed_cuts(path: Path) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    """The cuts an earlier run sent but never saw confirmed (a stop or an error while
    confirming), by (app ID, region, key ID): the latest ``disconnect`` line of their
    SID is not done, yet its force-disconnect was answered (it has confirming requests).
    A later run's listing that no longer holds the SID confirms them."""
    latest: dict[tuple[str, str, str, str], dict[str, Any] | None] = {}
    if not path.exists():
        return {}
    for record in iter_records(path):
        if record.get("event") != DISCONNECT or not isinstance(record.get("sid"), str):
            continue
        where = (
            str(record.get("app_id")),
            str(record.get("region")),
            str(record.get("key_id")),
            record["sid"],
        )
        pending = record.get("outcome") in (str(Outcome.FAILED), str(Outcome.NOT_ATTEMPTED))
        if pending and "confirm_request_ids" in record:
            latest[where] = {name: record.get(name) for name in UNCONFIRMED_FIELDS}
        else:
            latest[where] = None
    found: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for (app_id, region, kid, _sid), cut in latest.items():
        if cut is not None:
            found.setdefault((app_id, region, kid), []).append(cut)
    return found


def disconnect_note(totals: Totals | None) -> str:
    """The summary line that replaces "streams keep running" under --disconnect."""
    counts = totals.counts if totals else {}
    cut = counts.get(str(Outcome.DISCONNECTED), 0)
    line = f"live streams cut off: {cut}"
    ended = counts.get(str(Outcome.ABSENT), 0)
    if ended:
        line += f" ({ended} had already ended)"
    failed = counts.get(str(Outcome.FAILED), 0) + counts.get(str(Outcome.NOT_ATTEMPTED), 0)
    if failed:
        line += f"; {failed} could NOT be cut off (see disconnect failures)"
    return line
