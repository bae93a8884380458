"""The app-fair feed, with a fake clock: every app's budget used at once, plan order per app."""

from __future__ import annotations

import asyncio
import heapq
from collections import defaultdict
from collections.abc import Iterator
from itertools import count

from revoker.engine.sched.fairfeed import AppFairFeed
from revoker.engine.sched.pacing import RateLimits
from revoker.models import Task

REGIONS = ("na", "eu", "ap", "cn")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def plan(apps: int, keys: int, *, grouped: bool) -> list[Task]:
    """``keys`` keys of each of ``apps`` apps, each in four regions, grouped by app or not."""
    rows = [(f"app{a}", f"key{a}x{k:04d}" + "q" * 20) for a in range(apps) for k in range(keys)]
    if not grouped:
        rows.sort(key=lambda row: row[1][row[1].index("x") :])
    return [Task(app, region, key) for app, key in rows for region in REGIONS]


def booked_slots(feed: AppFairFeed, limits: RateLimits, clock: Clock) -> list[tuple[Task, float]]:
    """Each task as a worker takes it and books its app's next slot (nobody waits)."""
    slots = []
    while (task := feed.next_task()) is not None:
        pacer = limits.get(task.app_id)
        assert pacer is not None
        slots.append((task, clock.now + pacer.reserve()))
    return slots


def test_apps_grouped_in_the_input_share_the_time_not_queue_behind_each_other() -> None:
    clock = Clock()
    limits = RateLimits(50, clock=clock)
    tasks = plan(10, 25, grouped=True)  # 100 tasks an app, one app after another
    slots = booked_slots(AppFairFeed(iter(tasks), limits), limits, clock)
    last = defaultdict(float)
    for task, slot in slots:
        last[task.app_id] = max(last[task.app_id], slot - clock.now)
    one_app = 100 / (50 * 0.955)  # one app's tasks at its own pace
    assert max(last.values()) < one_app * 1.05
    # Every app has started before any app is half done.
    first_seen = {}
    for index, (task, _) in enumerate(slots):
        first_seen.setdefault(task.app_id, index)
    assert max(first_seen.values()) < 10


def test_within_an_app_tasks_go_in_plan_order_whatever_the_other_apps_do() -> None:
    clock = Clock()
    limits = RateLimits(50, clock=clock)
    tasks = plan(3, 10, grouped=True)
    handed = [task for task, _ in booked_slots(AppFairFeed(iter(tasks), limits), limits, clock)]
    for app in ("app0", "app1", "app2"):
        assert [t for t in handed if t.app_id == app] == [t for t in tasks if t.app_id == app]


def test_the_feed_reads_no_further_ahead_than_its_look_ahead() -> None:
    clock = Clock()
    limits = RateLimits(50, clock=clock)
    read = 0

    def counted() -> Iterator[Task]:
        nonlocal read
        for task in plan(2, 50, grouped=True):
            read += 1
            yield task

    feed = AppFairFeed(counted(), limits, lookahead=16)
    for handed in range(1, 40):
        assert feed.next_task() is not None
        assert read <= handed + 16


def test_an_app_past_the_look_ahead_waits_and_is_served_once_it_is_read() -> None:
    clock = Clock()
    limits = RateLimits(50, clock=clock)
    tasks = plan(2, 10, grouped=True)  # 40 tasks of app0, then 40 of app1
    handed = [
        t for t, _ in booked_slots(AppFairFeed(iter(tasks), limits, lookahead=8), limits, clock)
    ]
    assert sorted(handed, key=tasks.index) == tasks
    first_app1 = next(i for i, t in enumerate(handed) if t.app_id == "app1")
    assert 40 - 8 <= first_app1 <= 40


def test_without_a_rate_cap_the_feed_keeps_the_input_order() -> None:
    limits = RateLimits(0)
    tasks = plan(3, 5, grouped=False)
    feed = AppFairFeed(iter(tasks), limits)
    handed = []
    while (task := asyncio.run(feed.get())) is not None:
        handed.append(task)
    assert handed == tasks


def rotate_slots(
    feed: AppFairFeed, limits: dict[str, RateLimits], clock: Clock, workers: int
) -> list[tuple[Task, float]]:
    """Workers running rotate's steps on a fake clock: GET, then DELETE once the GET is
    answered, then create (POST) once the DELETE is; the next task once the create is.
    The feed sees a task's DELETE only when it is booked, a GET's time after handing out."""
    answer = 0.05  # each request's round trip
    events: list[tuple[float, int, Task, str]] = []
    order = count()
    deletes = []

    def book(method: str, task: Task, step: str) -> None:
        pacer = limits[method].get(task.app_id)
        assert pacer is not None
        heapq.heappush(events, (clock.now + pacer.reserve() + answer, next(order), task, step))

    def take() -> None:
        task = feed.next_task()
        if task is not None:
            book("GET", task, "looked up")

    for _ in range(workers):
        take()
    while events:
        clock.now, _, task, step = heapq.heappop(events)
        if step == "looked up":
            deletes.append((task, clock.now))
            book("DELETE", task, "deleted")
        elif step == "deleted":
            book("POST", task, "created")
        else:
            take()
    return deletes


def test_rotate_runs_apps_grouped_in_the_input_side_by_side_in_each_apps_key_order() -> None:
    clock = Clock()
    limits = {method: RateLimits(rate, clock=clock) for method, rate in
              (("GET", 100), ("DELETE", 50), ("POST", 50))}  # fmt: skip
    tasks = plan(4, 25, grouped=True)  # 100 pairs an app, one app after another
    feed = AppFairFeed(iter(tasks), limits["DELETE"])
    start = clock.now
    deleted = rotate_slots(feed, limits, clock, workers=64)
    assert sorted((t for t, _ in deleted), key=tasks.index) == tasks
    one_app = 100 / (50 * 0.955)  # one app's DELETEs at its own pace
    # Each worker holds a pair for three round trips: the workers, not the budgets, bound
    # it a little (in input order: 5.3 s, about 2.5 apps' time).
    assert clock.now - start < one_app * 1.4
    first_seen: dict[str, int] = {}
    for index, (task, _) in enumerate(deleted):
        first_seen.setdefault(task.app_id, index)
    assert max(first_seen.values()) < 40
    for app in {t.app_id for t in tasks}:
        assert [t for t, _ in deleted if t.app_id == app] == [t for t in tasks if t.app_id == app]
