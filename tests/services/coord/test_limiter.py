"""Limiters: each backend books slots one interval apart and paces its callers to them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import fakeredis
import pytest

from services.coord.keys import Scope, rate_key
from services.coord.limiter import LocalLimiter, MachineLimiter, RateLimiter, RedisLimiter
from services.coord.statedb import StateDB
from tests.services.coord.conftest import Wall, max_in_window

SEC = Scope("live", "sec_edgar")


async def test_machine_slots_queue_one_interval_apart(state_db: StateDB, wall: Wall) -> None:
    limiter = MachineLimiter(SEC, 5.0, state_db, wall=wall)
    waits = [(await limiter._book())[0] for _ in range(7)]
    assert waits == pytest.approx([0.0, 0.204, 0.408, 0.612, 0.816, 1.02, 1.02])
    assert [(await limiter._book())[1] for _ in range(2)] == [False, False]  # > 1 s ahead
    wall.advance(10)  # idle: the next caller goes at once
    assert await limiter._book() == (0.0, True)
    other = MachineLimiter(Scope("live", "fmp"), 5.0, state_db, wall=wall)
    assert await other._book() == (0.0, True)  # scopes do not share slots


async def test_machine_limiters_on_one_file_share_the_queue(tmp_path: Path, wall: Wall) -> None:
    state = tmp_path / "state"
    first, second = StateDB(state), StateDB(state)
    try:
        a = MachineLimiter(SEC, 10.0, first, wall=wall)
        b = MachineLimiter(SEC, 10.0, second, wall=wall)
        waits = [(await a._book())[0], (await b._book())[0], (await a._book())[0]]
        assert waits == pytest.approx([0.0, 0.102, 0.204])
    finally:
        first.close()
        second.close()


async def test_redis_script_queues_on_the_server_clock(
    fake_redis: fakeredis.FakeAsyncRedis,
) -> None:
    limiter = RedisLimiter(SEC, 5.0, fake_redis)
    waits = [(await limiter._book())[0] for _ in range(3)]
    assert waits[0] == 0.0
    assert waits[1] == pytest.approx(0.204, abs=0.02)
    assert waits[2] == pytest.approx(0.408, abs=0.02)
    ttl_ms = await fake_redis.pttl(rate_key(SEC))
    assert 0 < ttl_ms <= 1000 + 612  # the key vanishes once the queue is idle
    for _ in range(3):
        await limiter._book()
    wait, booked = await limiter._book()  # more than the lookahead ahead: not booked
    assert wait > 1.0 and not booked


async def test_redis_script_ignores_a_next_slot_beyond_the_horizon(
    fake_redis: fakeredis.FakeAsyncRedis,
) -> None:
    await fake_redis.set(rate_key(SEC), str(int((time.time() + 86_400) * 1e6)))
    assert await RedisLimiter(SEC, 5.0, fake_redis)._book() == (0.0, True)
    await fake_redis.set(rate_key(SEC), "garbage")
    assert await RedisLimiter(SEC, 5.0, fake_redis)._book() == (0.0, True)


@pytest.fixture(params=["local", "machine", "redis"])
def limiter(
    request: pytest.FixtureRequest, state_db: StateDB, fake_redis: fakeredis.FakeAsyncRedis
) -> RateLimiter:
    rate = 10.0
    if request.param == "local":
        return LocalLimiter(SEC, rate)
    if request.param == "machine":
        return MachineLimiter(SEC, rate, state_db)
    return RedisLimiter(SEC, rate, fake_redis)


async def test_gathered_callers_are_paced_to_the_rate(limiter: RateLimiter) -> None:
    starts: list[float] = []

    async def call() -> None:
        await limiter.acquire()
        starts.append(time.monotonic())

    await asyncio.gather(*(call() for _ in range(12)))
    assert max_in_window(starts) <= 10
    assert max(starts) - min(starts) >= 11 / 10 * 0.97
