"""The collector thresholds tenure's hot paths run under, and that they are given back."""

from __future__ import annotations

import gc

from tenure._gc import THRESHOLDS, fewer_collections


def test_a_block_runs_with_higher_thresholds_and_gives_the_old_ones_back() -> None:
    previous = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        with fewer_collections():
            assert gc.get_threshold() == THRESHOLDS
        assert gc.get_threshold() == (700, 10, 10)
        # a caller that already runs with higher thresholds keeps its own
        gc.set_threshold(THRESHOLDS[0] * 2, 5, 5)
        with fewer_collections():
            assert gc.get_threshold() == (THRESHOLDS[0] * 2, 5, 5)
        assert gc.get_threshold() == (THRESHOLDS[0] * 2, 5, 5)
    finally:
        gc.set_threshold(*previous)


def test_thresholds_come_back_after_an_error() -> None:
    previous = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        try:
            with fewer_collections():
                raise KeyError("boom")
        except KeyError:
            pass
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(*previous)
