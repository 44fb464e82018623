"""The start-up heap (bot.heap): collection held off during start-up, then what start-up
loaded frozen out of every later collection, as ``switchboard run`` does it."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from bot.app import App
from bot.heap import StartUpHeap
from bot.service import ServiceRunner
from tests.conftest import AppFactory


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    """The test process's own collector as it was: enabled, nothing frozen."""
    yield
    gc.unfreeze()
    gc.enable()


def _walked(obj: object) -> bool:
    """Whether the collector's next collection looks at ``obj``."""
    return any(other is obj for other in gc.get_objects())


def test_held_during_start_up_then_frozen_and_collecting_again() -> None:
    heap = StartUpHeap()
    heap.hold()
    assert not gc.isenabled()
    loaded = [[n] for n in range(1000)]  # what start-up keeps (lists are always tracked)
    heap.settle()
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(loaded)
    assert gc.is_tracked(loaded[0]) and not _walked(loaded[0])
    heap.settle()  # a second settle changes nothing
    assert gc.isenabled()


def test_a_collector_disabled_before_stays_disabled() -> None:
    gc.disable()
    heap = StartUpHeap()
    heap.hold()
    heap.settle()
    assert not gc.isenabled()
    assert gc.get_freeze_count() > 0


async def test_the_runner_settles_the_heap_once_started_and_warmed_up(
    make_app: AppFactory,
) -> None:
    app: App = await make_app(HTTP_PORT="0")
    heap = StartUpHeap()
    heap.hold()
    service = ServiceRunner(app, channels=[], heap=heap)
    await service.start()
    try:
        for _ in range(200):  # the warm-up thread imports the SDKs
            if gc.isenabled():
                break
            await asyncio.sleep(0.05)
        assert gc.isenabled(), "collection still held after start-up and warm-up"
        # The app built at start-up is out of the collector's walks from now on.
        assert not _walked(app)
        assert gc.get_freeze_count() > 0
    finally:
        await service.stop()
