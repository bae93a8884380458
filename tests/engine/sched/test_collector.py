"""The collector settings of a run: cycles still freed, the process left as it was."""

from __future__ import annotations

import gc
import weakref

from revoker.engine.sched.collector import YOUNG_THRESHOLD, run_heap


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_reference_cycles_made_during_a_run_are_still_freed() -> None:
    with run_heap():
        first, second = _Node(), _Node()
        first.other, second.other = second, first
        gone = weakref.ref(first)
        del first, second
        gc.collect()
        assert gone() is None


def test_a_run_leaves_the_thresholds_and_the_frozen_objects_as_it_found_them() -> None:
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    with run_heap():
        assert gc.get_threshold()[0] >= YOUNG_THRESHOLD
        assert gc.get_freeze_count() > 0  # the imports are out of the scans
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_run_that_fails_still_restores_the_collector() -> None:
    before = gc.get_threshold()
    try:
        with run_heap():
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_process_that_turned_automatic_collection_off_keeps_it_off() -> None:
    before = gc.get_threshold()
    gc.set_threshold(0, *before[1:])
    try:
        with run_heap():
            assert gc.get_threshold()[0] == 0
        assert gc.get_threshold()[0] == 0
    finally:
        gc.set_threshold(*before)
