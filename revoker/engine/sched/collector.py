"""The cyclic garbage collector, set for a run of many small requests.

Each request allocates a few hundred container objects (coroutines, futures,
headers, records), most of them freed by reference counting within
milliseconds. With CPython's defaults a young collection runs every 700 net
allocations, and every tenth of those re-examines every object the imports
left behind (tens of thousands: httpx, aiohttp, click, revoker's own
modules), none of which will ever be garbage. :func:`run_heap` freezes what
exists when the run starts and collects the young generation less often; the
collector still runs, so a reference cycle is freed at most one threshold
later, and what the run keeps is still bounded by the run's own data. Cyclic
garbage that already exists when a run starts is frozen with the rest and
freed once the run ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# Net allocations between young collections: a few in-flight requests' worth of
# objects at the default concurrency, instead of about two.
YOUNG_THRESHOLD = 10_000

_lock = threading.Lock()
# Runs inside run_heap now (a test process or an embedding program may overlap
# runs), and what the first of them found, to put back when the last one ends.
_depth = 0
_saved: tuple[tuple[int, ...], bool] = ((), False)


@contextmanager
def run_heap() -> Iterator[None]:
    """Within: what exists now is never scanned, and young collections are rarer.
    When the last overlapping run ends, the thresholds are put back and the heap
    unfrozen. A process that froze its own heap first keeps its freeze and objects
    made since stay collectable; one that turned automatic collection off keeps it off.
    """
    _enter()
    try:
        yield
    finally:
        _leave()


def _enter() -> None:
    global _depth, _saved
    with _lock:
        _depth += 1
        if _depth > 1:
            return
        thresholds = gc.get_threshold()
        ours = gc.get_freeze_count() == 0
        _saved = (thresholds, ours)
        if ours:
            gc.freeze()
        if thresholds[0]:  # 0 turns automatic collection off: the process's choice
            gc.set_threshold(max(thresholds[0], YOUNG_THRESHOLD), *thresholds[1:])


def _leave() -> None:
    global _depth
    with _lock:
        _depth -= 1
        if _depth:
            return
        thresholds, ours = _saved
        gc.set_threshold(*thresholds)
        if ours:
            gc.unfreeze()
