"""Daily quotas: the same increment-if-below on every backend; Redis keys expire after the day."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fakeredis
import pytest

from services.coord.keys import Scope, quota_key
from services.coord.quota import DailyQuota, MachineQuota, MemoryQuota, RedisQuota
from services.quota import QuotaLedger
from tests.services.coord.conftest import Wall

AV = Scope("live", "alpha_vantage")


@pytest.fixture(params=["memory", "machine", "redis"])
async def quota(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    wall: Wall,
    fake_redis: fakeredis.FakeAsyncRedis,
) -> AsyncIterator[DailyQuota]:
    if request.param == "memory":
        yield MemoryQuota(clock=wall.utc)
    elif request.param == "machine":
        ledger = QuotaLedger(tmp_path / "state", clock=wall.utc)
        yield MachineQuota(ledger)
        ledger.close()
    else:
        yield RedisQuota(fake_redis, clock=wall.utc)


async def test_counts_up_to_the_limit_and_refuses_beyond(quota: DailyQuota) -> None:
    granted = [await quota.try_reserve(AV, 3) for _ in range(5)]
    assert granted == [True, True, True, False, False]
    assert await quota.used_today(AV) == 3
    assert await quota.used_today(Scope("sandbox", "alpha_vantage")) == 0


async def test_without_a_limit_every_call_is_counted(quota: DailyQuota) -> None:
    assert all([await quota.try_reserve(AV, None) for _ in range(4)])
    assert await quota.used_today(AV) == 4


async def test_the_count_starts_again_on_the_next_utc_day(quota: DailyQuota, wall: Wall) -> None:
    assert [await quota.try_reserve(AV, 1) for _ in range(2)] == [True, False]
    wall.advance(120)  # START is 23:59 UTC
    assert await quota.try_reserve(AV, 1)
    assert await quota.used_today(AV) == 1


async def test_concurrent_reservations_never_overspend(quota: DailyQuota) -> None:
    results = await asyncio.gather(*(quota.try_reserve(AV, 25) for _ in range(60)))
    assert sum(results) == 25


async def test_redis_counter_expires_the_day_after_its_day(
    fake_redis: fakeredis.FakeAsyncRedis, wall: Wall
) -> None:
    quota = RedisQuota(fake_redis, clock=wall.utc)
    assert await quota.try_reserve(AV, 5)
    ttl = await fake_redis.ttl(quota_key(AV, wall.utc().date()))
    day_after_end = datetime(2025, 3, 6, tzinfo=UTC) - wall.utc()
    assert abs(ttl - day_after_end.total_seconds()) <= 2
    assert timedelta(seconds=ttl) > timedelta(days=1)


async def test_an_unreadable_redis_count_is_taken_as_spent(
    fake_redis: fakeredis.FakeAsyncRedis, wall: Wall
) -> None:
    await fake_redis.set(quota_key(AV, wall.utc().date()), "garbage")
    quota = RedisQuota(fake_redis, clock=wall.utc)
    assert not await quota.try_reserve(AV, 25)
    assert not await quota.try_reserve(AV, None)
    assert await quota.used_today(AV) >= 25
