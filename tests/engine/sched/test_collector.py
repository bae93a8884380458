"""The collector settings of a run: cycles still freed, the process left as it was."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from revoker.engine.sched.collector import YOUNG_THRESHOLD, run_heap

DEFAULTS = (700, 10, 10)


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.fixture(autouse=True)
def known_collector() -> Iterator[None]:
    """Each test starts from CPython's defaults and nothing frozen, whatever ran before."""
    before = gc.get_threshold()
    gc.set_threshold(*DEFAULTS)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def _cycle() -> weakref.ref[_Node]:
    first, second = _Node(), _Node()
    first.other, second.other = second, first
    return weakref.ref(first)


def test_reference_cycles_made_during_a_run_are_freed_without_an_explicit_collect() -> None:
    with run_heap():
        gone = _cycle()
        assert gc.isenabled()
        # More container allocations than the young threshold: a collection must run.
        kept = [[] for _ in range(3 * YOUNG_THRESHOLD)]  # type: ignore[var-annotated]
        assert gone() is None
        del kept


def test_a_run_leaves_the_thresholds_and_the_frozen_objects_as_it_found_them() -> None:
    with run_heap():
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
        assert gc.get_freeze_count() > 0  # the imports are out of the scans
    assert gc.get_threshold() == DEFAULTS
    assert gc.get_freeze_count() == 0


def test_a_run_that_fails_still_restores_the_collector() -> None:
    with pytest.raises(RuntimeError), run_heap():
        raise RuntimeError("boom")
    assert gc.get_threshold() == DEFAULTS
    assert gc.get_freeze_count() == 0


def test_overlapping_runs_restore_the_collector_when_the_last_one_ends() -> None:
    first, second = run_heap(), run_heap()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # the first to start ends first: not nested
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    second.__exit__(None, None, None)
    assert gc.get_threshold() == DEFAULTS
    assert gc.get_freeze_count() == 0


def test_a_process_that_froze_its_heap_keeps_its_freeze_and_new_cycles_stay_collectable() -> None:
    gc.freeze()
    theirs = gc.get_freeze_count()
    gone = _cycle()  # made after their freeze: garbage, and must stay collectable
    with run_heap():
        assert gc.get_freeze_count() <= theirs  # nothing more frozen (some may have died)
    assert 0 < gc.get_freeze_count() <= theirs
    gc.collect()
    assert gone() is None


def test_a_process_that_turned_automatic_collection_off_keeps_it_off() -> None:
    gc.set_threshold(0, 10, 10)
    with run_heap():
        assert gc.get_threshold()[0] == 0
    assert gc.get_threshold()[0] == 0
