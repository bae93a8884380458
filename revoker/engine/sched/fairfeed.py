"""Hand out the tasks of several app IDs so every app's budget is used at once.

Each app ID has its own rate budget (one pacer per app and method). Workers
taking tasks from one FIFO all sit on the first app's pacer while the other
apps' budgets go unused: input sorted by app (as any export by project is) then
runs one app after another. :class:`AppFairFeed` reads a bounded look-ahead of
the plan into one queue per app and gives each worker the next task of the app
whose pacer has the earliest free slot, so the apps run side by side whatever
the input order. Without a cap (no pacer), or among apps free alike, the plan's
order decides.

Within one app the plan's order holds: its tasks are handed out first in,
first out, so a key is sent in all its regions before the next key of that app
starts. The look-ahead is bounded (:data:`LOOKAHEAD` tasks): an app whose tasks
lie further down a grouped input than that waits until the ones before it are
handed out.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterator

from revoker.engine.sched.pacing import RateLimits
from revoker.models import Task

# Tasks read ahead of the workers; each is a few hundred bytes.
LOOKAHEAD = 8192


class AppFairFeed:
    """A :class:`~revoker.engine.sched.pool.TaskFeed` over ``tasks`` that serves the app whose
    budget (``limits``) frees a slot first; plan order within each app."""

    def __init__(
        self, tasks: Iterator[Task], limits: RateLimits, *, lookahead: int = LOOKAHEAD
    ) -> None:
        self._tasks = tasks
        self._limits = limits
        self._lookahead = max(1, lookahead)
        # By app ID: each task with its place in the plan (ties go to the earlier one).
        self._queues: dict[str, deque[tuple[int, Task]]] = {}
        # One entry an app with tasks waiting: its turn when pushed, then the app ID.
        # A turn only ever moves later (a pacer's next slot never moves back), so a
        # stale entry is pushed back with its current turn when it comes up.
        self._heap: list[tuple[float, int, str]] = []
        self._read = 0
        self._buffered = 0
        self._exhausted = False

    def _fill(self) -> None:
        while not self._exhausted and self._buffered < self._lookahead:
            task = next(self._tasks, None)
            if task is None:
                self._exhausted = True
                return
            queue = self._queues.get(task.app_id)
            if queue is None:
                queue = self._queues[task.app_id] = deque()
                queue.append((self._read, task))
                heapq.heappush(self._heap, (*self._turn(task.app_id), task.app_id))
            else:
                queue.append((self._read, task))
            self._read += 1
            self._buffered += 1

    def _turn(self, app_id: str) -> tuple[float, int]:
        """When the app's next slot is free, then its next task's place in the plan."""
        pacer = self._limits.get(app_id)
        free_at = float("-inf") if pacer is None else pacer.free_at
        return free_at, self._queues[app_id][0][0]

    def next_task(self) -> Task | None:
        """The next task to start, or None once every task was handed out."""
        self._fill()
        heap = self._heap
        while heap:
            free_at, place, app_id = heap[0]
            turn = self._turn(app_id)
            if turn > (free_at, place):
                heapq.heapreplace(heap, (*turn, app_id))
                continue
            queue = self._queues[app_id]
            _, task = queue.popleft()
            if queue:
                heapq.heapreplace(heap, (*self._turn(app_id), app_id))
            else:
                heapq.heappop(heap)
                del self._queues[app_id]
            self._buffered -= 1
            return task
        return None

    async def get(self) -> Task | None:
        return self.next_task()
