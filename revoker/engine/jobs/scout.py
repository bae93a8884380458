"""``revoke --disconnect``: find the keys that keyless live streams push with, ahead of their turn.

A stream whose URL names no key (WHIP: the key is the Bearer token) is tied to its
key only by the key's channel and uid, and only a GET of the key tells those. The
pass GETs each pair just before its DELETE, in input order, so such a stream would
be cut when its key's turn came: near the end of a long input, minutes into an
incident, while the leaked key is still in use.

:class:`Scout` looks at the pass's own tasks ahead of the workers (:meth:`Scout.source`
sits between the input and the pass's feed, and reads further ahead when the feed
has not) and GETs each key in a region whose listing before the first DELETE holds
a keyless stream. A key whose channel and uid are those of a keyless live stream
of its app (in any region) is moved to the front: its pairs not handed out yet are
the next ones the workers take (:meth:`Scout.feed`). The tasks are the pass's own
objects, so a pair is never handed out twice and an input edited mid-run cannot
shift anything. Every answer the scout gets is its pair's own lookup: the pass
takes it (:meth:`Scout.take`) instead of sending a GET, so scouting sends no request
the run would not send anyway, only earlier. An answer whose pair never runs (the
run halted) gets a ``lookup`` line of its own when the scout stops, so every request
is in the audit log (or, if the log refuses the line, in the pass's fallback file).
Keys whose URL-named streams put them first already are not scouted.

Bounded: at most :data:`LOOKAHEAD` tasks read ahead of the pass's feed and as many
answers waiting for their pair; the scout stops once every keyless stream has a
key, at the end of the input, or when the run halts. A stream is still cut only
by its own region's lookup (engine.jobs.disconnect): a key moved to the front on
another region's answer costs nothing but its place in the order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from revoker.audit.log import answer_fields, event_record
from revoker.engine.jobs.disconnect_records import Listing, key_identity
from revoker.engine.matching import channel_uid
from revoker.engine.sched.calls import query_task
from revoker.engine.sched.pool import RunContext, TaskFeed
from revoker.logs import log
from revoker.models import Task, TaskResult
from revoker.results import HaltReason

# Tasks the scout reads ahead of the pass's feed, and answers waiting for their pair.
LOOKAHEAD = 4096
# Tasks the feed took that the scout has not looked at yet; past this the oldest
# are let go unscouted (the pass has them).
_UNSEEN = 16384
LOOKUP = "lookup"


def scout_concurrency(concurrency: int) -> int:
    """The scout's GETs in flight beside a pass of ``concurrency`` workers (and the
    connections the client adds for them)."""
    return max(1, concurrency // 4)


def keyless_streams(
    listings: dict[tuple[str, str], Listing],
) -> tuple[dict[str, set[tuple[str, str]]], dict[str, set[str]]]:
    """The (channel, uid) of every live stream whose URL names no key, by app ID, and the
    regions of each app where such streams are live."""
    wanted: dict[str, set[tuple[str, str]]] = {}
    regions: dict[str, set[str]] = {}
    for (app_id, region), listing in listings.items():
        for stream, push in listing.entries or ():
            pair = None if push.keys else channel_uid(stream)
            if pair is not None:
                wanted.setdefault(app_id, set()).add(pair)
                regions.setdefault(app_id, set()).add(region)
    return wanted, regions


class Scout:
    """Looks ahead of a ``--disconnect`` pass for the keys of keyless live streams.

    ``streamed`` are the (app ID, key) the listings' URLs name (handed out first
    already, never scouted); ``done_before`` the pairs an earlier run deleted
    (nothing is sent for them).
    """

    def __init__(
        self,
        ctx: RunContext,
        streamed: frozenset[tuple[str, str]],
        *,
        done_before: Callable[[Task], bool] | None = None,
        concurrency: int = 8,
        lookahead: int = LOOKAHEAD,
    ) -> None:
        self.ctx = ctx
        self._streamed = streamed
        self._done_before = done_before
        self._concurrency = max(1, concurrency)
        self._lookahead = max(1, lookahead)
        self._wanted, self._regions = keyless_streams(ctx.listings)
        self._found: set[tuple[str, tuple[str, str]]] = set()
        self._input: Iterator[Task] = iter(())
        self._ended_input = False
        # By id(): tasks read from the input and not handed to a worker yet.
        self._pending: dict[int, Task] = {}
        self._unseen: deque[Task] = deque()  # read by the feed, not looked at yet
        self._ahead: deque[Task] = deque()  # read by the scout, not by the feed yet
        self._answers: dict[int, asyncio.Future[TaskResult | None]] = {}
        self._lane: deque[Task] = deque()  # moved to the front
        self._moved: set[int] = set()  # moved, still to be skipped in the feed
        self._wake = asyncio.Event()
        self._stopping = False
        self._stopped = asyncio.Event()
        self._jobs: set[asyncio.Task[None]] = set()
        self.moved_keys = 0
        self._unrecorded: list[tuple[TaskResult, dict[str, Any]]] = []

    @property
    def active(self) -> bool:
        """Whether any listing holds a keyless stream (else there is nothing to find)."""
        return bool(self._wanted)

    def source(self, tasks: Iterator[Task]) -> Iterator[Task]:
        """``tasks`` as the pass's feed should read them, seen by the scout on the way."""
        self._input = tasks
        return _Source(self)

    def feed(self, tasks: Iterator[Task] | TaskFeed) -> TaskFeed:
        """The pass's feed, with the pairs of keys moved to the front handed out first."""
        return _FrontFirst(self, tasks)

    def streams_with(self, task: Task) -> bool:
        """Whether a listed stream's URL names the task's key (a key in use)."""
        return (task.app_id, task.key) in self._streamed

    def take(self, task: Task) -> asyncio.Future[TaskResult | None] | None:
        """The scout's GET of ``task`` (done or under way), or None if it sent none. The
        future's result is None only if the GET was cut short: the pass GETs then."""
        future = self._answers.pop(id(task), None)
        if future is not None:
            self._wake.set()
        return future

    def stop(self) -> None:
        """Start nothing new; :meth:`run` returns once the GETs under way have ended."""
        self._stopping = True
        self._stopped.set()
        self._wake.set()

    def _read(self) -> Task | None:
        """The input's next task (now pending), or None at its end."""
        task = next(self._input, None)
        if task is None:
            self._ended_input = True
            return None
        self._pending[id(task)] = task
        return task

    def _next_seen(self) -> Task | None:
        """The next task to look at: one the feed took, else one read ahead; None if
        neither is there (or there is no room to read ahead)."""
        if self._unseen:
            return self._unseen.popleft()
        waiting = max(len(self._ahead), len(self._answers) + len(self._jobs))
        if waiting < self._lookahead and not self._ended_input:
            task = self._read()
            if task is not None:
                self._ahead.append(task)
            return task
        return None

    def _finished(self) -> bool:
        if self._stopping or self.ctx.halt.is_set:
            return True
        return len(self._found) >= sum(len(v) for v in self._wanted.values())

    async def run(self) -> None:
        """Scout until every keyless stream has a key or the input ends, then wait for
        :meth:`stop` (the pass's end) and record the answers no pair took."""
        try:
            if self.active:
                await self._scout()
            await self._stopped.wait()
        finally:
            self._record_untaken()

    async def _scout(self) -> None:
        gate = asyncio.Semaphore(self._concurrency)
        group: list[Task] = []
        seen = 0
        try:
            while not self._finished():
                task = self._next_seen()
                if task is None:
                    if self._ended_input and not self._unseen:
                        break
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                seen += 1
                if seen % 256 == 0:
                    await asyncio.sleep(0)  # a long input never holds up the loop
                if group and (group[0].app_id, group[0].key) != (task.app_id, task.key):
                    await self._consider(group, gate)
                    group = []
                group.append(task)
            if group and not self._finished():
                await self._consider(group, gate)
        finally:
            while self._jobs:
                await asyncio.wait(set(self._jobs))

    async def _consider(self, group: list[Task], gate: asyncio.Semaphore) -> None:
        """Scout one key's pairs not handed out yet, in its regions with keyless streams."""
        first = group[0]
        regions = self._regions.get(first.app_id)
        if regions is None or (first.app_id, first.key) in self._streamed:
            return
        scouted = [
            task
            for task in group
            if task.region in regions
            and id(task) in self._pending
            and (self._done_before is None or not self._done_before(task))
        ]
        if not scouted:
            return
        await gate.acquire()
        if self._finished():
            gate.release()
            return
        job = asyncio.ensure_future(self._scout_key(group, scouted))
        self._jobs.add(job)
        job.add_done_callback(lambda done: self._ended(done, gate))

    def _ended(self, job: asyncio.Task[None], gate: asyncio.Semaphore) -> None:
        self._jobs.discard(job)
        gate.release()
        self._wake.set()
        if not job.cancelled() and job.exception() is not None:
            error = job.exception()
            log.error("scout failed on a key", error=type(error).__name__)

    async def _scout_key(self, group: list[Task], scouted: list[Task]) -> None:
        """GET the key in its scouted regions until one answers with a channel and uid."""
        app_id = group[0].app_id
        for task in scouted:
            if id(task) not in self._pending:
                continue  # handed out meanwhile: the pair sends its own GET
            future: asyncio.Future[TaskResult | None] = asyncio.get_running_loop().create_future()
            self._answers[id(task)] = future
            try:
                lookup = await query_task(self.ctx, task)
            except BaseException:
                if not future.done():
                    future.set_result(None)  # a pair waiting for it sends its own GET
                raise
            if not future.done():
                future.set_result(lookup)
            identity = key_identity(task, lookup)
            if identity.channel is None or identity.uid is None:
                continue
            wanted = (identity.channel, identity.uid)
            if wanted in self._wanted.get(app_id, ()):
                self._found.add((app_id, wanted))
                self._move(group)
            return

    def _move(self, group: list[Task]) -> None:
        """Hand out the key's pairs the feed has not handed out yet before any other."""
        self.moved_keys += 1
        for task in group:
            if id(task) in self._pending and id(task) not in self._moved:
                self._moved.add(id(task))
                self._lane.append(task)

    def _record_untaken(self) -> None:
        """A ``lookup`` line for each GET sent whose pair never ran (the run halted). Once
        the audit log has refused a line, the lines are kept for the fallback file
        instead (:meth:`unrecorded`), as the pass's own are."""
        audit = self.ctx.audit
        if audit is None:
            return
        for key, future in list(self._answers.items()):
            lookup = future.result() if future.done() and not future.cancelled() else None
            if lookup is None or not lookup.attempts:
                continue
            del self._answers[key]
            task = lookup.task
            fields = {
                "purpose": "looked up ahead of its DELETE to find keyless streams; "
                "the pair did not run",
                "app_id": task.app_id,
                "region": task.region,
                "key_id": task.key_id,
                "key_hint": task.key_hint,
                **answer_fields(lookup),
            }
            line = partial(audit.event, LOOKUP, **fields)
            if self.ctx.halt.reason != HaltReason.AUDIT_WRITE_FAILED and self.ctx.write_audit(line):
                continue
            self._unrecorded.append((lookup, event_record(LOOKUP, audit.run_id, **fields)))

    def unrecorded(self) -> list[tuple[TaskResult, dict[str, Any]]]:
        """The lookups whose line the audit log refused, each with that line (no key in
        it, as in every line of the fallback file); complete once :meth:`run` returned."""
        return list(self._unrecorded)


