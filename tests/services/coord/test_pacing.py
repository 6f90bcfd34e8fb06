"""The pacing rule: reservations, the lateness check, and the window bound it buys."""

from __future__ import annotations

import random

import pytest

from services.coord.pacing import PaceStats, Pacing, paced, reserve
from tests.services.coord.conftest import max_in_window


def test_reservations_queue_one_interval_apart() -> None:
    pacing = Pacing(5.0)
    slot, after = reserve(None, 100.0, pacing)
    assert (slot, after) == (100.0, pytest.approx(100.204))
    slot2, after2 = reserve(after, 100.01, pacing)
    assert slot2 == after and after2 == pytest.approx(100.408)
    idle, _ = reserve(after2, 150.0, pacing)  # a slot in the past is free now
    assert idle == 150.0


def test_a_next_free_beyond_the_horizon_is_taken_as_free() -> None:
    """A wall clock stepped back (or a damaged row) must not park every process for hours."""
    pacing = Pacing(5.0)
    slot, _ = reserve(100.0 + pacing.horizon + 1, 100.0, pacing)
    assert slot == 100.0
    slot, _ = reserve(100.0 + pacing.horizon - 1, 100.0, pacing)
    assert slot == 100.0 + pacing.horizon - 1


@pytest.mark.parametrize("rate", [0.0, -1.0, float("inf"), float("nan")])
def test_rates_must_be_positive_and_finite(rate: float) -> None:
    with pytest.raises(ValueError, match="rate_per_second"):
        Pacing(rate)


class FakeTime:
    def __init__(self, late: list[float]) -> None:
        self.now = 0.0
        self.late = late  # extra lateness of each successive sleep

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds + (self.late.pop(0) if self.late else 0.0)


async def test_a_caller_that_wakes_too_late_books_again() -> None:
    clock = FakeTime(late=[0.05, 0.001])
    waits = [0.2, 0.3]
    stats = PaceStats()

    async def book() -> float:
        return waits.pop(0)

    await paced(book, 0.02, stats, monotonic=clock.monotonic, sleep=clock.sleep)
    assert (stats.acquired, stats.rebooked) == (1, 1)
    assert clock.now == pytest.approx(0.2 + 0.05 + 0.3 + 0.001)


async def test_a_caller_on_time_goes_at_once_after_its_slot() -> None:
    clock = FakeTime(late=[0.01])
    stats = PaceStats()

    async def book() -> float:
        return 0.5

    await paced(book, 0.02, stats, monotonic=clock.monotonic, sleep=clock.sleep)
    assert (stats.acquired, stats.rebooked, clock.now) == (1, 0, pytest.approx(0.51))


def simulate(pacing: Pacing, rng: random.Random, callers: int, calls: int) -> list[float]:
    """Slots as the backends hand them out; each call starts up to `tolerance` late (later
    wakes rebook, as `paced` does)."""
    next_free: float | None = None
    starts: list[float] = []
    now = 0.0
    pending = callers * calls
    while pending:
        now += rng.random() * pacing.interval * 0.5
        slot, next_free = reserve(next_free, now, pacing)
        late = rng.random() * pacing.tolerance * 1.5
        if late > pacing.tolerance:
            continue  # rebooks
        starts.append(slot + late)
        pending -= 1
    return starts


@pytest.mark.parametrize("rate", [2.0, 5.0, 10.0])
def test_no_one_second_window_ever_holds_more_than_the_rate(rate: float) -> None:
    rng = random.Random(7)
    for _ in range(30):
        starts = simulate(Pacing(rate), rng, callers=3, calls=20)
        assert max_in_window(starts) <= rate


def test_without_the_tolerance_late_wakes_do_overrun() -> None:
    """The control: slots exactly 1/rate apart plus the same lateness exceed the rate."""
    rng = random.Random(7)
    exact = Pacing(5.0, tolerance=0.0)
    overran = 0
    for _ in range(30):
        next_free: float | None = None
        starts = []
        for _ in range(60):
            slot, next_free = reserve(next_free, 0.0, exact)
            starts.append(slot + rng.random() * 0.02)
        overran += max_in_window(starts) > 5
    assert overran > 0
