"""The cyclic garbage collector, set for a run of many small requests.

Each request allocates a few hundred container objects (coroutines, futures,
headers, records), most of them freed by reference counting within
milliseconds. With CPython's defaults a young collection runs every 700 net
allocations, and every tenth of those re-examines every object the imports
left behind (tens of thousands: httpx, aiohttp, click, revoker's own
modules), none of which will ever be garbage. :func:`run_heap` freezes what
exists when the run starts and collects the young generation less often; the
collector still runs, so a reference cycle is freed at most one threshold
later, and what the run keeps is still bounded by the run's own data.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Net allocations between young collections: a few in-flight requests' worth of
# objects at the default concurrency, instead of about two.
YOUNG_THRESHOLD = 10_000


@contextmanager
def run_heap() -> Iterator[None]:
    """Within: what exists now is never scanned, and young collections are rarer.
    Restores the thresholds and unfreezes on the way out (tests run many runs in one
    process)."""
    thresholds = gc.get_threshold()
    frozen_before = gc.get_freeze_count()
    gc.freeze()
    if thresholds[0]:  # 0 turns automatic collection off: the embedding process's choice
        gc.set_threshold(max(thresholds[0], YOUNG_THRESHOLD), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        if not frozen_before:  # someone else's freeze is theirs to undo
            gc.unfreeze()
