"""``revoke --disconnect``: delete each key, then cut off every live stream pushed with it.

Per (app ID, region), one :class:`StreamSweep` scope:

* the live streams are listed once (``GET .../online-streams``, every stream of the
  app in the region): before the first DELETE by :mod:`revoker.engine.jobs.preflight`
  (taken from ``RunContext.listings``), or else when the scope's first pair starts;
* per pair: ``GET`` the key (its channel and uid tie WHIP streams to it; with
  keyless streams listed, :mod:`revoker.engine.jobs.scout` may have sent that GET
  ahead of the pass), then ``DELETE`` it (the pair's ``revoke`` line). Only if the
  DELETE answered 200 or 404 are the streams of the first listing that match the
  key (see :mod:`revoker.engine.matching`) force-disconnected: in the other order
  the encoder reconnects at once under a new SID;
* after the scope's last DELETE, the streams are listed once more and the ones
  that started meanwhile with any deleted key are cut too.

Each cut is confirmed with ``GET .../online-streams/{sid}`` (404 or an empty
``data`` array: gone), polling up to ``confirm_timeout`` seconds and re-sending
the force-disconnect once at half time. Cutting and confirming run after the
pair's own line is written (:attr:`TaskResult.later`), so they hold up no DELETE;
a force-disconnect takes the first free slot of the DELETE budget, ahead of the
DELETEs booked already, so a cut never waits behind them.

``rotate --disconnect`` shares the sweep: its own lookup GET is passed to
:meth:`StreamSweep.delete_and_cut`, and every pair it ends without a DELETE is
counted down with :meth:`StreamSweep.skip`, so the second listing still happens;
a pair an earlier run rotated (``--resume``) goes through
:meth:`StreamSweep.resumed_pair`, as ``revoke``'s do.

Each SID gets one ``disconnect`` line: ``disconnected`` (confirmed gone, with the
confirming request IDs), ``absent`` (the stream had ended before the cut) or
``failed`` (with the reason). A cut an earlier run sent but could not confirm
(stopped, or its GETs failed) is confirmed by this run's first listing of its
(app ID, region) once its key is deleted: gone from it, the SID gets a
``disconnected`` line (``confirmed_by`` the listing); still there, it is cut again.
A listing that fails gives the pair a ``failed`` line without SID: never a silent
"no streams". A key deleted here that matched no stream, while a stream with its
channel and uid is live under a URL naming another key, gets a ``failed`` line for
that stream with ``left_running``: it is not cut, since it may be the other key's.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from revoker.agora.client import ApiResponse
from revoker.engine.input.planner import Plan
from revoker.engine.jobs.disconnect_records import (
    DISCONNECT,
    UNCONFIRMED_FIELDS,
    Listing,
    key_identity,
    list_streams,
    listing_failed,
    record_listing,
    resumed_identities,
    step_record,
    unconfirmed_cuts,
)
from revoker.engine.jobs.scout import Scout, scout_concurrency
from revoker.engine.matching import (
    KeyIdentity,
    KeyIndex,
    Match,
    same_channel_uid,
    usable_sid,
)
from revoker.engine.sched.calls import call_task, classifier, classify_get, query_task, revoke_task
from revoker.engine.sched.pool import RunContext
from revoker.models import DONE_OUTCOMES, FollowUp, Outcome, Task, TaskResult, done_digest
from revoker.redact import KeyDigests
from revoker.settings import RunSettings

DEFAULT_CONFIRM_TIMEOUT = 10.0
FIRST_POLL = 0.2  # seconds before the first confirming GET; doubles up to MAX_POLL
MAX_POLL = 1.0

classify_disconnect = classifier(Outcome.DISCONNECTED)

AppRegion = tuple[str, str]
Later = Callable[[], Awaitable[list[FollowUp]]]


@dataclass
class _Scope:
    """The sweep of one (app ID, region)."""

    remaining: int
    first: asyncio.Future[Listing] | None = None
    deleted: KeyIndex[Task] = field(default_factory=KeyIndex)
    claimed: set[str] = field(default_factory=set)  # SIDs being or already cut
    fresh: list[tuple[KeyIdentity, Task]] = field(default_factory=list)  # deleted here


class StreamSweep:
    """Listings, matches and cuts of one run, shared by every pair of each (app, region).

    ``expected`` counts the pairs of each (app ID, region) in this pass, so the
    last DELETE is known. ``resumed`` holds pairs deleted in an earlier run
    (``--resume``): they are not deleted again, but their streams are cut.
    """

    def __init__(
        self,
        ctx: RunContext,
        expected: Mapping[AppRegion, int],
        *,
        confirm_timeout: float = DEFAULT_CONFIRM_TIMEOUT,
        resumed: Mapping[int, KeyIdentity | None] | None = None,
        unconfirmed: dict[tuple[str, str, str], list[dict[str, Any]]] | None = None,
        keys: KeyDigests | None = None,
    ) -> None:
        self.ctx = ctx
        # The run's keys: a listing is a request that names none, so what its streams
        # say is recorded with every key of the run masked, not only the owner's.
        self.keys = keys
        self.confirm_timeout = confirm_timeout
        self.resumed = resumed or {}
        # Earlier runs' cuts never confirmed, by (app ID, region, key ID).
        self.unconfirmed = unconfirmed or {}
        self._scopes = {where: _Scope(count) for where, count in expected.items()}
        # Set when the pass runs with a scout (engine.jobs.scout): its GETs are the
        # pairs' lookups.
        self.scout: Scout | None = None

    def _scope(self, task: Task, *, start: bool = True) -> _Scope:
        where = (task.app_id, task.region)
        scope = self._scopes.setdefault(where, _Scope(1))
        if start and scope.first is None:
            listed: Listing | None = self.ctx.listings.get(where)
            if listed is None:
                scope.first = asyncio.ensure_future(self._list(task))
            else:  # listed before the first DELETE (engine.jobs.preflight): not listed again
                scope.first = asyncio.get_running_loop().create_future()
                scope.first.set_result(listed)
        return scope

    async def run(self, task: Task) -> TaskResult:
        """The runner of one ``revoke`` pair: GET, DELETE; the streams are cut later."""
        earlier = self.resumed_pair(task)
        if earlier is not None:
            return earlier
        self.start(task)
        scouted = self.scout.take(task) if self.scout is not None else None
        # Shielded: a worker cancelled while waiting leaves the scout's future alone.
        lookup = None if scouted is None else await asyncio.shield(scouted)
        if lookup is None:
            # A key live streams push with never waits behind the scout's GETs.
            urgent = self.scout is not None and self.scout.streams_with(task)
            lookup = await query_task(self.ctx, task, urgent=urgent)
        return await self.delete_and_cut(task, lookup)

    def resumed_pair(self, task: Task) -> TaskResult | None:
        """A pair whose key an earlier run deleted (``resumed``): no request and no
        line of its own, only its streams cut later; None for any other pair."""
        digest = done_digest(task.app_id, task.region, task.key_id)
        if digest not in self.resumed:
            return None
        stored = self.resumed[digest]
        result = TaskResult(task, Outcome.ABSENT, own_line=False)
        identity = KeyIdentity(
            task.key, stored.channel if stored else None, stored.uid if stored else None
        )
        result.later = self.skip(task, identity)
        return result

    def start(self, task: Task) -> None:
        """List the streams of the pair's (app ID, region) now, unless already listing:
        called before the pair's lookup so the listing runs alongside it."""
        self._scope(task)

    async def delete_and_cut(self, task: Task, lookup: TaskResult) -> TaskResult:
        """DELETE the pair's key; its streams are cut in the result's ``later``.

        ``lookup`` is the pair's own GET of the key (its channel and uid tie WHIP
        streams to it). Only a DELETE that answered 200 or 404 leads to cuts. The
        pair is counted as done in its (app ID, region) whatever the answer.
        """
        identity = key_identity(task, lookup)
        lookup_failed = None if lookup.outcome in (Outcome.PRESENT, Outcome.ABSENT) else lookup
        result = await revoke_task(self.ctx, task)
        result.audit_fields["lookup"] = step_record(lookup)
        if identity.channel is not None:
            result.audit_fields["channel"] = identity.channel
            result.audit_fields["uid"] = identity.uid
        deleted = result.outcome in DONE_OUTCOMES
        result.later = self._settle(
            task, identity if deleted else None, lookup_failed, fresh=deleted
        )
        return result

    def skip(self, task: Task, gone: KeyIdentity | None = None) -> Later | None:
        """Count down a pair that sends no DELETE here, so its (app ID, region) still
        gets the listing after its last DELETE; returns the work for the pair's ``later``.

        ``gone``: the key is known deleted already (an earlier run): its streams are cut.
        """
        return self._settle(task, gone, None)

    def _settle(
        self,
        task: Task,
        identity: KeyIdentity | None,
        lookup_failed: TaskResult | None,
        *,
        fresh: bool = False,
    ) -> Later | None:
        scope = self._scope(task, start=identity is not None)
        if identity is not None:
            scope.deleted.add(identity, task)
            if fresh:
                scope.fresh.append((identity, task))
        scope.remaining -= 1
        last = scope.remaining == 0
        if identity is None and not last:
            return None

        def later() -> Awaitable[list[FollowUp]]:
            return self._after_delete(scope, task, identity, last, lookup_failed)

        return later

    async def _after_delete(
        self,
        scope: _Scope,
        task: Task,
        identity: KeyIdentity | None,
        last: bool,
        lookup_failed: TaskResult | None,
    ) -> list[FollowUp]:
        lines: list[FollowUp] = []
        if identity is not None and lookup_failed is not None:
            # Its URL-named streams are still cut; its WHIP streams cannot be found.
            failed = TaskResult(
                task,
                Outcome.FAILED,
                list(lookup_failed.attempts),
                lookup_failed.duration_ms,
                "key lookup failed, so streams without the key in their URL (WHIP) "
                f"could not be tied to it: {lookup_failed.message or lookup_failed.outcome}",
            )
            lines.append(FollowUp(DISCONNECT, failed, {"sid": None, "listing": "lookup"}))
        if identity is None and scope.first is not None:
            await scope.first  # nothing to cut, but leave no request behind
        if identity is not None:
            assert scope.first is not None
            listing = await scope.first
            lines += self._confirm_earlier(task, listing)
            index: KeyIndex[Task] = KeyIndex()
            index.add(identity, task)
            lines += await self._cut_matches(scope, task, listing, index, "before")
        if last and len(scope.deleted):
            # Streams that started while the keys were being deleted.
            second = await self._list(task, "streams started during the DELETEs")
            lines += await self._cut_matches(scope, task, second, scope.deleted, "after")
            if scope.first is not None:
                lines += _left_running(scope, await scope.first, second, self.keys)
        return lines

    def _confirm_earlier(self, task: Task, listing: Listing) -> list[FollowUp]:
        """An earlier run's unconfirmed cuts of this key whose SID the listing no longer
        holds: confirmed gone now (a SID still listed is matched and cut again)."""
        cuts = self.unconfirmed.pop((task.app_id, task.region, task.key_id), [])
        if not cuts or listing.entries is None:
            return []
        live = {stream.get("sid") for stream, _ in listing.entries}
        lines = []
        for cut in cuts:
            if cut["sid"] in live:
                continue
            result = TaskResult(
                task,
                Outcome.DISCONNECTED,
                list(listing.result.attempts),
                message=f"confirmed gone by a later listing (the cut was sent by run "
                f"{cut['run_id']}, its confirmation did not finish)",
            )
            fields = {name: cut[name] for name in UNCONFIRMED_FIELDS if name != "run_id"}
            fields.update(
                listing="before",
                list_request_id=listing.request_id,
                confirmed_by=listing.request_id,
                prior_run_id=cut["run_id"],
            )
            lines.append(FollowUp(DISCONNECT, result, fields))
        return lines

    async def _list(self, task: Task, purpose: str = "live streams to cut") -> Listing:
        listing = await list_streams(self.ctx, task)
        audit = self.ctx.audit
        self.ctx.write_audit(
            lambda: record_listing(audit, listing, task.app_id, task.region, purpose)
        )
        return listing

    async def _cut_matches(
        self,
        scope: _Scope,
        task: Task,
        listing: Listing,
        index: KeyIndex[Task],
        which: str,
    ) -> list[FollowUp]:
        if listing.entries is None:
            return [listing_failed(task, listing, which)]
        jobs = []
        for stream, push in listing.entries:
            found = index.find(stream, push)
            if found is None:
                continue
            owner, match = found
            sid = stream.get("sid")
            fields = {
                "sid": _listed(self.keys, stream, "sid") if usable_sid(sid) else None,
                "channel": _listed(self.keys, stream, "channel"),
                "stream_uid": _listed(self.keys, stream, "uid"),
                "match": match.kind,
                "protocol": match.protocol,
                "listing": which,
                "list_request_id": listing.request_id,
            }
            if not usable_sid(sid):
                # Never DELETE .../online-streams/ or a dot segment on a server's say-so.
                marker = f"\0{sid!r}"  # reported once, not again by the second listing
                if marker in scope.claimed:
                    continue
                scope.claimed.add(marker)
                shown = _listed(self.keys, stream, "sid")
                bad = TaskResult(owner, Outcome.FAILED, message=f"unusable stream SID {shown!r}")
                jobs.append(_ready(FollowUp(DISCONNECT, bad, fields)))
                continue
            assert isinstance(sid, str)
            if sid in scope.claimed:
                continue
            scope.claimed.add(sid)
            jobs.append(self._cut(owner, sid, match, fields))
        return list(await asyncio.gather(*jobs))

    async def _cut(self, task: Task, sid: str, match: Match, fields: dict[str, Any]) -> FollowUp:
        """Force-disconnect one SID and confirm it is gone."""

        def send_cut() -> Awaitable[ApiResponse]:
            return self.ctx.client.disconnect_stream(task.region, task.app_id, sid)

        cut, _ = await call_task(
            self.ctx, task, "DELETE", send_cut, classify_disconnect, urgent=True
        )
        if cut.outcome is Outcome.DISCONNECTED:
            await self._confirm(task, sid, cut, fields, send_cut)
        return FollowUp(DISCONNECT, cut, fields)

    async def _confirm(
        self,
        task: Task,
        sid: str,
        cut: TaskResult,
        fields: dict[str, Any],
        send_cut: Callable[[], Awaitable[ApiResponse]],
    ) -> None:
        """Poll ``GET online-streams/{sid}`` until it is gone; ``failed`` if it never is."""
        ctx = self.ctx
        started = time.monotonic()
        deadline = started + self.confirm_timeout
        ids: list[str] = []
        fields["confirm_request_ids"] = ids
        sent = 1
        pause = FIRST_POLL
        reason = "still live"
        while True:
            await ctx.halt.sleep(min(pause, max(FIRST_POLL, deadline - time.monotonic())))
            pause = min(pause * 2, MAX_POLL)

            def send_get() -> Awaitable[ApiResponse]:
                return ctx.client.get_stream(task.region, task.app_id, sid)

            poll, response = await call_task(ctx, task, "GET", send_get, classify_get)
            ids.extend(poll.request_ids)
            if _gone(poll, response, sid):
                cut.duration_ms = int((time.monotonic() - started) * 1000) + cut.duration_ms
                fields["confirmed_by"] = poll.request_id
                return
            if poll.outcome is not Outcome.PRESENT:
                reason = f"could not confirm: {poll.message or poll.outcome}"
            else:
                reason = "still live"
            now = time.monotonic()
            if ctx.halt.is_set:
                break
            if sent == 1 and now >= started + self.confirm_timeout / 2:
                # Once more, then poll again (even past the deadline: one last look).
                again, _ = await call_task(
                    ctx, task, "DELETE", send_cut, classify_disconnect, urgent=True
                )
                cut.attempts.extend(again.attempts)
                sent += 1
                continue
            if now >= deadline:
                break
        cut.outcome = Outcome.FAILED
        waited = f"{self.confirm_timeout:g} s" if not ctx.halt.is_set else "the run halted"
        cut.message = (
            f"{reason} after force-disconnect ({sent} sent; waited {waited})"
            if reason == "still live"
            else f"{reason} (force-disconnect sent {sent} times; waited {waited})"
        )


