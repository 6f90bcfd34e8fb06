"""Stage 2 (the FetchPlan) with fake coverage and availability functions: pure, no I/O."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date

import pytest

from discovery.plan.needs import MACRO_SERIES, TickerFacts, report_needs
from discovery.plan.planner import Availability, Coverage, FetchPlan, plan_needs
from services import alpha_vantage, fmp, fred, sec_edgar
from services.spec import ServiceRequest
from tests.conftest import SERVICES

TODAY = date(2026, 11, 21)
FIRST = date(2026, 2, 9)
MARKET_REQUESTS = 2 + len(MACRO_SERIES) + 1 + 1 + 1  # SPY, VIX, FRED…, IMF, CG global, CG price


class FakeCache:
    """Coverage by cache key (live upstream); everything else is a miss. Records every ask."""

    def __init__(self, states: Mapping[str, Coverage] | None = None) -> None:
        self.states = dict(states or {})
        self.asked: list[str] = []

    def set(self, request: ServiceRequest, state: Coverage) -> None:
        self.states[request.cache_key()] = state

    def __call__(self, request: ServiceRequest) -> Coverage:
        self.asked.append(request.cache_key())
        return self.states.get(request.cache_key(), "miss")


def availability(down: Mapping[str, str] | None = None) -> Callable[[str], Availability]:
    blocked = dict(down or {})

    def lookup(service: str) -> Availability:
        if service in blocked:
            return Availability(False, blocked[service])
        return Availability(True)

    return lookup


def build_plan(
    *,
    tickers: list[str],
    open_tickers: list[str],
    first_entry: date,
    today: date,
    locally_covered: Mapping[str, str],
    cik_map: Mapping[str, str] | None,
    coverage: Callable[[ServiceRequest], Coverage],
    availability: Callable[[str], Availability],
    timeframe: str = "all",
) -> FetchPlan:
    """The needs of a portfolio planned (with the CIK map, when given, already applied)."""
    facts = [TickerFacts(t, t in open_tickers) for t in tickers]
    needs = report_needs(
        facts,
        first_entry=first_entry,
        today=today,
        locally_covered=locally_covered,
        timeframe=timeframe,
    )
    if cik_map is not None:
        needs = tuple(n.resolved(cik_map) if n.deferred else n for n in needs)
    return plan_needs(needs, coverage=coverage, availability=availability)


def plan(
    tickers: list[str],
    *,
    cache: FakeCache | None = None,
    down: Mapping[str, str] | None = None,
    local: Mapping[str, str] | None = None,
    cik_map: Mapping[str, str] | None = None,
    open_: list[str] | None = None,
) -> FetchPlan:
    return build_plan(
        tickers=tickers,
        open_tickers=open_ or [],
        first_entry=FIRST,
        today=TODAY,
        locally_covered=local or {},
        cik_map=cik_map,
        coverage=cache or FakeCache(),
        availability=availability(down),
    )


def keys(p: FetchPlan, service: str | None = None) -> list[str]:
    return [f.key for f in p.fetches if service is None or f.service == service]


def chart(p: FetchPlan, symbol: str) -> ServiceRequest:
    """The chart request the plan's needs declare for `symbol`."""
    return next(
        n.sources[0].request
        for n in p.needs
        if n.kind in ("chart", "benchmark") and n.subject == symbol
    )


def test_cold_plan_counts_and_every_fetch_has_a_reason() -> None:
    p = plan(["AAPL", "MSFT", "BTC-USD"], open_=["AAPL"])
    by = p.planned_by_service()
    assert by["yahoo_finance"] == 2 + 3  # SPY, ^VIX and three tickers
    assert by["fmp"] == 2  # crypto has no company profile
    assert by["fred"] == len(MACRO_SERIES)
    assert by["imf"] == 1
    assert by["coingecko"] == 2  # the global overview and one batched price request
    assert by["sec_edgar"] == 1  # the CIK map; submissions wait for it
    assert "alpha_vantage" not in by
    assert p.filings_pending == ("AAPL", "MSFT")
    market = [f for f in p.fetches if f.service in ("fred", "imf", "coingecko")]
    assert all(f.ticker is None for f in market)
    assert {f.label for f in p.fetches if f.service == "fred"} == set(MACRO_SERIES)
    assert len(keys(p)) == len(set(keys(p)))
    for item in p.fetches:
        assert item.reason.strip(), item
    reasons = {f.ticker: f.reason for f in p.fetches if f.service == "fmp"}
    assert reasons["AAPL"].startswith("open position")
    assert reasons["MSFT"].startswith("traded ticker")
    assert [(g.ticker, g.slot, g.reason) for g in p.gaps] == [
        ("BTC-USD", "filings", "not_applicable")
    ]


def test_crypto_ids_are_batched_into_one_price_request() -> None:
    p = plan(["BTC-USD", "ETH-USD", "AAPL"])
    prices = [f for f in p.fetches if f.request.dataset == "simple_price"]
    assert len(prices) == 1
    ids = prices[0].request.params["ids"]
    assert set(str(ids).split(",")) >= {"bitcoin", "ethereum"}


