"""The product's clients against the sandbox through real sockets: every fault mode ends in the
behaviour the client promises (retry, breaker, gap), and default limits never draw a 429."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cache.disk.store import DiskCache
from cache.envelope import utcnow
from services import coingecko, fmp, fred, imf, sec_edgar, yahoo_finance
from services.config import sandbox_config
from services.errors import BadResponse, CircuitOpen, ServiceUnavailable
from services.hub import ServiceHub
from services.registry import SPECS
from services.retry import MALFORMED_ATTEMPTS
from services.sandbox.faults import FaultSpec
from services.sandbox.server import SandboxServer
from services.sandbox.universe import equity_symbols


async def no_sleep(_seconds: float) -> None:
    """Backoff waits are asserted elsewhere; here they only slow the suite down."""


def stats(server: SandboxServer, service: str) -> dict[str, int]:
    body: dict[str, Any] = httpx.get(f"{server.url}/_sandbox/stats").json()
    return body["services"][service]


def hub_for(
    server: SandboxServer, root: Path, clock: Callable[[], datetime] = utcnow, **knobs: Any
) -> ServiceHub:
    configs = {
        name: sandbox_config(name, server.url, **knobs.get(name, {"rate_per_second": 200.0}))
        for name in SPECS
    }
    cache = DiskCache(root / "cache", clock=clock)
    return ServiceHub(configs, cache, root / "state", sleep=no_sleep, clock=clock)


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    return tmp_path / "data"


async def test_partial_5xx_is_retried_to_success(root: Path) -> None:
    with SandboxServer(faults=[FaultSpec("fmp", "error", 0.5)], enforce_limits=False) as server:
        async with hub_for(server, root) as hub:
            symbols = equity_symbols(us_only=True)[:4]
            results = [await hub.fetch(fmp.profile_request(s)) for s in symbols]
            assert all(r.status == "ok" and r.origin == "network" for r in results)
            usage = hub.usage()["fmp"]
        assert usage["retries"] >= 1
        assert stats(server, "fmp")["faulted"] >= 1


async def test_persistent_5xx_opens_the_breaker_then_fails_fast(root: Path) -> None:
    with SandboxServer(faults=[FaultSpec("fred", "error", 1.0)], enforce_limits=False) as server:
        async with hub_for(server, root) as hub:
            errors: list[Exception] = []
            for series in ("FEDFUNDS", "DGS10", "CPIAUCSL", "UNRATE", "VIXCLS", "GDPC1"):
                try:
                    await hub.fetch(fred.observations_request(series, date(2025, 1, 1)))
                except ServiceUnavailable as exc:
                    errors.append(exc)
            assert len(errors) == 6
            assert isinstance(errors[-1], CircuitOpen)
            assert hub.status("fred").breaker_state == "open"
            before = stats(server, "fred")["requests"]
            with pytest.raises(CircuitOpen):
                await hub.fetch(fred.observations_request("T10Y2Y", date(2025, 1, 1)))
            assert stats(server, "fred")["requests"] == before  # failed fast, no request


async def test_malformed_json_is_retried_then_a_bad_response(root: Path) -> None:
    with SandboxServer(faults=[FaultSpec("imf", "malformed", 1.0)], enforce_limits=False) as server:
        async with hub_for(server, root) as hub:
            with pytest.raises(BadResponse):
                await hub.fetch(imf.growth_request("NGDP_RPCH", ["USA"]))
        assert stats(server, "imf")["requests"] == MALFORMED_ATTEMPTS  # once more, no more
        # nothing garbage was cached: a clean sandbox answers the same request afterwards
        httpx.delete(f"{server.url}/_sandbox/faults")
        async with hub_for(server, root) as hub:
            result = await hub.fetch(imf.growth_request("NGDP_RPCH", ["USA"]))
            assert result.status == "ok" and result.origin == "network"


async def test_timeouts_are_retried_then_unavailable(root: Path) -> None:
    fault = [FaultSpec("coingecko", "timeout", 1.0)]
    with SandboxServer(faults=fault, enforce_limits=False, timeout_s=5.0) as server:
        knobs = {"coingecko": {"rate_per_second": 200.0, "timeout_seconds": 0.3}}
        async with hub_for(server, root, **knobs) as hub:
            with pytest.raises(ServiceUnavailable):
                await hub.fetch(coingecko.global_request())
            assert hub.usage()["coingecko"]["retries"] >= 1


async def test_dropped_connections_are_retried(root: Path) -> None:
    with SandboxServer(
        faults=[FaultSpec("yahoo_finance", "drop", 0.5)], enforce_limits=False
    ) as server:
        async with hub_for(server, root) as hub:
            symbols = equity_symbols(us_only=True)[:4]
            results = [await hub.fetch(yahoo_finance.chart_request(s, "1mo")) for s in symbols]
            assert all(r.status == "ok" for r in results)
            assert hub.usage()["yahoo_finance"]["retries"] >= 1


async def test_down_service_serves_stale_cache_and_flags_it(root: Path) -> None:
    request = sec_edgar.company_tickers_request()
    with SandboxServer(faults=(), enforce_limits=False) as server:
        async with hub_for(server, root) as hub:
            first = await hub.fetch(request)
            assert first.origin == "network"
        httpx.post(f"{server.url}/_sandbox/faults", json={"service": "sec_edgar", "mode": "down"})
        later = utcnow() + timedelta(days=8)  # the CIK map's TTL is 7 days
        async with hub_for(server, root, clock=lambda: later) as hub:
            result = await hub.fetch(request)
            assert hub.usage()["sec_edgar"]["stale_served"] == 1
        assert result.origin == "stale"
        assert result.payload == first.payload


async def test_default_limits_never_draw_a_429(root: Path) -> None:
    """Real limits on both sides: the clients' defaults stay under every sandbox limit."""
    with SandboxServer(faults=()) as server:
        configs = {name: sandbox_config(name, server.url) for name in SPECS}
        hub = ServiceHub(configs, DiskCache(root / "cache"), root / "state")
        symbols = equity_symbols(us_only=True)[:8]
        async with hub:
            cik_map = sec_edgar.parse_company_tickers(
                (await hub.fetch(sec_edgar.company_tickers_request())).payload
            )
            requests = [yahoo_finance.chart_request(s, "3mo") for s in symbols]
            requests += [fmp.profile_request(s) for s in symbols]
            requests += [sec_edgar.submissions_request(cik_map[s]) for s in symbols if s in cik_map]
            requests += [
                fred.observations_request(s, date(2025, 1, 1))
                for s in ("FEDFUNDS", "DGS10", "UNRATE")
            ]
            requests += [coingecko.global_request(), coingecko.simple_price_request(["bitcoin"])]
            results = await asyncio.gather(*(hub.fetch(r) for r in requests))
        assert all(r.status == "ok" for r in results)
        body = httpx.get(f"{server.url}/_sandbox/stats").json()["services"]
        assert sum(s["rate_limited"] for s in body.values()) == 0
        assert sum(s["throttled"] for s in body.values()) == 0
        assert sum(s["requests"] for s in body.values()) == len(requests) + 1