def _listed(keys: KeyDigests | None, stream: dict[str, Any], name: str) -> Any:
    """A listed stream's field as a line records it: the run's keys masked."""
    value = stream.get(name)
    return keys.mask(value) if keys is not None and isinstance(value, str) else value


def _left_running(
    scope: _Scope, listing: Listing, second: Listing, keys: KeyDigests | None
) -> list[FollowUp]:
    """A ``failed`` line per live stream that has the channel and uid of a key deleted
    here which no stream matched, while the stream's URL names a key that is no
    deleted one: it is not cut (it may be another key's), but never left unsaid.

    Only this run's DELETEs and the listing before them count: a key rotated in an
    earlier run shares its channel and uid with its replacement, streaming by now.
    """
    if listing.entries is None:
        return []
    lines: list[FollowUp] = []
    seen = listing.entries + (second.entries or [])
    for identity, owner in scope.fresh:
        own: KeyIndex[Task] = KeyIndex()
        own.add(identity, owner)
        if any(own.find(stream, push) for stream, push in seen):
            continue
        for stream, push in listing.entries:
            if not same_channel_uid(stream, identity) or scope.deleted.find(stream, push):
                continue
            sid = stream.get("sid")
            marker = f"\1{sid!r}\0{owner.key_id}"
            if marker in scope.claimed:
                continue
            scope.claimed.add(marker)
            message = (
                "left running: no live stream matched this key, but this stream has its "
                "channel and uid under a URL naming another key (or this key in a form "
                "revoker cannot read); check it with revoker streams --all and cut it by "
                "hand if it is this key's"
            )
            fields = {
                "sid": _listed(keys, stream, "sid") if usable_sid(sid) else None,
                "channel": _listed(keys, stream, "channel"),
                "stream_uid": _listed(keys, stream, "uid"),
                "match": None,
                "protocol": push.protocol,
                "listing": "before",
                "list_request_id": listing.request_id,
                "left_running": True,
            }
            lines.append(
                FollowUp(DISCONNECT, TaskResult(owner, Outcome.FAILED, message=message), fields)
            )
    return lines


