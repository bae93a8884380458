"""A queue whose items come out a fixed delay after they went in.

``revoke --verify`` feeds it every pair the DELETEs have finished and a pool of
verify workers drains it, so each GET runs ``--verify-delay`` seconds after its
DELETE (time for the deletion to replicate) while the DELETEs go on. The delay
is the same for every item, so items become ready in the order they were put: a
deque is enough, and it holds only the items of the last ``delay`` seconds plus
those waiting for the GET budget.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class DelayQueue(Generic[T]):
    """FIFO of items ready ``delay`` seconds after :meth:`put`, for concurrent consumers.

    ``backlog`` holds items that need no delay; they are handed out whenever no
    delayed item is ready. Once ``hurried()`` is true (the run halts) every item
    is handed out at once, so the consumers can record what they did not do.
    ``sleep`` must wake early when ``hurried()`` becomes true.
    """

    def __init__(
        self,
        delay: float,
        *,
        sleep: Callable[[float], Awaitable[None]],
        hurried: Callable[[], bool],
        backlog: Iterator[T] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.delay = delay
        self._sleep = sleep
        self._hurried = hurried
        self._backlog = backlog
        self._clock = clock
        self._items: deque[tuple[float, T]] = deque()
        self._closed = False
        self._changed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> None:
        """Add an item, ready ``delay`` seconds from now."""
        if self._closed:
            raise RuntimeError("put on a closed DelayQueue")
        self._items.append((self._clock() + self.delay, item))
        self._changed.set()

    def close(self) -> None:
        """No more puts: :meth:`get` returns None once everything is handed out."""
        self._closed = True
        self._changed.set()

    async def get(self) -> T | None:
        """The next ready item (delayed items first, then the backlog); None at the end."""
        while True:
            if self._items:
                ready_at = self._items[0][0]
                wait = ready_at - self._clock()
                if wait <= 0 or self._hurried():
                    return self._items.popleft()[1]
            else:
                wait = None
            if self._backlog is not None:
                item = next(self._backlog, None)
                if item is not None:
                    return item
                self._backlog = None
            if wait is not None:
                await self._sleep(wait)
            elif self._closed:
                return None
            else:
                self._changed.clear()
                await self._changed.wait()
