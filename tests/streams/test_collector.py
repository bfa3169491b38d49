"""The garbage collector's full passes walk only what the last second made
(streams/collector.py): the worker's state is frozen between messages, and young garbage
is collected before. (A Meter let go is freed though frozen: tests/streams/test_holder.py.)"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from streams.collector import Freezer


class Node:
    """An object that can sit in a reference cycle and be watched through a weakref."""

    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> weakref.ref[Node]:
    """A two-node cycle no one else refers to: only the collector can free it."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    """The test process's collector as it found it: nothing frozen."""
    gc.collect()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.collect()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_what_is_alive_is_frozen_at_most_once_a_second() -> None:
    clock = Clock()
    freezer = Freezer(every_s=1.0, clock=clock)
    freezer.between_messages()
    frozen = gc.get_freeze_count()
    assert frozen > 0
    kept = [Node() for _ in range(100)]
    clock.now += 0.5
    freezer.between_messages()
    assert gc.get_freeze_count() == frozen
    clock.now += 0.5
    freezer.between_messages()
    assert gc.get_freeze_count() >= frozen + len(kept)


def test_garbage_waiting_for_the_collector_is_collected_not_frozen() -> None:
    gone = cycle()
    Freezer(clock=Clock()).between_messages()
    assert gone() is None