class _Source:
    """The input as the pass's feed reads it: what the scout read ahead first."""

    def __init__(self, scout: Scout) -> None:
        self._scout = scout

    def __iter__(self) -> _Source:
        return self

    def __next__(self) -> Task:
        scout = self._scout
        scout._wake.set()
        if scout._ahead:
            return scout._ahead.popleft()
        task = scout._read()
        if task is None:
            raise StopIteration
        if not scout._finished():
            scout._unseen.append(task)
            if len(scout._unseen) > _UNSEEN:
                scout._unseen.popleft()
        return task


class _FrontFirst:
    """The pass's feed with the scout's lane in front of it."""

    def __init__(self, scout: Scout, tasks: Iterator[Task] | TaskFeed) -> None:
        self._scout = scout
        self._tasks = tasks

    async def _next(self) -> Task | None:
        if isinstance(self._tasks, Iterator):
            return next(self._tasks, None)
        return await self._tasks.get()

    async def get(self) -> Task | None:
        scout = self._scout
        while True:
            if scout._lane:
                moved = scout._lane.popleft()
                scout._pending.pop(id(moved), None)
                return moved
            task = await self._next()
            if task is None:
                return None
            if id(task) in scout._moved:
                scout._moved.discard(id(task))
                continue  # handed out from the front already
            scout._pending.pop(id(task), None)
            return task
