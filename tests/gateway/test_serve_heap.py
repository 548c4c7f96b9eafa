"""``airlock serve`` moves what start-up made out of the cyclic collector's sight, garbage collected first."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from gateway.serve import settle_heap


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


@pytest.fixture
def thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the test run collects as usual


def test_start_up_objects_are_frozen_and_garbage_is_not(thawed: None) -> None:
    kept, dropped = Node(), Node()
    gone = weakref.ref(dropped)
    del dropped
    assert gc.get_freeze_count() == 0
    settle_heap()
    assert gone() is None  # collected before the freeze, never kept forever
    assert gc.get_freeze_count() > 0
    assert kept.me is kept
