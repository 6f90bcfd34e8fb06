"""Retries, Retry-After, the breaker, timeouts, malformed bodies, quotas, cache-first,
stale-if-error, offline mode, ceilings — all with an injected clock and sleep."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from cache.backend import ReadState
from services import alpha_vantage, fmp, yahoo_finance
from services.client import Ceiling
from services.errors import (
    BadResponse,
    CircuitOpen,
    OfflineMode,
    QuotaExhausted,
    RateLimited,
    ServiceUnavailable,
)
from services.registry import SPECS
from tests.services.conftest import (
    FakeClock,
    SleepRecorder,
    fast_configs,
    payload,
    write_yahoo_session,
)

CHART = payload("yahoo_finance__chart_ACME.json")
ACME = yahoo_finance.chart_request("ACME")


async def test_429_retry_after_seconds_is_honoured(
    httpx_mock: HTTPXMock, make_hub: Any, sleeps: SleepRecorder
) -> None:
    httpx_mock.add_response(status_code=429, headers={"Retry-After": "7"})
    httpx_mock.add_response(json=CHART)
    async with make_hub() as hub:
        result = await hub.fetch(ACME)
        assert result.status == "ok"
        usage = hub.usage()["yahoo_finance"]
    assert len(sleeps.calls) == 1 and sleeps.calls[0] >= 7.0
    assert (usage["rate_limited"], usage["retries"], usage["network_requests"]) == (1, 1, 2)


async def test_429_retry_after_http_date_is_honoured(
    httpx_mock: HTTPXMock, make_hub: Any, sleeps: SleepRecorder, clock: FakeClock
) -> None:
    when = format_datetime(clock.now + timedelta(seconds=12), usegmt=True)
    httpx_mock.add_response(status_code=429, headers={"Retry-After": when})
    httpx_mock.add_response(json=CHART)
    async with make_hub() as hub:
        await hub.fetch(ACME)
    assert sleeps.calls and 12.0 <= sleeps.calls[0] < 13.0


async def test_429_beyond_the_delay_budget_gives_up_at_once(
    httpx_mock: HTTPXMock, make_hub: Any, sleeps: SleepRecorder
) -> None:
    httpx_mock.add_response(status_code=429, headers={"Retry-After": "3600"})
    async with make_hub() as hub:
        with pytest.raises(RateLimited, match="Retry-After 3600s"):
            await hub.fetch(ACME)
    assert sleeps.calls == []


async def test_5xx_then_success_with_jittered_backoff(
    httpx_mock: HTTPXMock, make_hub: Any, sleeps: SleepRecorder
) -> None:
    httpx_mock.add_response(status_code=503)
    httpx_mock.add_response(status_code=502)
    httpx_mock.add_response(json=CHART)
    async with make_hub() as hub:
        result = await hub.fetch(ACME)
        assert (result.status, result.origin) == ("ok", "network")
        assert hub.usage()["yahoo_finance"]["retries"] == 2
        assert hub.status("yahoo_finance").breaker_state == "closed"
    spec = SPECS["yahoo_finance"]
    assert len(sleeps.calls) == 2
    assert all(0 <= s <= spec.backoff_max_seconds for s in sleeps.calls)


async def test_5xx_exhausts_bounded_attempts(
    httpx_mock: HTTPXMock, make_hub: Any, sleeps: SleepRecorder
) -> None:
    httpx_mock.add_response(status_code=500, is_reusable=True)
    async with make_hub() as hub:
        with pytest.raises(ServiceUnavailable, match="HTTP 500"):
            await hub.fetch(ACME)
    attempts = SPECS["yahoo_finance"].max_attempts
    assert len(httpx_mock.get_requests()) == attempts
    assert len(sleeps.calls) == attempts - 1


async def test_timeouts_are_retried_then_unavailable(
    httpx_mock: HTTPXMock, make_hub: Any, sleeps: SleepRecorder
) -> None:
    httpx_mock.add_exception(httpx.ReadTimeout("read timed out"), is_reusable=True)
    async with make_hub() as hub:
        with pytest.raises(ServiceUnavailable, match="read timeout") as info:
            await hub.fetch(ACME)
    assert info.value.__cause__ is None and info.value.__context__ is None
    assert len(httpx_mock.get_requests()) == SPECS["yahoo_finance"].max_attempts


async def test_connect_error_then_success(httpx_mock: HTTPXMock, make_hub: Any) -> None:
    httpx_mock.add_exception(httpx.ConnectError("connection refused"))
    httpx_mock.add_response(json=CHART)
    async with make_hub() as hub:
        assert (await hub.fetch(ACME)).status == "ok"


async def test_malformed_json_is_retried_once_then_bad_response_never_cached(
    httpx_mock: HTTPXMock, make_hub: Any
) -> None:
    httpx_mock.add_response(content=b'{"chart": {"result": [', is_reusable=True)
    async with make_hub() as hub:
        with pytest.raises(BadResponse, match="malformed JSON"):
            await hub.fetch(ACME)
        assert hub.peek(ACME).state is ReadState.MISS
        assert hub.status("yahoo_finance").breaker_state == "closed"
    assert len(httpx_mock.get_requests()) == 2  # asked once more, not max_attempts times


async def test_truncated_body_then_good_answer(httpx_mock: HTTPXMock, make_hub: Any) -> None:
    httpx_mock.add_response(content=b'{"chart": {"res')
    httpx_mock.add_response(json=CHART)
    async with make_hub() as hub:
        assert (await hub.fetch(ACME)).status == "ok"


async def test_wrong_shape_is_bad_response(httpx_mock: HTTPXMock, make_hub: Any) -> None:
    httpx_mock.add_response(json={"chart": {"result": [{"nometa": True}], "error": None}})
    async with make_hub() as hub:
        with pytest.raises(BadResponse, match="unexpected payload"):
            await hub.fetch(ACME)
        assert hub.peek(ACME).state is ReadState.MISS


async def test_breaker_opens_fails_fast_then_half_open_probe_recovers(
    httpx_mock: HTTPXMock, make_hub: Any, clock: FakeClock
) -> None:
    spec = SPECS["yahoo_finance"]
    httpx_mock.add_response(status_code=503, is_reusable=True)
    async with make_hub() as hub:
        with pytest.raises(ServiceUnavailable):
            await hub.fetch(ACME)  # max_attempts failures
        with pytest.raises(ServiceUnavailable):
            await hub.fetch(ACME)  # reaches the threshold → open
        assert hub.status("yahoo_finance").breaker_state == "open"
        sent = len(httpx_mock.get_requests())
        assert sent == spec.breaker_threshold
        with pytest.raises(CircuitOpen):
            await hub.fetch(yahoo_finance.chart_request("OTHER"))
        assert len(httpx_mock.get_requests()) == sent  # failed fast: no request

        clock.advance(spec.breaker_reset_seconds + 1)
        assert hub.status("yahoo_finance").breaker_state == "half_open"
        httpx_mock.reset()
        release = asyncio.Event()

        async def slow_ok(request: httpx.Request) -> httpx.Response:
            await release.wait()
            return httpx.Response(200, json=CHART)

        httpx_mock.add_callback(slow_ok)
        probe = asyncio.create_task(hub.fetch(ACME))
        await asyncio.sleep(0.01)
        with pytest.raises(CircuitOpen):  # one probe only while half-open
            await hub.fetch(yahoo_finance.chart_request("OTHER"))
        release.set()
        assert (await probe).status == "ok"
        assert hub.status("yahoo_finance").breaker_state == "closed"
        assert hub.usage()["yahoo_finance"]["breaker_state"] == "closed"


async def test_failed_probe_reopens(httpx_mock: HTTPXMock, make_hub: Any, clock: FakeClock) -> None:
    spec = SPECS["yahoo_finance"]
    httpx_mock.add_response(status_code=500, is_reusable=True)
    async with make_hub() as hub:
        for _ in range(2):
            with pytest.raises(ServiceUnavailable):
                await hub.fetch(ACME)
        clock.advance(spec.breaker_reset_seconds + 1)
        before = len(httpx_mock.get_requests())
        with pytest.raises(ServiceUnavailable):
            await hub.fetch(ACME)
        assert len(httpx_mock.get_requests()) == before + 1  # exactly one probe
        assert hub.status("yahoo_finance").breaker_state == "open"


async def test_404_and_429_do_not_count_for_the_breaker(
    httpx_mock: HTTPXMock, make_hub: Any
) -> None:
    httpx_mock.add_response(status_code=404, json={"chart": {"result": None, "error": {}}})
    httpx_mock.add_response(status_code=429, headers={"Retry-After": "1"}, is_reusable=True)
    async with make_hub() as hub:
        for i in range(8):
            with pytest.raises(RateLimited) if i else _no_raise():
                await hub.fetch(yahoo_finance.chart_request(f"S{i}"))
        assert hub.status("yahoo_finance").breaker_state == "closed"


class _no_raise:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


async def test_alpha_vantage_note_stops_the_service_for_the_run(
    httpx_mock: HTTPXMock, make_hub: Any, sleeps: SleepRecorder
) -> None:
    httpx_mock.add_response(json=payload("alpha_vantage__throttle_note.json"))
    async with make_hub() as hub:
        first = alpha_vantage.overview_request("ACME")
        with pytest.raises(QuotaExhausted):
            await hub.fetch(first)
        assert hub.peek(first).state is ReadState.MISS  # not cached
        with pytest.raises(QuotaExhausted):
            await hub.fetch(alpha_vantage.overview_request("OTHER"))  # no call at all
        status = hub.status("alpha_vantage")
        assert status.quota_exhausted_for_run
        assert hub.usage()["alpha_vantage"]["retries"] == 0
    assert len(httpx_mock.get_requests()) == 1 and sleeps.calls == []


async def test_alpha_vantage_information_body_is_a_quota_signal(
    httpx_mock: HTTPXMock, make_hub: Any
) -> None:
    httpx_mock.add_response(json=payload("alpha_vantage__throttle_information.json"))
    async with make_hub() as hub:
        with pytest.raises(QuotaExhausted, match="daily"):
            await hub.fetch(alpha_vantage.overview_request("ACME"))
        assert hub.status("alpha_vantage").quota_exhausted_for_run


async def test_daily_quota_persists_across_hubs_and_resets_at_utc_midnight(
    httpx_mock: HTTPXMock, make_hub: Any, clock: FakeClock
) -> None:
    httpx_mock.add_response(json=payload("fmp__profile_ACME.json"), is_reusable=True)
    configs = fast_configs(fmp={"daily_quota": 2})
    async with make_hub(configs) as hub:
        await hub.fetch(fmp.profile_request("AAA"))
        await hub.fetch(fmp.profile_request("BBB"))
        assert hub.status("fmp").quota_left == 0
    async with make_hub(configs) as hub:  # a restart: the count survived
        assert hub.status("fmp").quota_used_today == 2
        with pytest.raises(QuotaExhausted, match="daily quota of 2"):
            await hub.fetch(fmp.profile_request("CCC"))
        assert hub.status("fmp").quota_exhausted_for_run
    assert len(httpx_mock.get_requests()) == 2
    sandbox = fast_configs(fmp={"daily_quota": 2, "upstream": "sandbox"})
    async with make_hub(sandbox) as hub:  # the sandbox counts in its own namespace
        assert hub.status("fmp").quota_used_today == 0
        await hub.fetch(fmp.profile_request("CCC"))
    clock.now = clock.now.replace(hour=23, minute=59) + timedelta(minutes=2)  # next UTC day
    async with make_hub(configs) as hub:
        assert hub.status("fmp").quota_used_today == 0
        await hub.fetch(fmp.profile_request("CCC"))
    assert len(httpx_mock.get_requests()) == 4


async def test_cache_first_second_fetch_makes_no_request(
    httpx_mock: HTTPXMock, make_hub: Any
) -> None:
    httpx_mock.add_response(json=CHART)
    async with make_hub() as hub:
        first = await hub.fetch(ACME)
        second = await hub.fetch(yahoo_finance.chart_request("acme"))
        assert (first.origin, second.origin) == ("network", "cache")
        assert second.payload == first.payload
        usage = hub.usage()["yahoo_finance"]
        assert (usage["cache_hits"], usage["network_requests"]) == (1, 1)
    async with make_hub() as hub:  # and across runs
        assert (await hub.fetch(ACME)).origin == "cache"
    assert len(httpx_mock.get_requests()) == 1


async def test_stale_if_error(httpx_mock: HTTPXMock, make_hub: Any, clock: FakeClock) -> None:
    httpx_mock.add_response(json=CHART)
    httpx_mock.add_response(status_code=503, is_reusable=True)
    async with make_hub() as hub:
        fresh = await hub.fetch(ACME)
        clock.advance(4 * 24 * 3600)  # past any "next close"
        assert hub.peek(ACME).state is ReadState.STALE
        stale = await hub.fetch(ACME)
        assert stale.origin == "stale" and stale.payload == fresh.payload
        assert stale.expires_at < clock.now
        usage = hub.usage()["yahoo_finance"]
        assert (usage["stale_served"], usage["errors"]) == (1, 1)


async def test_stale_is_refreshed_when_the_service_answers(
    httpx_mock: HTTPXMock, make_hub: Any, clock: FakeClock, data_root: Path
) -> None:
    httpx_mock.add_response(json=CHART, is_reusable=True)
    async with make_hub() as hub:
        await hub.fetch(ACME)
        clock.advance(4 * 24 * 3600)
        write_yahoo_session(data_root / "state", clock.now)  # the session is 24 h old at most
        refreshed = await hub.fetch(ACME)
        assert refreshed.origin == "network" and refreshed.expires_at > clock.now


async def test_offline_mode_never_touches_the_network(
    httpx_mock: HTTPXMock, make_hub: Any, clock: FakeClock
) -> None:
    httpx_mock.add_response(json=CHART)
    async with make_hub() as hub:
        await hub.fetch(ACME)
    async with make_hub(offline=True) as hub:
        assert (await hub.fetch(ACME)).origin == "cache"
        clock.advance(4 * 24 * 3600)
        assert (await hub.fetch(ACME)).origin == "stale"
        with pytest.raises(OfflineMode):
            await hub.fetch(yahoo_finance.chart_request("NEVERSEEN"))
    assert len(httpx_mock.get_requests()) == 1


async def test_per_service_semaphore_and_global_ceiling(
    httpx_mock: HTTPXMock, make_hub: Any
) -> None:
    active = 0
    peak = 0

    async def tracked(request: httpx.Request) -> httpx.Response:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.005)
        active -= 1
        return httpx.Response(200, json=CHART)

    httpx_mock.add_callback(tracked, is_reusable=True)
    configs = fast_configs(yahoo_finance={"max_connections": 3, "rate_per_second": 10_000.0})
    async with make_hub(configs) as hub:
        await asyncio.gather(*(hub.fetch(yahoo_finance.chart_request(f"S{i}")) for i in range(12)))
        assert 1 < peak <= 3
        peak = 0
        hub.set_concurrency(1)  # the memory watcher shrinks the ceiling mid-run
        assert hub.concurrency == 1
        await asyncio.gather(*(hub.fetch(yahoo_finance.chart_request(f"T{i}")) for i in range(6)))
        assert peak == 1


async def test_ceiling_shrink_applies_to_waiting_requests() -> None:
    ceiling = Ceiling(4)
    active = 0
    peak_after = 0
    shrunk = asyncio.Event()

    async def job() -> None:
        nonlocal active, peak_after
        async with ceiling.slot():
            active += 1
            if shrunk.is_set():
                peak_after = max(peak_after, active)
            await asyncio.sleep(0.005)
            active -= 1

    first = [asyncio.create_task(job()) for _ in range(4)]
    await asyncio.sleep(0)
    ceiling.set_limit(1)
    shrunk.set()
    later = [asyncio.create_task(job()) for _ in range(5)]
    await asyncio.gather(*first, *later)
    assert peak_after <= 4 and ceiling.in_flight == 0
    # once the four in flight drained, the new ones ran one at a time
    peak_after = 0
    await asyncio.gather(*(job() for _ in range(5)))
    assert peak_after == 1


async def test_concurrent_identical_requests_share_one_call(
    httpx_mock: HTTPXMock, make_hub: Any
) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.01)
        return httpx.Response(200, json=CHART)

    httpx_mock.add_callback(slow)
    async with make_hub() as hub:
        results = await asyncio.gather(*(hub.fetch(ACME) for _ in range(5)))
        assert all(r.status == "ok" for r in results)
        assert hub.usage()["yahoo_finance"]["shared_inflight"] == 4
    assert len(httpx_mock.get_requests()) == 1


async def test_usage_report_is_json_ready(httpx_mock: HTTPXMock, make_hub: Any) -> None:
    import json

    httpx_mock.add_response(json=CHART)
    async with make_hub() as hub:
        hub.add_planned("yahoo_finance", 3)
        await hub.fetch(ACME)
        usage = hub.usage()
        json.dumps(usage)
        yf = usage["yahoo_finance"]
        assert yf["planned"] == 3 and yf["network_requests"] == 1
        assert yf["latency_ms_p50"] is not None and yf["latency_ms_p95"] >= yf["latency_ms_p50"]
        assert yf["quota_used_today"] == 1
        assert set(usage) == set(SPECS)


async def test_answer_is_cached_even_if_the_caller_was_cancelled(
    httpx_mock: HTTPXMock, make_hub: Any
) -> None:
    arrived = asyncio.Event()
    release = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        arrived.set()
        await release.wait()
        return httpx.Response(200, json=CHART)

    httpx_mock.add_callback(slow)
    async with make_hub() as hub:
        caller = asyncio.create_task(hub.fetch(ACME))
        await arrived.wait()
        caller.cancel()
        release.set()
        for _ in range(50):
            await asyncio.sleep(0.001)
            if hub.peek(ACME).state is ReadState.FRESH:
                break
        assert hub.peek(ACME).state is ReadState.FRESH
        assert (await hub.fetch(ACME)).origin == "cache"


async def test_fetch_fresh_bypasses_the_cache_and_never_serves_stale(
    httpx_mock: HTTPXMock, make_hub: Any, clock: FakeClock
) -> None:
    httpx_mock.add_response(json=CHART)
    httpx_mock.add_response(json=CHART)
    httpx_mock.add_response(status_code=503, is_reusable=True)
    async with make_hub() as hub:
        assert hub.max_concurrency == 16 and not hub.offline
        first = await hub.fetch(ACME)
        clock.advance(60)
        renewed = await hub.fetch_fresh(ACME)  # fresh in cache, asked anyway
        assert renewed.origin == "network" and renewed.fetched_at > first.fetched_at
        with pytest.raises(ServiceUnavailable):
            await hub.fetch_fresh(ACME)  # no stale fallback for a refresh
        assert (await hub.fetch(ACME)).origin == "cache"
