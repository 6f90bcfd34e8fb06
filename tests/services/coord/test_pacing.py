"""The pacing rule: reservations, the lateness check, and the window bound it buys."""

from __future__ import annotations

import random

import pytest

from services.coord.pacing import PaceStats, Pacing, paced, reserve
from tests.services.coord.conftest import max_in_window


def test_reservations_queue_one_interval_apart() -> None:
    pacing = Pacing(5.0)
    assert reserve(None, 100.0, pacing) == (100.0, True)
    slot2, booked = reserve(100.0, 100.01, pacing)
    assert slot2 == pytest.approx(100.204) and booked
    slot3, _ = reserve(slot2, 100.02, pacing)
    assert slot3 == pytest.approx(100.408)
    idle, _ = reserve(slot3, 150.0, pacing)  # a slot in the past is free now
    assert idle == 150.0


def test_a_slot_further_than_the_lookahead_is_not_booked() -> None:
    """A process killed while it waits has booked at most one slot, within a second."""
    slow = Pacing(1 / 13)  # Alpha Vantage: one call per 13 s
    slot, booked = reserve(100.0, 100.5, slow)
    assert slot == pytest.approx(100.0 + 13 * 1.02) and not booked
    slot, booked = reserve(100.0, 100.0 + 13 * 1.02 - 0.4, slow)
    assert booked


def test_each_caller_adds_its_own_interval() -> None:
    """A slot booked by a slower configuration does not hold a faster one back by its rate."""
    assert reserve(100.0, 100.0, Pacing(200.0))[0] == pytest.approx(100.0051)


def test_a_last_slot_beyond_the_horizon_is_taken_as_free() -> None:
    """A wall clock stepped back (or a damaged row) must not park every process for hours."""
    pacing = Pacing(5.0, lookahead=1e9)
    slot, _ = reserve(100.0 + pacing.horizon + 1, 100.0, pacing)
    assert slot == 100.0
    slot, _ = reserve(100.0 + pacing.horizon - 1, 100.0, pacing)
    assert slot == pytest.approx(100.0 + pacing.horizon - 1 + pacing.interval)


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

    async def book() -> tuple[float, bool]:
        return waits.pop(0), True

    await paced(book, Pacing(5.0), stats, monotonic=clock.monotonic, sleep=clock.sleep)
    assert (stats.acquired, stats.rebooked) == (1, 1)
    assert clock.now == pytest.approx(0.2 + 0.05 + 0.3 + 0.001)


async def test_a_caller_on_time_goes_at_once_after_its_slot() -> None:
    clock = FakeTime(late=[0.01])
    stats = PaceStats()

    async def book() -> tuple[float, bool]:
        return 0.5, True

    await paced(book, Pacing(5.0), stats, monotonic=clock.monotonic, sleep=clock.sleep)
    assert (stats.acquired, stats.rebooked, clock.now) == (1, 0, pytest.approx(0.51))


async def test_a_far_slot_is_slept_towards_then_booked() -> None:
    clock = FakeTime(late=[])
    answers = [(13.0, False), (0.5, True)]
    stats = PaceStats()

    async def book() -> tuple[float, bool]:
        return answers.pop(0)

    await paced(book, Pacing(1 / 13), stats, monotonic=clock.monotonic, sleep=clock.sleep)
    assert (stats.deferred, stats.acquired) == (1, 1)
    assert clock.now == pytest.approx(12.5 + 0.5)


def simulate(pacing: Pacing, rng: random.Random, callers: int, calls: int) -> list[float]:
    """Slots as the backends hand them out; each call starts up to `tolerance` late (later
    wakes rebook, as `paced` does)."""
    last: float | None = None
    starts: list[float] = []
    now = 0.0
    pending = callers * calls
    while pending:
        now += rng.random() * pacing.interval * 0.5
        slot, booked = reserve(last, now, pacing)
        if not booked:
            continue  # sleeps towards it and asks again
        last = slot
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
    overran = 0
    for _ in range(30):
        last: float | None = None
        starts = []
        for _ in range(60):
            last, _booked = reserve(last, 0.0, Pacing(5.0, tolerance=0.0, lookahead=1e9))
            starts.append(last + rng.random() * 0.02)
        overran += max_in_window(starts) > 5
    assert overran > 0
