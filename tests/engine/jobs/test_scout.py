"""The scout: keys of keyless (WHIP) live streams found ahead of the pass and moved to the front.

The scout's GETs are replaced by a fake that answers when the test says so: no
clock, no HTTP; the order of what the feed hands out is the behaviour under test.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from revoker.engine.jobs import scout as scout_module
from revoker.engine.jobs.disconnect_records import Listing
from revoker.engine.jobs.scout import Scout, keyless_streams
from revoker.engine.matching import parse_push_url
from revoker.engine.sched.pool import Halt
from revoker.models import Outcome, Task, TaskResult

APP = "app1"
REGIONS = ("na", "eu")


def listing(*streams: dict[str, Any]) -> Listing:
    result = TaskResult(Task(APP, "na", ""), Outcome.PRESENT)
    return Listing(result, [(s, parse_push_url(s.get("url"))) for s in streams])


def whip(channel: str, uid: str) -> dict[str, Any]:
    return {"sid": f"S-{channel}", "channel": channel, "uid": uid, "url": "https://h/whip"}


def identity_of(key: str) -> dict[str, Any]:
    """Each key ``kN`` has channel ``chN`` and uid ``N`` in every region."""
    return {"streamKey": key, "channel": f"ch{key[1:]}", "uid": key[1:]}


def plan(keys: list[str], app: str = APP) -> list[Task]:
    return [Task(app, region, key) for key in keys for region in REGIONS]


class FakeGets:
    """Stands in for ``query_task``: records each GET and answers at once, or when released."""

    def __init__(self, *, hold: bool = False, failing: frozenset[str] = frozenset()) -> None:
        self.sent: list[Task] = []
        self.hold = hold
        self.failing = failing
        self.release = asyncio.Event()

    async def __call__(self, ctx: Any, task: Task) -> TaskResult:
        self.sent.append(task)
        if self.hold:
            await self.release.wait()
        if task.key in self.failing:
            return TaskResult(task, Outcome.FAILED, message="HTTP 503")
        return TaskResult(task, Outcome.PRESENT, data=identity_of(task.key))


def make_scout(
    monkeypatch: pytest.MonkeyPatch,
    tasks: list[Task],
    listings: dict[tuple[str, str], Listing],
    *,
    gets: FakeGets | None = None,
    streamed: frozenset[tuple[str, str]] = frozenset(),
    lookahead: int = 64,
) -> tuple[Scout, FakeGets]:
    gets = gets or FakeGets()
    monkeypatch.setattr(scout_module, "query_task", gets)
    ctx: Any = SimpleNamespace(listings=listings, halt=Halt())
    scout = Scout(ctx, lambda: iter(tasks), streamed, concurrency=2, lookahead=lookahead)
    return scout, gets


async def drain(feed: Any) -> list[Task]:
    handed = []
    while (task := await feed.get()) is not None:
        handed.append(task)
    return handed


def test_only_streams_whose_url_names_no_key_are_looked_for() -> None:
    listings = {
        (APP, "na"): listing(
            whip("ch1", "1"),
            {"sid": "S2", "channel": "ch2", "uid": "2", "url": "rtmp://h/live/k2"},
            {"sid": "S3", "channel": "ch3", "url": "https://h/whip"},  # no uid: no match
        ),
        (APP, "eu"): listing(),
    }
    wanted, regions = keyless_streams(listings)
    assert wanted == {APP: {("ch1", "1")}}
    assert regions == {APP: {"na"}}


def test_a_whip_key_last_in_the_input_is_handed_out_before_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def go() -> None:
        keys = [f"k{i}" for i in range(10)]
        tasks = plan(keys)
        scout, gets = make_scout(monkeypatch, tasks, {(APP, "eu"): listing(whip("ch9", "9"))})
        await scout.run()
        handed = await drain(scout.feed(iter(tasks)))
        assert handed[:2] == [Task(APP, "na", "k9"), Task(APP, "eu", "k9")]
        assert sorted(handed, key=tasks.index) == tasks  # every pair once, none twice
        assert scout.moved_keys == 1
        # One GET per key, in the region with the keyless stream; then the scout stopped.
        assert gets.sent == [Task(APP, "eu", k) for k in keys]

    asyncio.run(go())


def test_the_scouts_answer_is_the_pairs_lookup_and_is_taken_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def go() -> None:
        tasks = plan(["k1", "k2"])
        scout, _ = make_scout(monkeypatch, tasks, {(APP, "na"): listing(whip("ch2", "2"))})
        await scout.run()
        answer = scout.take(Task(APP, "na", "k2"))
        assert answer is not None
        lookup = await answer
        assert lookup is not None
        assert lookup.data == identity_of("k2")
        assert scout.take(Task(APP, "na", "k2")) is None  # the pass GETs nothing twice
        assert scout.take(Task(APP, "eu", "k2")) is None  # not scouted there: the pass GETs it

    asyncio.run(go())


def test_a_failed_scouting_get_is_not_kept_so_the_pair_sends_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def go() -> None:
        tasks = plan(["k1", "k2"])
        gets = FakeGets(failing=frozenset({"k1"}))
        scout, _ = make_scout(
            monkeypatch, tasks, {(APP, "na"): listing(whip("ch2", "2"))}, gets=gets
        )
        await scout.run()
        answer = scout.take(Task(APP, "na", "k1"))
        assert answer is not None
        assert await answer is None

    asyncio.run(go())


def test_pairs_the_feed_handed_out_already_are_neither_scouted_nor_handed_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def go() -> None:
        keys = ["k0", "k1", "k2", "k3"]
        tasks = plan(keys)
        gets = FakeGets(hold=True)
        scout, _ = make_scout(
            monkeypatch, tasks, {(APP, "na"): listing(whip("ch1", "1"))}, gets=gets
        )
        feed = scout.feed(iter(tasks))
        # The pass takes k0 in both regions and k1 in na before the scout gets going.
        early = [await feed.get() for _ in range(3)]
        assert early == tasks[:3]
        running = asyncio.ensure_future(scout.run())
        await asyncio.sleep(0)
        gets.release.set()
        await running
        assert Task(APP, "na", "k0") not in gets.sent
        assert Task(APP, "na", "k1") not in gets.sent
        rest = await drain(feed)
        assert early + rest == tasks  # k1's eu pair once, in its place: nothing moved twice

    asyncio.run(go())


def test_keys_whose_url_streams_put_them_first_already_are_not_scouted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def go() -> None:
        tasks = plan(["k1", "k2"])
        scout, gets = make_scout(
            monkeypatch,
            tasks,
            {(APP, "na"): listing(whip("ch9", "9"))},
            streamed=frozenset({(APP, "k1")}),
        )
        await scout.run()
        assert gets.sent == [Task(APP, "na", "k2")]

    asyncio.run(go())


def test_the_scout_holds_at_most_its_lookahead_of_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def go() -> None:
        keys = [f"k{i}" for i in range(10)]
        tasks = plan(keys)
        scout, gets = make_scout(
            monkeypatch, tasks, {(APP, "na"): listing(whip("ch99", "99"))}, lookahead=3
        )
        running = asyncio.ensure_future(scout.run())
        for _ in range(20):
            await asyncio.sleep(0)
        assert len(gets.sent) == 3  # waiting for the pass to take an answer
        assert scout.take(Task(APP, "na", "k0")) is not None
        for _ in range(20):
            await asyncio.sleep(0)
        assert len(gets.sent) == 4
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running

    asyncio.run(go())


def test_no_keyless_stream_means_no_scouting(monkeypatch: pytest.MonkeyPatch) -> None:
    async def go() -> None:
        tasks = plan(["k1"])
        streams = {
            (APP, "na"): listing(
                {"sid": "S", "channel": "c", "uid": "1", "url": "rtmp://h/live/k1"}
            )
        }
        scout, gets = make_scout(monkeypatch, tasks, streams)
        assert not scout.active
        await scout.run()
        assert gets.sent == []

    asyncio.run(go())