def test_dedupe_ticker_equal_to_benchmark() -> None:
    p = plan(["SPY", "AAPL"])
    spy = chart(p, "SPY").cache_key()
    assert keys(p).count(spy) == 1
    assert len(keys(p, "yahoo_finance")) == 3  # SPY once, ^VIX, AAPL


def test_local_first_fresh_file_replaces_profile_fetch() -> None:
    p = plan(["AAPL", "MSFT"], local={"AAPL": "outputs/fundamental_analysis/AAPL_20261112.md"})
    profiled = {f.ticker for f in p.fetches if f.service in ("fmp", "alpha_vantage")}
    assert profiled == {"MSFT"}
    local = [c for c in p.covered if c.by == "local"]
    assert [(c.subject, c.dataset) for c in local] == [("AAPL", "profile")]
    assert local[0].detail.endswith("AAPL_20261112.md")
    # price history is still needed for a locally covered ticker
    assert chart(p, "AAPL").cache_key() in keys(p)


def test_fresh_cache_entry_is_covered_not_fetched() -> None:
    cache = FakeCache()
    cache.set(fmp.profile_request("AAPL"), "fresh")
    cache.set(fred.observations_request("FEDFUNDS", date(2024, 1, 1)), "fresh")
    p = plan(["AAPL"], cache=cache)
    assert fmp.profile_request("AAPL").cache_key() not in keys(p)
    assert len(keys(p, "fred")) == len(MACRO_SERIES) - 1
    by_cache = {(c.subject, c.dataset, c.detail) for c in p.covered if c.by == "cache"}
    assert ("AAPL", "profile", "fmp") in by_cache
    assert all(c.request is not None for c in p.covered if c.by == "cache")


def test_stale_entry_is_refetched_with_reason() -> None:
    cache = FakeCache()
    cache.set(fmp.profile_request("AAPL"), "stale")
    p = plan(["AAPL"], cache=cache)
    item = next(f for f in p.fetches if f.service == "fmp")
    assert "expired" in item.reason


@pytest.mark.parametrize("why", ["not_configured", "quota_exhausted", "circuit_open"])
def test_fallback_to_alpha_vantage_when_fmp_unusable(why: str) -> None:
    p = plan(["AAPL"], down={"fmp": why})
    assert keys(p, "fmp") == []
    av = [f for f in p.fetches if f.service == "alpha_vantage"]
    assert [f.key for f in av] == [alpha_vantage.overview_request("AAPL").cache_key()]
    assert "fallback from fmp" in av[0].reason
    assert av[0].fallbacks == ()
    assert p.gaps == ()


def test_fmp_planned_with_alpha_vantage_as_runtime_fallback() -> None:
    p = plan(["AAPL"])
    item = next(f for f in p.fetches if f.service == "fmp")
    assert [r.cache_key() for r in item.fallbacks] == [
        alpha_vantage.overview_request("AAPL").cache_key()
    ]


def test_cached_negative_at_fmp_goes_to_alpha_vantage() -> None:
    cache = FakeCache()
    cache.set(fmp.profile_request("ZZTOP"), "negative")
    p = plan(["ZZTOP"], cache=cache)
    assert keys(p, "fmp") == []
    assert keys(p, "alpha_vantage") == [alpha_vantage.overview_request("ZZTOP").cache_key()]


def test_negative_everywhere_is_a_not_found_gap_not_a_fetch() -> None:
    cache = FakeCache()
    cache.set(fmp.profile_request("ZZTOP"), "negative")
    cache.set(alpha_vantage.overview_request("ZZTOP"), "negative")
    p = plan(["ZZTOP"], cache=cache)
    assert keys(p, "fmp") == keys(p, "alpha_vantage") == []
    gaps = [g for g in p.gaps if g.ticker == "ZZTOP"]
    assert [(g.service, g.dataset, g.reason) for g in gaps] == [("fmp", "profile", "not_found")]


def test_both_profile_services_unusable_is_a_gap_naming_the_first() -> None:
    p = plan(["AAPL"], down={"fmp": "not_configured", "alpha_vantage": "quota_exhausted"})
    assert keys(p, "fmp") == keys(p, "alpha_vantage") == []
    gap = next(g for g in p.gaps if g.ticker == "AAPL")
    assert (gap.service, gap.reason) == ("fmp", "not_configured")


