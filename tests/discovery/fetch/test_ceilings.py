"""The memory ceiling's policy and the resizable concurrency gate."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from discovery.fetch.ceilings import (
    Level,
    MemoryCeiling,
    classify,
    current_rss_mb,
    next_concurrency,
    peak_rss_mb,
    watch_loop,
)


def readings(*values: float) -> Iterator[float]:
    yield from values
    while True:
        yield values[-1]


@pytest.mark.parametrize(
    ("rss", "expected"),
    [(0, Level.OK), (79.9, Level.OK), (80, Level.SOFT), (99.9, Level.SOFT), (100, Level.HARD)],
)
def test_classify_against_soft_and_hard_limits(rss: float, expected: Level) -> None:
    assert classify(rss, 100, 0.8) is expected


@pytest.mark.parametrize(
    ("current", "level", "floor", "expected"),
    [
        (16, Level.OK, 1, 16),
        (16, Level.SOFT, 1, 8),
        (3, Level.SOFT, 1, 1),
        (1, Level.SOFT, 1, 1),
        (8, Level.SOFT, 6, 6),
        (16, Level.HARD, 1, 1),
        (16, Level.SOFT, 0, 8),
        (1, Level.SOFT, 0, 1),
    ],
)
def test_next_concurrency_halves_and_never_drops_below_the_floor(
    current: int, level: Level, floor: int, expected: int
) -> None:
    assert next_concurrency(current, level, floor) == expected


def test_check_tracks_peak_collects_on_soft_and_stops_on_hard() -> None:
    values = iter([10.0, 85.0, 50.0, 120.0, 30.0])
    collected: list[int] = []
    ceiling = MemoryCeiling(
        100, rss_reader=lambda: next(values), collect=lambda: collected.append(1)
    )

    assert ceiling.check() is Level.OK
    assert collected == [] and not ceiling.stop_scheduling
    assert ceiling.check() is Level.SOFT
    assert collected == [1] and ceiling.soft_events == 1
    assert ceiling.check() is Level.OK
    assert ceiling.check() is Level.HARD
    assert ceiling.stop_scheduling
    # Sticky: a lower reading later does not resume scheduling.
    assert ceiling.check() is Level.OK
    assert ceiling.stop_scheduling
    assert ceiling.peak_mb == 120.0
    assert ceiling.last_mb == 30.0


def test_garbage_is_collected_once_per_climb_not_on_every_soft_tick() -> None:
    values = iter([85.0, 85.0, 84.0, 87.0, 87.0, 10.0, 85.0])
    collected: list[float] = []
    ceiling = MemoryCeiling(
        100, rss_reader=lambda: next(values), collect=lambda: collected.append(1)
    )
    levels = [ceiling.check() for _ in range(7)]
    assert levels == [Level.SOFT] * 5 + [Level.OK, Level.SOFT]
    # 85 collects, plateau and dip don't, 87 (higher) does, back under then over again does.
    assert len(collected) == 3
    assert ceiling.soft_events == 6


def test_hard_reached_reads_rss_itself_before_any_watcher_ran() -> None:
    reads: list[int] = []

    def reader() -> float:
        reads.append(1)
        return 150.0

    ceiling = MemoryCeiling(100, rss_reader=reader, collect=lambda: None)
    assert ceiling.hard_reached is True
    assert ceiling.hard_reached is True
    assert len(reads) == 1  # sticky: no further reads once stopped


def test_hard_reached_reuses_a_fresh_reading() -> None:
    reads: list[int] = []

    def reader() -> float:
        reads.append(1)
        return 10.0

    ceiling = MemoryCeiling(100, rss_reader=reader, collect=lambda: None)
    ceiling.fresh_s = 60.0
    assert not ceiling.hard_reached and not ceiling.hard_reached
    assert len(reads) == 1
    ceiling.fresh_s = -1.0  # always stale
    assert not ceiling.hard_reached
    assert len(reads) == 2


def test_ceiling_rejects_nonsense_limits() -> None:
    with pytest.raises(ValueError):
        MemoryCeiling(0)
    with pytest.raises(ValueError):
        MemoryCeiling(100, soft_ratio=1.5)


def test_real_rss_readers_return_plausible_megabytes() -> None:
    now = current_rss_mb()
    peak = peak_rss_mb()
    assert 5 < now < 4096
    assert peak >= now * 0.9  # peak so far is at least (about) the current RSS
    ceiling = MemoryCeiling(1_000_000)
    assert ceiling.check() is Level.OK
    assert ceiling.peak_mb > 5


async def test_watch_shrinks_while_growing_then_holds_and_signals_hard_once() -> None:
    rss = readings(10, 85, 86, 86, 86, 90, 150, 150)
    ceiling = MemoryCeiling(100, rss_reader=lambda: next(rss), collect=lambda: None)
    state = {"concurrency": 16}
    history: list[int] = []
    hard_calls: list[int] = []

    def set_c(n: int) -> None:
        state["concurrency"] = n
        history.append(n)

    task = asyncio.create_task(
        watch_loop(
            ceiling,
            lambda: state["concurrency"],
            set_c,
            interval_s=0.001,
            on_hard=lambda: hard_calls.append(1),
        )
    )
    for _ in range(200):
        await asyncio.sleep(0.002)
        if hard_calls and len(history) >= 5:
            break
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # 85 → 8, 86 (growing) → 4, plateau at 86 holds, 90 → 2, 150 hard → 1 (repeated while hard).
    assert history[:4] == [8, 4, 2, 1]
    assert set(history[4:]) <= {1}
    assert hard_calls == [1]
    assert ceiling.stop_scheduling
    assert ceiling.peak_mb == 150


class FakeHub:
    def __init__(self, n: int) -> None:
        self._n = n
        self.calls: list[int] = []

    @property
    def concurrency(self) -> int:
        return self._n

    def set_concurrency(self, n: int) -> None:
        self._n = n
        self.calls.append(n)


async def test_watch_method_steers_a_hub_and_flags_hard_reached() -> None:
    rss = readings(50, 85, 120)
    ceiling = MemoryCeiling(100, rss_reader=lambda: next(rss), collect=lambda: None)
    hub = FakeHub(16)
    task = asyncio.create_task(ceiling.watch(hub, interval_s=0.001))
    for _ in range(200):
        await asyncio.sleep(0.002)
        if ceiling.hard_reached:
            break
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ceiling.hard_reached
    assert hub.calls[:2] == [8, 1]
    assert hub.concurrency == 1
