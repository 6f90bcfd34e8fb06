"""Fixtures for the coordination tests: fakeredis (Lua via lupa) for the scripts' logic, a
machine-wide state directory, and a clock the tests set by hand."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import fakeredis
import pytest

from services.coord.statedb import StateDB

START = datetime(2025, 3, 4, 23, 59, 0, tzinfo=UTC)


class Wall:
    """A settable clock: `datetime` for quotas, epoch seconds for flags, slots and leases."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now

    def utc(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def wall() -> Wall:
    return Wall()


@pytest.fixture
async def fake_redis() -> AsyncIterator[fakeredis.FakeAsyncRedis]:
    client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def state_db(tmp_path: Path) -> Iterator[StateDB]:
    db = StateDB(tmp_path / "state")
    try:
        yield db
    finally:
        db.close()


def max_in_window(times: list[float], seconds: float = 1.0) -> int:
    """The most calls in any half-open window [t, t + seconds) (the sandbox's and SEC's kind:
    a call exactly `seconds` after another is in a new window)."""
    ordered = sorted(times)
    best, first = 0, 0
    for last, t in enumerate(ordered):
        while ordered[first] <= t - seconds:
            first += 1
        best = max(best, last - first + 1)
    return best
