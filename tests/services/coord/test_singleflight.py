"""Single-flight: leases owned by a token, released only by their owner, freed by their TTL;
`once()` lets one caller fetch while the others wait and read."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import fakeredis
import pytest

from services.coord.singleflight import (
    FlightStats,
    Lease,
    MachineFlight,
    MemoryFlight,
    RedisFlight,
    SingleFlight,
    once,
)
from services.coord.statedb import StateDB

KEY = "fmp:profile:symbol=AAPL"


@pytest.fixture(params=["memory", "machine", "redis"])
async def flight(
    request: pytest.FixtureRequest, state_db: StateDB, fake_redis: fakeredis.FakeAsyncRedis
) -> AsyncIterator[SingleFlight]:
    yield {
        "memory": lambda: MemoryFlight(),
        "machine": lambda: MachineFlight(state_db),
        "redis": lambda: RedisFlight(fake_redis),
    }[request.param]()


async def test_one_owner_at_a_time_and_only_the_owner_releases(flight: SingleFlight) -> None:
    lease = await flight.acquire(KEY, 10)
    assert lease is not None and await flight.held(KEY)
    assert await flight.acquire(KEY, 10) is None
    assert not await flight.release(Lease(KEY, "not-the-owner"))
    assert not await flight.renew(Lease(KEY, "not-the-owner"), 10)
    assert await flight.held(KEY)
    assert await flight.renew(lease, 10)
    assert await flight.release(lease)
    assert not await flight.held(KEY)
    assert not await flight.release(lease)  # twice: nothing of a later owner is touched


async def test_a_dead_owners_lease_expires(flight: SingleFlight) -> None:
    dead = await flight.acquire(KEY, 0.2)
    assert dead is not None
    started = time.monotonic()
    assert await flight.wait(KEY, 5)
    assert 0.1 < time.monotonic() - started < 1.5
    assert not await flight.renew(dead, 10)  # expired: renewing cannot resurrect it
    assert await flight.acquire(KEY, 10) is not None


async def test_waiting_is_bounded(flight: SingleFlight) -> None:
    assert await flight.acquire(KEY, 30) is not None
    started = time.monotonic()
    assert not await flight.wait(KEY, 0.2)
    assert time.monotonic() - started < 1.0


async def test_a_release_wakes_the_waiters(flight: SingleFlight) -> None:
    lease = await flight.acquire(KEY, 30)
    assert lease is not None
    waiter = asyncio.create_task(flight.wait(KEY, 5))
    await asyncio.sleep(0.05)
    released = time.monotonic()
    await flight.release(lease)
    assert await waiter
    assert time.monotonic() - released < 0.4


async def test_once_fetches_once_for_many_callers(flight: SingleFlight) -> None:
    cache: dict[str, str] = {}
    fetches = 0
    stats = FlightStats()

    async def fetch() -> str:
        nonlocal fetches
        fetches += 1
        await asyncio.sleep(0.1)
        cache[KEY] = "payload"
        return "payload"

    async def read() -> str | None:
        return cache.get(KEY)

    got = await asyncio.gather(
        *(once(flight, KEY, fetch, read, ttl=5, timeout=5, stats=stats) for _ in range(5))
    )
    assert got == ["payload"] * 5 and fetches == 1
    assert (stats.led, stats.followed) == (1, 4)
    assert not await flight.held(KEY)


async def test_once_takes_over_when_the_owner_left_nothing(flight: SingleFlight) -> None:
    """The owner's fetch failed (nothing cached): a waiter leads next, the error stays the
    owner's."""
    calls: list[str] = []

    async def failing() -> str:
        calls.append("fail")
        await asyncio.sleep(0.05)
        raise RuntimeError("upstream down")

    async def working() -> str:
        calls.append("ok")
        return "payload"

    async def nothing() -> str | None:
        return None

    first = asyncio.create_task(once(flight, KEY, failing, nothing, ttl=5, timeout=5))
    await asyncio.sleep(0.01)
    second = await once(flight, KEY, working, nothing, ttl=5, timeout=5)
    with pytest.raises(RuntimeError):
        await first
    assert second == "payload" and calls == ["fail", "ok"]


async def test_once_renews_a_lease_that_outlives_its_ttl(flight: SingleFlight) -> None:
    async def slow() -> str:
        await asyncio.sleep(0.5)
        return "payload"

    async def nothing() -> str | None:
        return None

    owner = asyncio.create_task(once(flight, KEY, slow, nothing, ttl=0.15, timeout=5))
    await asyncio.sleep(0.35)  # past two TTLs: only renewals keep it
    assert await flight.held(KEY)
    assert await owner == "payload"


async def test_once_fetches_anyway_after_the_deadline(flight: SingleFlight) -> None:
    assert await flight.acquire(KEY, 30) is not None
    stats = FlightStats()

    async def fetch() -> str:
        return "own"

    async def nothing() -> str | None:
        return None

    assert await once(flight, KEY, fetch, nothing, ttl=5, timeout=0.2, stats=stats) == "own"
    assert stats.gave_up_waiting == 1
