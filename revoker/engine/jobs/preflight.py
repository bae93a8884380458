"""Before the first DELETE of ``revoke`` and ``rotate``: one listing per (app ID, region).

``GET .../online-streams`` costs one request of the GET budget per app and
region, and it answers three questions before any key is touched:

* are the credentials accepted? A 401 halts the run here, nothing deleted;
* does the app ID exist and have Media Gateway enabled? An answer saying it
  does not (400 "Invalid app ID.", 403 "... not enabled ...") fails that
  app's pairs in that region without sending them: their DELETEs could only be
  refused or answered "not found", and "not found" must never read as revoked;
* which live streams are pushing with the leaked keys right now (by the key
  their URL names), so the summary can say so even without ``--disconnect``.

Every listing is recorded as a ``listing`` line with its request IDs. A listing
that fails otherwise (5xx after retries, a network error) blocks nothing: the
DELETEs matter more than the check. With ``--disconnect`` the same listings are
the ones the cuts start from, so no (app, region) is listed twice.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from revoker.audit.log import AuditLog
from revoker.engine.jobs.disconnect_records import Listing, list_streams, record_listing
from revoker.engine.sched.pool import RunContext
from revoker.models import Outcome, Task
from revoker.redact import printable

AppRegion = tuple[str, str]


def app_refusal(listing: Listing) -> str | None:
    """Why an app's listing says its keys cannot be revoked there; None if it does not.

    Only the documented app-level answers count: 400 naming the app ID, 403 saying
    Media Gateway is not enabled. Any other failure lets the DELETEs go ahead.
    """
    result = listing.result
    message = (result.message or "").lower()
    status = result.http_status
    if result.outcome is not Outcome.FAILED or status not in (400, 403):
        return None
    if (status == 400 and "app id" in message) or (status == 403 and "not enabled" in message):
        return f"HTTP {status} {printable(result.message or '')}".strip()
    return None


@dataclass
class AppCheck:
    """The listings before the first DELETE, and what they said."""

    listings: dict[AppRegion, Listing] = field(default_factory=dict)
    refused: dict[AppRegion, str] = field(default_factory=dict)  # -> why, for the pairs
    # Live streams by the key their URL names, per (app ID, region).
    streams: dict[AppRegion, Counter[str]] = field(default_factory=dict)

    def streamed_keys(self) -> frozenset[tuple[str, str]]:
        """(app ID, key) of every key a live stream's URL names, in any region."""
        return frozenset(
            (app_id, key) for (app_id, _), named in self.streams.items() for key in named
        )

    def refusal(self, task: Task) -> str | None:
        """The message of a pair that must not be sent, or None."""
        why = self.refused.get((task.app_id, task.region))
        if why is None:
            return None
        listing = self.listings.get((task.app_id, task.region))
        # The pair sent nothing: the listing's request is the one support can look up.
        asked = f" (request ID {listing.request_id})" if listing and listing.request_id else ""
        return (
            f"not sent: listing live streams of app {task.app_id} in {task.region} answered "
            f"{why}{asked}: the app ID is wrong or Media Gateway is not enabled for it"
        )


async def check_apps(
    ctx: RunContext, where: Iterable[AppRegion], audit: AuditLog, *, concurrency: int
) -> AppCheck:
    """List each (app ID, region) once, record each listing, and say what they found."""
    check = AppCheck()
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(app_id: str, region: str) -> None:
        async with gate:
            listing = await list_streams(ctx, Task(app_id, region, ""))
        check.listings[(app_id, region)] = listing
        refused = app_refusal(listing)
        if refused is not None:
            check.refused[(app_id, region)] = refused
        named: Counter[str] = Counter()
        for _stream, push in listing.entries or ():
            named.update(push.keys)
        check.streams[(app_id, region)] = named
        record_listing(
            audit, listing, app_id, region, "app check before the first DELETE", refused=refused
        )

    await asyncio.gather(*(one(app, region) for app, region in where))
    return check