def _gone(poll: TaskResult, response: ApiResponse | None, sid: str) -> bool:
    """404, or a 200 whose ``data`` array no longer holds the SID."""
    if poll.outcome is Outcome.ABSENT:
        return True
    if poll.outcome is not Outcome.PRESENT or response is None:
        return False
    data = response.data
    if not isinstance(data, list):
        return False
    return not any(isinstance(s, dict) and s.get("sid", sid) == sid for s in data)


async def _ready(note: FollowUp) -> FollowUp:
    return note


@dataclass(frozen=True)
class DisconnectPlan:
    """The pairs a ``--disconnect`` pass runs and its :class:`StreamSweep`.

    With --resume, the pairs whose key an earlier run deleted (its ``event`` lines,
    ``revoke`` or ``rotate``) are run too: nothing is sent for them, but their
    streams are listed and cut, and they count in their (app ID, region) so the
    listing after its last DELETE still happens.
    """

    settings: RunSettings
    plan: Plan
    event: str
    _bound: dict[int, tuple[RunContext, StreamSweep]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def resumed(self) -> bool:
        return self.settings.resume and bool(self.plan.done)

    def tasks(self) -> Iterator[Task]:
        return self.plan.tasks(include_done=self.resumed)

    @property
    def done_before(self) -> Callable[[Task], bool] | None:
        """The pass's ``done_before``: the earlier run's pairs are not its work."""
        return self.plan.done_pair if self.resumed else None

    def sweep(self, ctx: RunContext) -> StreamSweep:
        """The run's sweep: made once per context, so the scout and the runner share it."""
        bound = self._bound.get(id(ctx))
        if bound is None or bound[0] is not ctx:
            bound = self._bound[id(ctx)] = (ctx, self._new_sweep(ctx))
        return bound[1]

    def scout(self, ctx: RunContext, streamed: frozenset[tuple[str, str]]) -> Scout | None:
        """A scout for the keys of keyless live streams (engine.jobs.scout), or None if the
        listings before the first DELETE hold no such stream."""
        scout = Scout(
            ctx,
            streamed,
            done_before=self.done_before,
            concurrency=scout_concurrency(self.settings.client.concurrency),
        )
        if not scout.active:
            return None
        self.sweep(ctx).scout = scout
        return scout

    def notes(self) -> list[str]:
        """The summary's line on keys the scout moved to the front, if it moved any."""
        moved = sum(
            sweep.scout.moved_keys for _, sweep in self._bound.values() if sweep.scout is not None
        )
        if not moved:
            return []
        return [
            f"keys of live streams whose URL names no key (WHIP), found by their channel "
            f"and uid and revoked ahead of their turn: {moved}"
        ]

    def _new_sweep(self, ctx: RunContext) -> StreamSweep:
        expected: Counter[tuple[str, str]] = Counter(self.plan.stats.per_app_region)
        done: dict[int, KeyIdentity | None] = {}
        if self.resumed:
            # The earlier run's pairs of this input: counted and matched, not sent again.
            expected = Counter((t.app_id, t.region) for t in self.tasks())
            assert self.plan.done is not None
            done = resumed_identities(self.settings.audit_log, self.plan.done, event=self.event)
        return StreamSweep(
            ctx,
            expected,
            confirm_timeout=self.settings.disconnect_timeout,
            resumed=done,
            unconfirmed=unconfirmed_cuts(self.settings.audit_log),
            keys=self.plan.keys,
        )
