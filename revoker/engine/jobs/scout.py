"""``revoke --disconnect``: find the keys that keyless live streams push with, ahead of their turn.

A stream whose URL names no key (WHIP: the key is the Bearer token) is tied to its
key only by the key's channel and uid, and only a GET of the key tells those. The
pass GETs each pair just before its DELETE, in input order, so such a stream would
be cut when its key's turn came: near the end of a long input, minutes into an
incident, while the leaked key is still in use.

:class:`Scout` reads the input ahead of the pass and GETs each key in a region whose
listing before the first DELETE holds a keyless stream. A key whose channel and uid
are those of a keyless live stream of its app (in any region) is moved to the
front: its pairs not handed out yet are the next ones the workers take (:meth:`Scout.feed`).
Every answer the scout gets is its pair's own lookup: the pass takes it
(:meth:`Scout.take`) instead of sending a GET, so scouting sends no request the run
would not send anyway, only earlier. Keys whose URL-named streams put them first
already (the listings' keys) are not scouted.

Whether the pass has handed a pair out already is told by the pair's place in its
app's order, counted by both over the same input. A row edited between the two
reads (the run then names it and exits 1) can shift those places, and a key moved
after that may have a region sent twice: the second DELETE answers 404.

Bounded: at most :data:`LOOKAHEAD` answers wait for their pair (a few kilobytes
each); the scout stops once every keyless stream has a key, at the end of the
input, or when the run halts. A stream found this way is still cut only by its
own region's lookup (engine.jobs.disconnect): a key moved to the front on another
region's answer costs nothing but its place in the order.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator

from revoker.engine.jobs.disconnect_records import Listing, key_identity
from revoker.engine.matching import channel_uid
from revoker.engine.sched.calls import query_task
from revoker.engine.sched.pool import RunContext, TaskFeed
from revoker.models import Outcome, Task, TaskResult

# Answers the scout holds for pairs the pass has not reached yet.
LOOKAHEAD = 4096


def scout_concurrency(concurrency: int) -> int:
    """The scout's GETs in flight beside a pass of ``concurrency`` workers (and the
    connections the client adds for them)."""
    return max(1, concurrency // 4)


Pair = tuple[str, str, str]  # app ID, region, key
_ANSWERED = (Outcome.PRESENT, Outcome.ABSENT)


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


def _key_groups(tasks: Iterable[Task]) -> Iterator[list[Task]]:
    """The plan's tasks key by key (the planner yields each key's regions together)."""
    for _, group in itertools.groupby(tasks, key=lambda t: (t.app_id, t.key)):
        yield list(group)


class Scout:
    """Looks ahead of a ``--disconnect`` pass for the keys of keyless live streams.

    ``tasks`` are the pass's tasks in plan order, ``streamed`` the (app ID, key) the
    listings' URLs name (handed out first already, never scouted); ``done_before``
    the pairs an earlier run deleted (nothing is sent for them).
    """

    def __init__(
        self,
        ctx: RunContext,
        tasks: Callable[[], Iterator[Task]],
        streamed: frozenset[tuple[str, str]],
        *,
        done_before: Callable[[Task], bool] | None = None,
        concurrency: int = 8,
        lookahead: int = LOOKAHEAD,
    ) -> None:
        self.ctx = ctx
        self._tasks = tasks
        self._streamed = streamed
        self._done_before = done_before
        self._concurrency = max(1, concurrency)
        self._lookahead = max(1, lookahead)
        self._wanted, self._regions = keyless_streams(ctx.listings)
        self._found: set[tuple[str, tuple[str, str]]] = set()
        self._answers: dict[Pair, asyncio.Future[TaskResult | None]] = {}
        self._room = asyncio.Event()
        self._room.set()
        # Pairs moved to the front, handed out before the feed's next task.
        self._lane: deque[Task] = deque()
        self._moved: set[Pair] = set()
        # By app ID: the feed's tasks handed out so far, the streamed keys' apart. The
        # scout counts the same way over the plan, so a pair's place tells whether the
        # feed has handed it out already.
        self._handed: Counter[str] = Counter()
        self.moved_keys = 0

    @property
    def active(self) -> bool:
        """Whether any listing holds a keyless stream (else there is nothing to find)."""
        return bool(self._wanted)

    def _complete(self) -> bool:
        return len(self._found) >= sum(len(v) for v in self._wanted.values())

    def take(self, task: Task) -> asyncio.Future[TaskResult | None] | None:
        """The scout's GET of ``task``'s pair (done or under way), or None if there is
        none; the future's result is None if the GET failed: the pass GETs again."""
        future = self._answers.pop((task.app_id, task.region, task.key), None)
        if future is not None:
            self._room.set()
        return future

    def feed(self, tasks: Iterator[Task] | TaskFeed) -> TaskFeed:
        """``tasks``, with the pairs of keys moved to the front handed out first."""
        return _FrontFirst(self, tasks)

    async def run(self) -> None:
        """Scout the input until every keyless stream has a key, or to its end."""
        if not self.active:
            return
        gate = asyncio.Semaphore(self._concurrency)
        running: set[asyncio.Task[None]] = set()
        places: Counter[str] = Counter()
        try:
            for read, group in enumerate(_key_groups(self._tasks())):
                if read % 256 == 255:
                    await asyncio.sleep(0)  # a long input never holds up the loop
                first = group[0]
                if (first.app_id, first.key) in self._streamed:
                    continue
                place = places[first.app_id]
                places[first.app_id] += len(group)
                regions = self._regions.get(first.app_id)
                if regions is None or place + len(group) <= self._handed[first.app_id]:
                    continue
                scouted = [
                    (place + i, task)
                    for i, task in enumerate(group)
                    if task.region in regions
                    and (self._done_before is None or not self._done_before(task))
                ]
                if not scouted:
                    continue
                await gate.acquire()
                # A job under way may hold an answer not registered yet: it counts as one.
                while len(self._answers) + len(running) >= self._lookahead:
                    self._room.clear()
                    await self._room.wait()
                if self.ctx.halt.is_set or self._complete():
                    gate.release()
                    break
                job = asyncio.ensure_future(self._scout_key(group, place, scouted))
                running.add(job)
                job.add_done_callback(lambda done: self._ended(done, running, gate))
            if running:
                await asyncio.gather(*running)
        finally:
            for job in running:
                job.cancel()

    def _ended(
        self, job: asyncio.Task[None], running: set[asyncio.Task[None]], gate: asyncio.Semaphore
    ) -> None:
        running.discard(job)
        gate.release()
        self._room.set()

    async def _scout_key(
        self, group: list[Task], place: int, scouted: list[tuple[int, Task]]
    ) -> None:
        """GET the key in its scouted regions until one answers with a channel and uid."""
        app_id = group[0].app_id
        for at, task in scouted:
            if at < self._handed[app_id]:
                continue  # the pass has the pair: it sends its own GET
            pair = (app_id, task.region, task.key)
            future: asyncio.Future[TaskResult | None] = asyncio.get_running_loop().create_future()
            self._answers[pair] = future
            try:
                lookup = await query_task(self.ctx, task)
            except BaseException:
                future.set_result(None)  # a pair waiting for it sends its own GET
                raise
            # A GET that failed is not kept: the pair tries again, when its turn comes.
            future.set_result(lookup if lookup.outcome in _ANSWERED else None)
            identity = key_identity(task, lookup)
            if identity.channel is None or identity.uid is None:
                continue
            wanted = (identity.channel, identity.uid)
            if wanted in self._wanted.get(app_id, ()):
                self._found.add((app_id, wanted))
                self._move(group, place)
            return

    def _move(self, group: list[Task], place: int) -> None:
        """Hand out the key's pairs the feed has not handed out yet before any other."""
        app_id = group[0].app_id
        self.moved_keys += 1
        for at, task in enumerate(group, start=place):
            if at < self._handed[app_id]:
                continue
            self._moved.add((app_id, task.region, task.key))
            self._lane.append(task)


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
                return scout._lane.popleft()
            task = await self._next()
            if task is None:
                return None
            if (task.app_id, task.key) not in scout._streamed:
                scout._handed[task.app_id] += 1
                pair = (task.app_id, task.region, task.key)
                if pair in scout._moved:
                    scout._moved.discard(pair)
                    continue  # handed out from the front already
            return task
