"""The product client against the sandbox's defences through real sockets: the browser session
gets Yahoo's data, every refusal ends as its own reason after one request (no retry)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from cache.disk.store import DiskCache
from cache.envelope import utcnow
from services import alpha_vantage, coingecko, fmp, fred, sec_edgar, yahoo_finance
from services.config import sandbox_config
from services.errors import ServiceError
from services.hub import ServiceHub
from services.registry import SPECS
from services.sandbox.faults import FaultSpec
from services.sandbox.server import SandboxServer

pytestmark = pytest.mark.integration


async def no_sleep(_seconds: float) -> None:
    return None


def stats(server: SandboxServer, service: str) -> dict[str, int]:
    answer: dict[str, int] = httpx.get(f"{server.url}/_sandbox/stats").json()["services"][service]
    return answer


def hub_for(
    server: SandboxServer,
    root: Path,
    clock: Callable[[], datetime] = utcnow,
    transport: httpx.AsyncBaseTransport | None = None,
    **knobs: Any,
) -> ServiceHub:
    configs = {
        name: sandbox_config(name, server.url, **knobs.get(name, {"rate_per_second": 200.0}))
        for name in SPECS
    }
    cache = DiskCache(root / "cache", clock=clock)
    return ServiceHub(
        configs, cache, root / "state", sleep=no_sleep, clock=clock, transport=transport
    )


async def test_the_browser_session_gets_every_price_and_is_reused(tmp_path: Path) -> None:
    with SandboxServer(faults=(), enforce_limits=False) as server:
        async with hub_for(server, tmp_path) as hub:
            for symbol in ("AAPL", "MSFT", "SPY", "^VIX"):
                assert (await hub.fetch(yahoo_finance.chart_request(symbol))).status == "ok"
            assert hub.usage()["yahoo_finance"]["session_setups"] == 1
        first = stats(server, "yahoo_finance")
        assert (first["session"], first["requests"], first["refused"]) == (2, 4, 0)
        async with hub_for(server, tmp_path) as hub:  # the next run reuses the session
            assert (await hub.fetch(yahoo_finance.chart_request("NVDA"))).status == "ok"
            assert hub.usage()["yahoo_finance"]["session_setups"] == 0
        assert stats(server, "yahoo_finance")["session"] == 2
    session = tmp_path / "state" / "yahoo_session.sandbox.json"
    assert session.stat().st_mode & 0o077 == 0


async def test_a_non_browser_client_is_blocked_after_one_knock(tmp_path: Path) -> None:
    with SandboxServer(faults=(), enforce_limits=False) as server:
        plain = httpx.AsyncHTTPTransport()  # what tradescout sent before: httpx's own TLS/UA
        async with hub_for(server, tmp_path, transport=plain) as hub:
            reasons = []
            for symbol in ("AAPL", "MSFT", "SPY"):
                with pytest.raises(ServiceError) as info:
                    await hub.fetch(yahoo_finance.chart_request(symbol))
                reasons.append(info.value.reason)
            assert reasons == ["blocked"] * 3
            assert hub.status("yahoo_finance").held == "blocked"
        seen = stats(server, "yahoo_finance")
        assert seen["session"] + seen["requests"] == 1 and seen["refused"] == 1


async def test_consent_redirect_is_consent_required(tmp_path: Path) -> None:
    with SandboxServer(faults=[FaultSpec("yahoo_finance", "consent")]) as server:
        async with hub_for(server, tmp_path) as hub:
            for symbol in ("AAPL", "MSFT"):
                with pytest.raises(ServiceError) as info:
                    await hub.fetch(yahoo_finance.chart_request(symbol))
                assert info.value.reason == "consent_required"
        seen = stats(server, "yahoo_finance")
        assert seen["session"] + seen["requests"] == 1


async def test_sec_undeclared_identity(tmp_path: Path) -> None:
    with SandboxServer(faults=()) as server:
        knobs = {"sec_edgar": {"rate_per_second": 200.0, "credential": "tradescout"}}
        async with hub_for(server, tmp_path, **knobs) as hub:
            for request in (
                sec_edgar.company_tickers_request(),
                sec_edgar.submissions_request("1"),
            ):
                with pytest.raises(ServiceError) as info:
                    await hub.fetch(request)
                assert info.value.reason == "bad_identity"
        assert stats(server, "sec_edgar")["requests"] == 1


async def test_sec_rate_threshold_blocks_and_is_remembered(tmp_path: Path) -> None:
    with SandboxServer(faults=(), sec_block_seconds=30.0) as server:
        knobs = {"sec_edgar": {"rate_per_second": 1000.0, "max_connections": 8}}
        async with hub_for(server, tmp_path, **knobs) as hub:
            reasons = []
            for cik in range(1, 31):  # far over 10 per second
                try:
                    await hub.fetch(sec_edgar.submissions_request(str(cik)))
                    reasons.append("answered")
                except ServiceError as exc:
                    reasons.append(exc.reason)
            assert "rate_blocked" in reasons
            assert reasons[reasons.index("rate_blocked") :] == ["rate_blocked"] * (
                len(reasons) - reasons.index("rate_blocked")
            )
        sent = stats(server, "sec_edgar")["requests"]
        assert sent == 11  # ten admitted, the one that tripped the block, then silence
        async with hub_for(server, tmp_path, **knobs) as hub:  # the next run does not knock
            with pytest.raises(ServiceError) as info:
                await hub.fetch(sec_edgar.company_tickers_request())
            assert info.value.reason == "rate_blocked"
        assert stats(server, "sec_edgar")["requests"] == sent


@pytest.mark.parametrize(
    ("service", "request_", "knobs", "reason"),
    [
        ("fmp", fmp.profile_request("MQG.AX"), {}, "plan_limited"),
        ("fmp", fmp.profile_request("AAPL"), {"credential": "invalid"}, "bad_credential"),
        (
            "alpha_vantage",
            alpha_vantage.overview_request("AAPL"),
            {"credential": "invalid"},
            "bad_credential",
        ),
        ("fred", fred.observations_request("DGS10"), {"credential": "invalid"}, "bad_credential"),
        ("coingecko", coingecko.global_request(), {"credential": "invalid"}, "bad_credential"),
    ],
    ids=["fmp-402", "fmp-401", "av-key", "fred-key", "coingecko-key"],
)
async def test_plan_and_key_refusals_over_sockets(
    tmp_path: Path, service: str, request_: Any, knobs: dict[str, Any], reason: str
) -> None:
    with SandboxServer(faults=(), enforce_limits=False) as server:
        settings = {service: {"rate_per_second": 200.0, **knobs}}
        async with hub_for(server, tmp_path, **settings) as hub:
            with pytest.raises(ServiceError) as info:
                await hub.fetch(request_)
            assert info.value.reason == reason
            assert hub.usage()[service]["retries"] == 0
        seen = stats(server, service)
        assert (seen["requests"], seen["refused"]) == (1, 1)
