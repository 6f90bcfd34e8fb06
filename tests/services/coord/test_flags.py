"""Shared "open until" flags: the same behaviour on every backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import fakeredis
import pytest

from services.coord.flags import PROBE, RATE_BLOCKED, Flags, MachineFlags, MemoryFlags, RedisFlags
from services.coord.keys import Scope
from services.coord.statedb import StateDB

SEC = Scope("live", "sec_edgar")


@pytest.fixture(params=["memory", "machine", "redis"])
async def flags(
    request: pytest.FixtureRequest, state_db: StateDB, fake_redis: fakeredis.FakeAsyncRedis
) -> AsyncIterator[Flags]:
    yield {
        "memory": lambda: MemoryFlags(),
        "machine": lambda: MachineFlags(state_db),
        "redis": lambda: RedisFlags(fake_redis),
    }[request.param]()


async def test_a_raised_flag_holds_until_it_drops(flags: Flags) -> None:
    assert await flags.get(SEC, RATE_BLOCKED) is None
    flag = await flags.raise_for(SEC, RATE_BLOCKED, 0.3, "Request Rate Threshold Exceeded")
    assert flag.reason == "Request Rate Threshold Exceeded" and 0.25 < flag.remaining <= 0.3
    held = await flags.get(SEC, RATE_BLOCKED)
    assert held is not None and held.kind == RATE_BLOCKED
    assert await flags.get(Scope("sandbox", "sec_edgar"), RATE_BLOCKED) is None
    await asyncio.sleep(0.35)
    assert await flags.get(SEC, RATE_BLOCKED) is None


async def test_a_longer_flag_already_up_is_kept(flags: Flags) -> None:
    await flags.raise_for(SEC, RATE_BLOCKED, 60, "ten minutes")
    flag = await flags.raise_for(SEC, RATE_BLOCKED, 1, "one second")
    assert flag.reason == "ten minutes" and flag.remaining > 50
    longer = await flags.raise_for(SEC, RATE_BLOCKED, 120, "longer")
    assert longer.reason == "longer" and longer.remaining > 100


async def test_only_one_caller_claims_the_probe(flags: Flags) -> None:
    won = await asyncio.gather(*(flags.claim(SEC, PROBE, 5, "half-open probe") for _ in range(8)))
    assert sum(won) == 1
    await flags.clear(SEC, PROBE)
    assert await flags.claim(SEC, PROBE, 5, "next probe")


async def test_durations_must_be_positive_and_finite(flags: Flags) -> None:
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="duration"):
            await flags.raise_for(SEC, RATE_BLOCKED, bad, "x")


async def test_reasons_are_capped(flags: Flags) -> None:
    flag = await flags.raise_for(SEC, RATE_BLOCKED, 5, "x" * 10_000)
    assert len(flag.reason) == 200