def test_offline_plans_nothing_and_lists_every_need_as_a_gap() -> None:
    everything = {s: "offline" for s in SERVICES}
    cache = FakeCache()
    cache.set(chart(plan(["AAPL"]), "AAPL"), "stale")
    p = plan(["AAPL", "MSFT"], cache=cache, down=everything)
    assert p.fetches == ()
    assert {g.reason for g in p.gaps} == {"offline"}
    fred_gaps = [g for g in p.gaps if g.service == "fred"]
    assert {g.subject for g in fred_gaps} == set(MACRO_SERIES)
    assert all(g.ticker is None for g in fred_gaps)
    # market context (7 values + crypto price) + per ticker: chart, profile; + the CIK map
    assert len(p.gaps) == MARKET_REQUESTS + 2 * 2 + 1
    stale_gap = next(g for g in p.gaps if g.ticker == "AAPL" and g.dataset == "chart")
    assert stale_gap.detail is not None and "a stale entry is cached" in stale_gap.detail
    msft_chart = next(g for g in p.gaps if g.ticker == "MSFT" and g.dataset == "chart")
    assert "stale" not in (msft_chart.detail or "")


def test_offline_with_warm_cache_is_fully_covered() -> None:
    cold = plan(["AAPL"])
    warm = FakeCache({f.key: "fresh" for f in cold.fetches})
    p = plan(["AAPL"], cache=warm, down={"fmp": "offline", "yahoo_finance": "offline"})
    assert p.fetches == ()
    assert p.gaps == ()
    assert len(p.covered) == len(cold.fetches)


def test_filings_planned_from_cik_map() -> None:
    cik_map = {"AAPL": "0000320193", "BRK-B": "0001067983"}
    p = plan(["AAPL", "BRK.B", "MQG.AX"], cik_map=cik_map)
    assert p.filings_pending == ()
    subs = {f.ticker: f.key for f in p.fetches if f.request.dataset == "submissions"}
    assert subs == {
        "AAPL": sec_edgar.submissions_request("0000320193").cache_key(),
        "BRK.B": sec_edgar.submissions_request("0001067983").cache_key(),
    }
    gap = next(g for g in p.gaps if g.ticker == "MQG.AX")
    assert (gap.service, gap.dataset, gap.reason) == ("sec_edgar", "submissions", "not_found")


def test_filings_plan_phase_two() -> None:
    cache = FakeCache()
    cache.set(sec_edgar.submissions_request("0000000002"), "fresh")
    cik_map = {"AAA": "0000000001", "BBB": "0000000002"}
    facts = [TickerFacts(t, False) for t in ("AAA", "BBB", "CCC")]
    waiting = [
        n
        for n in report_needs(facts, first_entry=FIRST, today=TODAY, locally_covered={})
        if n.deferred is not None
    ]
    p = plan_needs(
        [n.resolved(cik_map) for n in waiting], coverage=cache, availability=availability()
    )
    assert [f.ticker for f in p.fetches] == ["AAA"]
    assert [f.label for f in p.fetches] == ["AAA"]
    assert [c.subject for c in p.covered] == ["BBB"]
    assert [(g.ticker, g.dataset, g.reason) for g in p.gaps] == [
        ("CCC", "submissions", "not_found")
    ]


def test_unknown_timeframe_is_refused() -> None:
    with pytest.raises(ValueError):
        build_plan(
            tickers=["AAPL"],
            open_tickers=[],
            first_entry=FIRST,
            today=TODAY,
            locally_covered={},
            cik_map=None,
            coverage=FakeCache(),
            availability=availability(),
            timeframe="2w",
        )


def test_plan_json_lists_reason_per_fetch_and_totals() -> None:
    p = plan(["AAPL", "MSFT"])
    doc = p.to_json()
    totals = doc["totals"]
    assert isinstance(totals, dict)
    assert totals["planned"] == len(p.fetches)
    assert totals["filings_pending_cik_map"] == 2
    fetches = doc["fetches"]
    assert isinstance(fetches, list)
    assert all(f["reason"] and f["service"] and f["key"] for f in fetches)


def test_quota_is_spent_while_planning_and_the_rest_goes_to_the_fallback() -> None:
    """FMP has 2 calls left and Alpha Vantage 1: two profiles from FMP, one from AV at once
    (not after FMP runs dry), and the fourth is a quota gap: never more than the quota."""
    quotas = {"fmp": 2, "alpha_vantage": 1}

    def lookup(service: str) -> Availability:
        return Availability(True, quota_left=quotas.get(service))

    tickers = ["AAA", "BBB", "CCC", "DDD"]
    p = build_plan(
        tickers=tickers,
        open_tickers=[],
        first_entry=FIRST,
        today=TODAY,
        locally_covered={},
        cik_map={},
        coverage=FakeCache(),
        availability=lookup,
    )
    assert keys(p, "fmp") == [fmp.profile_request(t).cache_key() for t in ("AAA", "BBB")]
    assert keys(p, "alpha_vantage") == [alpha_vantage.overview_request("CCC").cache_key()]
    av = next(f for f in p.fetches if f.service == "alpha_vantage")
    assert "fallback from fmp" in av.reason
    gaps = [g for g in p.gaps if g.dataset == "profile"]
    assert [(g.ticker, g.service, g.reason) for g in gaps] == [("DDD", "fmp", "quota_exhausted")]
