"""DelayQueue: items come out ``delay`` after they went in, in order, with a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from revoker.engine.sched.delayqueue import DelayQueue


class FakeTime:
    """A clock that only moves when a consumer sleeps (or the test moves it)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []
        self.hurry = False

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def queue(
    time: FakeTime, delay: float = 2.0, backlog: Iterator[str] | None = None
) -> DelayQueue[str]:
    return DelayQueue(
        delay, sleep=time.sleep, hurried=lambda: time.hurry, backlog=backlog, clock=time.clock
    )


def test_items_come_out_in_order_each_no_sooner_than_the_delay_after_its_put() -> None:
    time = FakeTime()

    async def go() -> list[tuple[str, float]]:
        q = queue(time)
        q.put("a")
        time.now += 0.5
        q.put("b")
        q.close()
        out = []
        while (item := await q.get()) is not None:
            out.append((item, time.now))
        return out

    assert asyncio.run(go()) == [("a", 102.0), ("b", 102.5)]
    assert time.slept == [1.5, 0.5]


def test_backlog_items_go_out_at_once_while_no_delayed_item_is_ready() -> None:
    time = FakeTime()

    async def go() -> list[str]:
        q = queue(time, backlog=iter(["old-1", "old-2"]))
        q.put("new")
        first = [await q.get(), await q.get()]
        time.now += 2.0  # "new" is ready: it goes before the rest of the backlog
        q.put("newer")
        q.close()
        rest = []
        while (item := await q.get()) is not None:
            rest.append(item)
        return [*first, *rest]  # type: ignore[list-item]

    assert asyncio.run(go()) == ["old-1", "old-2", "new", "newer"]
    assert time.slept == [2.0], "only 'newer' was waited for"


def test_once_hurried_every_item_goes_out_without_waiting() -> None:
    time = FakeTime()

    async def go() -> list[str | None]:
        q = queue(time, delay=60.0)
        q.put("a")
        q.put("b")
        time.hurry = True
        q.close()
        return [await q.get(), await q.get(), await q.get()]

    assert asyncio.run(go()) == ["a", "b", None]
    assert time.slept == []


def test_consumers_waiting_on_an_empty_queue_wake_on_put_and_end_on_close() -> None:
    time = FakeTime()

    async def go() -> list[str | None]:
        q = queue(time, delay=0.0)
        consumers = [asyncio.create_task(q.get()) for _ in range(3)]
        await asyncio.sleep(0)
        q.put("a")
        await asyncio.sleep(0)
        q.close()
        return list(await asyncio.gather(*consumers))

    assert sorted(asyncio.run(go()), key=str) == [None, None, "a"]
