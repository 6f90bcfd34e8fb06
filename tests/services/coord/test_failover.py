"""Redis unreachable at start or gone mid-run: the local backends take over, limits divided by
`machines`, flags and counts kept, the status says so in one sentence without secrets."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.coord.backends import open_redis
from services.coord.flags import RATE_BLOCKED
from services.coord.keys import Scope
from services.coord.redis_conn import where
from tests.conftest import RedisServer

SEC = Scope("live", "sec_edgar")


def clock() -> datetime:
    return datetime.now(UTC)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_unreachable_at_start_runs_local_with_divided_limits(tmp_path: Path) -> None:
    url = f"redis://:s3cret-password@127.0.0.1:{closed_port()}/0"
    started = time.monotonic()
    coordination = await open_redis(url, tmp_path / "state", machines=3, clock=clock)
    try:
        assert time.monotonic() - started < 3
        status = coordination.status
        assert status is not None and not status.shared
        note = status.note()
        assert note is not None and "divided by 3 machines" in note
        assert "(ConnectionError)" in note and "s3cret" not in note
        granted = [await coordination.quota.try_reserve(SEC, 10) for _ in range(5)]
        assert granted == [True, True, True, False, False]  # 10 // 3
        limiter = coordination.limiter(SEC, 30.0)
        t0 = time.monotonic()
        for _ in range(3):
            await limiter.acquire()
        assert time.monotonic() - t0 >= 2 * (1 / 10) * 0.97  # 30/s divided by 3, no pause
        assert time.monotonic() - t0 < 0.9
    finally:
        await coordination.aclose()


async def test_a_url_redis_cannot_use_is_a_fallback_too(tmp_path: Path) -> None:
    coordination = await open_redis("http://nowhere", tmp_path / "state", machines=1, clock=clock)
    try:
        assert coordination.status is not None and not coordination.status.shared
        assert await coordination.quota.try_reserve(SEC, 1)
    finally:
        await coordination.aclose()


async def test_flags_and_leases_survive_redis_dying(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    coordination = await open_redis(redis_server.url, tmp_path / "state", machines=2, clock=clock)
    try:
        assert coordination.status is not None and coordination.status.shared
        await coordination.flags.raise_for(SEC, RATE_BLOCKED, 600, "Request Rate Threshold")
        lease = await coordination.flight.acquire("k", 30)
        assert lease is not None
        redis_server.kill()
        flag = await coordination.flags.get(SEC, RATE_BLOCKED)  # learnt before: still holds
        assert flag is not None and flag.reason == "Request Rate Threshold"
        assert not coordination.status.shared
        assert not await coordination.flight.release(lease)  # expires on the dead server
        assert await coordination.flight.wait("k", 1)
        local = await coordination.flight.acquire("k", 30)
        assert local is not None and await coordination.flight.release(local)
    finally:
        await coordination.aclose()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://user:pw@cache.example:6380/2", "redis://cache.example:6380/2"),
        ("rediss://:pw@[::1]/0", "rediss://[::1]:6379/0"),
        ("redis://host:99999999/0", "redis (unparseable URL)"),
    ],
)
def test_where_never_shows_a_password(url: str, shown: str) -> None:
    assert where(url) == shown


async def test_a_waiter_whose_redis_dies_takes_over_locally(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """Another machine holds the lease; Redis dies while we wait: we stop waiting, find nothing
    in the cache, lead on the machine-wide backend and fetch."""
    import asyncio

    from redis.asyncio import Redis

    from services.coord.keys import flight_key
    from services.coord.singleflight import FlightStats, once

    other = Redis.from_url(redis_server.url)
    await other.set(flight_key("k"), "someone-else", px=30_000)
    await other.aclose()
    coordination = await open_redis(redis_server.url, tmp_path / "state", machines=2, clock=clock)
    stats = FlightStats()

    async def fetch() -> str:
        return "fetched"

    async def nothing() -> str | None:
        return None

    try:
        waiting = asyncio.create_task(
            once(coordination.flight, "k", fetch, nothing, ttl=5, timeout=20, stats=stats)
        )
        await asyncio.sleep(0.2)
        assert not waiting.done()
        redis_server.kill()
        assert await asyncio.wait_for(waiting, 5) == "fetched"
        assert stats.led == 1 and stats.gave_up_waiting == 0
        assert coordination.status is not None and not coordination.status.shared
    finally:
        await coordination.aclose()
