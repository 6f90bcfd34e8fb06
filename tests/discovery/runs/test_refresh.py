"""`refresh_async` in process against the sandbox on loopback, with an injected clock: horizon
selection, TTLs shorter than the horizon, budgets (explicit and default), priority order,
resume accounting, offline, and that `discover` afterwards needs no network."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cache.disk.store import DiskCache
from discovery.ingest.trades import ingest
from discovery.runs.discover import DiscoverOptions, discover_async, open_tickers
from discovery.runs.refresh import (
    CYCLE_FILE,
    RefreshResult,
    default_budgets,
    horizon_coverage,
    refresh_async,
)
from discovery.settings import Settings, load_settings
from discovery.upstream import Target, service_configs
from services import coingecko, fred, yahoo_finance
from services.hub import ServiceHub
from services.sandbox.server import SandboxServer
from tests.conftest import (
    FAST_WINDOWS,
    T0,
    MovableClock,
    delta,
    demo_root,
    fast_services,
    generated_root,
    requests_by_service,
    subjects_of,
)

CLOCK = MovableClock()
H12 = timedelta(hours=12)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(clock=CLOCK, rate_limits=FAST_WINDOWS, faults=()) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRADESCOUT_CONFIG", raising=False)
    monkeypatch.delenv("TRADESCOUT_SANDBOX_URL", raising=False)
    CLOCK.now = T0
    httpx.post(f"{sandbox.url}/_sandbox/reset")


def settings_for(root: Path, **services: dict[str, Any]) -> Settings:
    merged = fast_services()
    for name, knobs in services.items():
        merged[name] = {**merged[name], **knobs}
    return load_settings(data_root=root, services=merged)


async def run(
    settings: Settings,
    url: str,
    *,
    horizon: timedelta = H12,
    budgets: dict[str, int | None] | None = None,
    upstream: str = "sandbox",
) -> RefreshResult:
    return await refresh_async(
        settings,
        [],
        target=Target(offline=True) if upstream == "offline" else Target("sandbox", url),
        horizon=horizon,
        budgets=budgets,
        clock=CLOCK,
    )


def test_default_budget_is_half_the_daily_quota() -> None:
    assert default_budgets({"fmp": 250, "alpha_vantage": 25, "yahoo_finance": None}) == {
        "fmp": 125,
        "alpha_vantage": 12,
        "yahoo_finance": None,
    }


def test_horizon_coverage_classifies_by_expiry_and_cycle(tmp_path: Path) -> None:
    clock = MovableClock()
    settings = load_settings(data_root=tmp_path)
    cache = DiskCache(tmp_path / "cache", clock=clock)
    hub = ServiceHub(
        service_configs(settings, Target("sandbox", "http://127.0.0.1:9")),
        cache,
        tmp_path,
        clock=clock,
    )
    inside = yahoo_finance.chart_request("AAPL", "1y")  # expires in 11 h: inside a 12 h horizon
    outside = yahoo_finance.chart_request("MSFT", "1y")  # expires in 13 h: outside
    negative = yahoo_finance.chart_request("ZZZZ", "1y")
    absent = fred.observations_request("DGS10", T0.date())
    store = cache.namespace("yahoo_finance")
    for req, hours, status in ((inside, 11, "ok"), (outside, 13, "ok"), (negative, 20, "negative")):
        store.put(
            req.cache_key("sandbox"),
            {},
            dataset="chart",
            ttl=timedelta(hours=hours),
            status=status,  # type: ignore[arg-type]
        )
    try:
        cycle_before = horizon_coverage(hub, T0, H12, T0 + timedelta(minutes=1))
        assert cycle_before(inside) == "stale"
        assert cycle_before(outside) == "fresh"
        assert cycle_before(negative) == "negative"
        assert cycle_before(absent) == "miss"
        # Written during the current cycle (a resumed run): done, whatever its expiry.
        assert horizon_coverage(hub, T0, H12, T0)(inside) == "fresh"
        # A shorter horizon leaves the 11 h entry alone.
        assert horizon_coverage(hub, T0, timedelta(hours=10), T0 + H12)(inside) == "fresh"
    finally:
        cache.close()


async def test_cold_then_horizon_selects_only_entries_expiring_soon(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    settings = settings_for(generated_root(tmp_path, 5))
    cold = await run(settings, sandbox.url)
    after_cold = requests_by_service(sandbox.url)
    # 5 charts + SPY + ^VIX; 5 profiles; CIK map + 5 filings; 5 FRED; IMF; 2 CoinGecko.
    assert after_cold == {
        "yahoo_finance": 7,
        "fmp": 5,
        "sec_edgar": 6,
        "fred": 5,
        "coingecko": 2,
        "imf": 1,
    }
    assert len(cold.refreshed) == 26 and not cold.failed and cold.skipped_fresh == 0
    assert not (settings.layout.state_dir / CYCLE_FILE).exists()  # the cycle finished

    # 10 minutes later: only CoinGecko (15-minute TTL, shorter than the horizon) is due.
    CLOCK.advance(minutes=10)
    second = await run(settings, sandbox.url)
    assert delta(requests_by_service(sandbox.url), after_cold) == {"coingecko": 2}
    assert second.skipped_fresh == 24

    # 2 hours after the cold run the charts expire within 12 h (at the 21:00 UTC close);
    # FRED/IMF/SEC (1 day) and FMP/CIK map (7 days) still outlive the horizon.
    before = requests_by_service(sandbox.url)
    CLOCK.advance(hours=2)
    third = await run(settings, sandbox.url)
    assert delta(requests_by_service(sandbox.url), before) == {"yahoo_finance": 7, "coingecko": 2}
    assert {r["dataset"] for r in third.refreshed} == {"chart", "simple_price", "global"}

    # A horizon of 0 h at the same moment: nothing but CoinGecko... which was just fetched.
    before = requests_by_service(sandbox.url)
    fourth = await run(settings, sandbox.url, horizon=timedelta(0))
    assert delta(requests_by_service(sandbox.url), before) == {}
    assert fourth.refreshed == [] and fourth.skipped_fresh == 26


async def test_explicit_budget_caps_requests_and_prefers_open_positions(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    root = demo_root(tmp_path)
    settings = settings_for(root)
    result = await run(settings, sandbox.url, budgets={"fmp": 3})
    stats = requests_by_service(sandbox.url)
    assert stats.get("fmp", 0) == 3
    assert result.budget["fmp"] == 3 and result.budget_used["fmp"] == 3
    skipped = subjects_of(result.skipped_budget, "fmp")
    fetched = subjects_of(result.refreshed, "fmp")
    assert len(fetched) == 3 and len(skipped) >= 10 and not set(fetched) & set(skipped)
    book = ingest(root / "raw" / "trade_history" / "demo.csv")
    opened = set(open_tickers(book))
    needing = [t for t in fetched + skipped if t in opened]
    # Open positions come first: every fetched profile is an open one (or all open ones fit).
    assert set(fetched) <= opened or set(needing) <= set(fetched)
    # Over-budget FMP items are not quietly moved to Alpha Vantage either.
    assert stats.get("alpha_vantage", 0) == 0
    report = result.to_json()
    assert report["skipped_budget"] == len(result.skipped_budget)
    assert report["details"]["skipped_budget"][0]["service"] == "fmp"


async def test_default_budget_is_half_of_the_configured_quota(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    settings = settings_for(generated_root(tmp_path, 8), fmp={"daily_quota": 7})
    result = await run(settings, sandbox.url)
    assert result.budget["fmp"] == 3
    stats = requests_by_service(sandbox.url)
    assert stats.get("fmp", 0) == 3
    # 8 profiles, FMP's daily quota is 7: the planner gives the 8th to Alpha Vantage from the
    # start; of FMP's 7, the nightly budget (3) is fetched and 4 are skipped for the day.
    assert len(subjects_of(result.skipped_budget, "fmp")) == 4
    assert stats.get("alpha_vantage", 0) == 1


async def test_resumed_cycle_charges_earlier_spending_to_the_budget(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    settings = settings_for(generated_root(tmp_path, 6))
    # A cycle that began 5 minutes ago, when FMP had spent nothing; since then 4 calls were made.
    state = settings.layout.state_dir
    state.mkdir(parents=True)
    start = T0 - timedelta(minutes=5)
    (state / CYCLE_FILE).write_text(
        json.dumps({"started_at": start.isoformat(), "quota_at_start": {"fmp": 0}})
    )
    from services.quota import QuotaLedger

    ledger = QuotaLedger(state, clock=CLOCK)
    for _ in range(4):
        assert ledger.try_reserve("fmp", "sandbox", None)
    ledger.close()
    result = await run(settings, sandbox.url, budgets={"fmp": 5})
    assert result.resumed_from == start.isoformat()
    assert result.spent_before_resume["fmp"] == 4
    assert requests_by_service(sandbox.url).get("fmp", 0) == 1
    assert len(subjects_of(result.skipped_budget, "fmp")) == 5


async def test_old_cycle_file_starts_a_new_cycle(tmp_path: Path, sandbox: SandboxServer) -> None:
    settings = settings_for(generated_root(tmp_path, 3))
    state = settings.layout.state_dir
    state.mkdir(parents=True)
    (state / CYCLE_FILE).write_text(
        json.dumps({"started_at": (T0 - timedelta(hours=23)).isoformat()})
    )
    result = await run(settings, sandbox.url)
    assert result.resumed_from is None and result.spent_before_resume == {}
    assert not (state / CYCLE_FILE).exists()


async def test_offline_refresh_makes_no_request(tmp_path: Path, sandbox: SandboxServer) -> None:
    settings = settings_for(generated_root(tmp_path, 3))
    result = await run(settings, sandbox.url, upstream="offline")
    assert sum(requests_by_service(sandbox.url).values()) == 0
    assert result.refreshed == [] and result.failed == []
    reasons = {r["reason"] for r in result.not_planned}
    assert "offline" in reasons and reasons <= {"offline", "cik_map_unavailable"}
    assert not (settings.layout.state_dir / CYCLE_FILE).exists()


async def test_discover_after_refresh_makes_no_network_request(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    # Real time here: discover_async reads cache freshness with the wall clock.
    CLOCK.now = datetime.now(UTC)
    settings = settings_for(demo_root(tmp_path))
    result = await run(settings, sandbox.url)
    assert not result.failed
    before = requests_by_service(sandbox.url)
    CLOCK.now = datetime.now(UTC)
    outcome = await discover_async(
        settings, DiscoverOptions("demo", target=Target("sandbox", sandbox.url)), clock=CLOCK
    )
    assert outcome.exit_code == 0
    assert delta(requests_by_service(sandbox.url), before) == {}
    assert outcome.report is not None
    usage = outcome.report.get("service_usage", {})
    assert all(int(u.get("network_requests", 0)) == 0 for u in usage.values())


def test_coingecko_ttl_is_shorter_than_the_default_horizon() -> None:
    """The premise of the TTL-shorter-than-horizon case above (fails loudly if TTLs change)."""
    ttl = coingecko.SPEC.datasets["simple_price"].ttl
    assert isinstance(ttl, timedelta) and ttl < H12
