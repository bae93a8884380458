"""``revoke --disconnect``: delete a key, then cut off the live streams pushed with it.

Per (app ID, region, key), in the order Agora requires:

1. ``GET`` the key to learn its channel and uid (a 404 is fine: a key generated
   by a script is never stored, and then every live stream of the app in that
   region is listed instead of one channel's);
2. ``DELETE`` the key (the task's own ``revoke`` audit line);
3. only if the DELETE answered 200 or 404: list the live streams (of the
   channel) and force-disconnect every one whose ``url`` ends with
   ``/live/<key>``. In the other order the encoder reconnects at once with a
   new SID.

Every request goes through :func:`~revoker.executor.call_api` (retries, the
per-app GET/DELETE rate limits, the 401 circuit breaker). Each SID gets one
``disconnect`` audit line (outcome ``disconnected``, ``absent`` if the stream
had already ended, or ``failed``) attached to the task as a
:class:`~revoker.models.FollowUp`; a stream listing that fails gets one
``failed`` line without SID.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from revoker.client import ApiResponse, streams_path
from revoker.executor import (
    Context,
    Totals,
    call_task,
    classifier,
    classify_get,
    query_task,
    revoke_task,
)
from revoker.models import DONE_OUTCOMES, FollowUp, Outcome, Task, TaskResult

DISCONNECT = "disconnect"


def pushed_with(stream: Any, key: str) -> bool:
    """True if a live-stream entry was pushed with ``key`` (its url ends ``/live/<key>``)."""
    if not isinstance(stream, dict):
        return False
    url = stream.get("url")
    return isinstance(url, str) and url.endswith("/live/" + key)


classify_disconnect = classifier(Outcome.DISCONNECTED)


def _lookup_record(lookup: TaskResult) -> dict[str, Any]:
    last = lookup.last
    return {
        "outcome": str(lookup.outcome),
        "http_status": lookup.http_status,
        "request_id": last.request_id if last else None,
        "server_request_id": last.server_request_id if last else None,
        "attempts": [a.to_record() for a in lookup.attempts],
    }


async def revoke_and_disconnect(ctx: Context, task: Task) -> TaskResult:
    """GET, DELETE, then list and force-disconnect the key's streams in ``task.region``."""
    lookup = await query_task(ctx, task)
    data = (
        lookup.data if lookup.outcome is Outcome.PRESENT and isinstance(lookup.data, dict) else {}
    )
    channel = data.get("channel") if isinstance(data.get("channel"), str) else None
    result = await revoke_task(ctx, task)
    result.audit_fields["lookup"] = _lookup_record(lookup)
    if channel is not None:
        result.audit_fields["channel"] = channel
        result.audit_fields["uid"] = data.get("uid")
    if result.outcome not in DONE_OUTCOMES:
        return result  # the key still exists: a cut-off stream would reconnect at once

    def send_list() -> Awaitable[ApiResponse]:
        if channel:
            return ctx.client.list_streams(task.region, task.app_id, channel)
        return ctx.client.request("GET", streams_path(task.region, task.app_id))

    listing, response = await call_task(ctx, task, "GET", send_list, classify_get)
    list_ids = {"list_request_id": listing.last.request_id if listing.last else None}
    if response is None or response.status != 200 or not isinstance(response.data, list):
        listing.outcome = (
            Outcome.NOT_ATTEMPTED if listing.outcome is Outcome.NOT_ATTEMPTED else Outcome.FAILED
        )
        listing.message = f"listing live streams failed: {listing.message or 'unexpected answer'}"
        result.follow_ups.append(FollowUp(DISCONNECT, listing, {"sid": None, "channel": channel}))
        return result
    streams = [s for s in response.data if pushed_with(s, task.key)]
    for stream in streams:
        sid = stream.get("sid")
        if not isinstance(sid, str) or not sid.strip(".") or "/" in sid:
            # Never DELETE .../online-streams/ or a dot segment on a server's say-so.
            bad = TaskResult(task, Outcome.FAILED, message=f"unusable stream SID {sid!r}")
            fields = {"sid": None, "channel": stream.get("channel", channel), **list_ids}
            result.follow_ups.append(FollowUp(DISCONNECT, bad, fields))
            continue

        def send_cut(sid: str = sid) -> Awaitable[ApiResponse]:
            return ctx.client.disconnect_stream(task.region, task.app_id, sid)

        cut, _ = await call_task(ctx, task, "DELETE", send_cut, classify_disconnect)
        fields = {
            "sid": sid,
            "channel": stream.get("channel", channel),
            "stream_uid": stream.get("uid"),
            **list_ids,
        }
        result.follow_ups.append(FollowUp(DISCONNECT, cut, fields))
    result.audit_fields["streams_found"] = len(streams)
    return result


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
