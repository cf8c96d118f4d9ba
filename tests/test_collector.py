"""The garbage collector as the command line sets it for serving (tornado_app/collector.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from tornado_app import collector


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_what_lives_at_start_is_left_out_of_the_passes_and_young_passes_are_rarer(restored_collector: None) -> None:
    kept_for_life = [{"a": [1, 2]} for _ in range(1000)]
    collector.tune_for_serving()
    assert gc.get_freeze_count() >= len(kept_for_life)
    assert gc.get_threshold() == (collector.YOUNG_THRESHOLD, *collector.OLDER_THRESHOLDS)


def test_cyclic_garbage_made_after_start_is_still_freed(restored_collector: None) -> None:
    collector.tune_for_serving()

    class Node:
        pass

    before = sum(isinstance(o, Node) for o in gc.get_objects())
    for _ in range(3 * collector.YOUNG_THRESHOLD):
        node = Node()
        node.self = node  # type: ignore[attr-defined]  # a cycle: only the collector frees it
    del node
    assert sum(isinstance(o, Node) for o in gc.get_objects()) - before <= collector.YOUNG_THRESHOLD
