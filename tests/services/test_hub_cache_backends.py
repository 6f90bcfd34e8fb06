"""The hub depends on the cache interface, not on diskcache: the in-memory backend drops in and
every cache behaviour holds; a cache that refuses writes leaves answers in memory and a fault."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_httpx import HTTPXMock

from cache.backend import ReadState
from cache.envelope import Envelope
from cache.errors import CacheWriteFailed
from cache.memory import MemoryCache, MemoryNamespace
from services import fmp, yahoo_finance
from services.errors import ServiceUnavailable
from services.hub import ServiceHub
from tests.services.conftest import FakeClock, SleepRecorder, fast_configs, payload

CHART = payload("yahoo_finance__chart_ACME.json")
ACME = yahoo_finance.chart_request("ACME")


def hub_over(
    cache: MemoryCache, state: Path, clock: FakeClock, sleeps: SleepRecorder
) -> ServiceHub:
    return ServiceHub(fast_configs(), cache, state, clock=clock, sleep=sleeps)


async def test_memory_backend_serves_hits_and_stale_without_touching_disk(
    httpx_mock: HTTPXMock, data_root: Path, clock: FakeClock, sleeps: SleepRecorder
) -> None:
    httpx_mock.add_response(json=CHART)
    httpx_mock.add_response(status_code=503, is_reusable=True)
    cache = MemoryCache(clock=clock)
    async with hub_over(cache, data_root / "state", clock, sleeps) as hub:
        cold = await hub.fetch(ACME)
        warm = await hub.fetch(ACME)
        assert (cold.origin, warm.origin) == ("network", "cache")
        assert warm.payload == cold.payload == CHART
        clock.advance(4 * 24 * 3600)
        assert hub.peek(ACME).state is ReadState.STALE
        stale = await hub.fetch(ACME)
        assert stale.origin == "stale" and stale.payload == CHART
        usage = hub.usage()["yahoo_finance"]
    assert (usage["cache_hits"], usage["stale_served"]) == (1, 1)
    ns = cache.namespace("yahoo_finance")
    assert ns.run_counters == {"writes": 1, "hits": 1, "misses": 1, "stale": 1}
    assert cache.existing_namespaces() == ["yahoo_finance"]
    assert not (data_root / "cache").exists()  # nothing but the quota ledger was written


async def test_peek_is_header_only_until_the_payload_is_used(
    httpx_mock: HTTPXMock, data_root: Path, clock: FakeClock, sleeps: SleepRecorder
) -> None:
    httpx_mock.add_response(json=CHART)
    cache = MemoryCache(clock=clock)
    async with hub_over(cache, data_root / "state", clock, sleeps) as hub:
        await hub.fetch(ACME)
    read = ServiceHub(fast_configs(), cache, data_root / "state", clock=clock).peek(ACME)
    env = read.envelope
    assert read.fresh and env is not None
    assert "payload" not in env.__dict__  # not decoded yet
    assert env.payload == CHART
    assert "payload" in env.__dict__


async def test_a_tampered_entry_in_any_backend_is_a_miss_and_refetched(
    httpx_mock: HTTPXMock, data_root: Path, clock: FakeClock, sleeps: SleepRecorder
) -> None:
    httpx_mock.add_response(json=CHART, is_reusable=True)
    cache = MemoryCache(clock=clock)
    async with hub_over(cache, data_root / "state", clock, sleeps) as hub:
        await hub.fetch(ACME)
        ns = cache.namespace("yahoo_finance")
        (key,) = ns.iter_keys()
        data = ns._read(key, touch=False)
        assert data is not None
        ns.store_raw(key, data.replace(b'"expires_at":"2', b'"expires_at":"9', 1))  # year 9xxx
        assert hub.peek(ACME).state is ReadState.MISS
        assert (await hub.fetch(ACME)).origin == "network"
    assert [reason for _, reason in ns.discarded] == ["envelope sha256 mismatch"]


class RefusingNamespace(MemoryNamespace):
    """A namespace whose storage refuses every write, as a full disk does."""

    def _write(self, key: str, data: bytes, env: Envelope) -> None:
        raise CacheWriteFailed(self.service, "disk full")


class RefusingCache(MemoryCache):
    def namespace(self, service: str) -> MemoryNamespace:
        if service not in self._namespaces:
            self._namespaces[service] = RefusingNamespace(service, clock=self._clock)
        return self._namespaces[service]


async def test_refused_cache_writes_keep_the_answer_for_the_run_and_report_a_fault(
    httpx_mock: HTTPXMock, data_root: Path, clock: FakeClock, sleeps: SleepRecorder
) -> None:
    httpx_mock.add_response(json=CHART)
    httpx_mock.add_response(json=payload("fmp__profile_ACME.json"))
    async with hub_over(RefusingCache(clock=clock), data_root / "state", clock, sleeps) as hub:
        first = await hub.fetch(ACME)
        again = await hub.fetch(ACME)  # served from what the run holds, not fetched twice
        assert (first.origin, again.origin) == ("network", "cache")
        assert again.payload == CHART
        held = hub.peek(ACME)
        assert held.fresh and held.envelope is not None and held.envelope.payload == CHART
        await hub.fetch(fmp.profile_request("ACME"))
        faults = hub.cache_faults()
    assert sorted(faults) == ["fmp", "yahoo_finance"]
    assert faults["yahoo_finance"].reason == "disk_full"
    assert len(httpx_mock.get_requests()) == 2


async def test_refused_write_of_a_failed_request_is_still_the_service_error(
    httpx_mock: HTTPXMock, data_root: Path, clock: FakeClock, sleeps: SleepRecorder
) -> None:
    httpx_mock.add_response(status_code=503, is_reusable=True)
    async with hub_over(RefusingCache(clock=clock), data_root / "state", clock, sleeps) as hub:
        with pytest.raises(ServiceUnavailable):
            await hub.fetch(ACME)
        assert hub.cache_faults() == {}
