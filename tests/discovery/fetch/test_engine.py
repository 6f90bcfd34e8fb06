"""The fetch engine: every request it schedules is awaited, whenever it is scheduled."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from cache.backend import CacheRead, ReadState
from discovery.fetch.ceilings import MemoryCeiling
from discovery.fetch.engine import FetchEngine, PhaseTwo
from discovery.plan.needs import TickerFacts, report_needs
from discovery.plan.outcomes import Failed, Got, resolve
from discovery.plan.planner import Availability, FetchPlan, plan_needs
from discovery.report.gaps import Gap
from discovery.runs.discover import DiscoverOptions, discover_async
from discovery.settings import load_settings
from discovery.upstream import Target
from services import alpha_vantage, fmp, sec_edgar
from services.errors import QuotaExhausted
from services.sandbox.faults import FaultSpec
from services.sandbox.server import SandboxServer
from services.spec import FetchResult, ServiceRequest
from tests.conftest import FAST_LIMITS, fast_config, generated_root


@pytest.mark.integration
async def test_filings_scheduled_while_the_stage_drains_are_all_awaited(tmp_path: Path) -> None:
    """SEC slow (every SEC answer 0.3 s late) and 30 tickers: the filings are scheduled when
    the CIK map arrives, after everything else has been scheduled and while the other services
    finish — each of the 30 still ends as a value or a gap (before the engine, up to all of
    them vanished without a gap and the run said exit 0)."""
    root = generated_root(tmp_path, 30)
    faults = [FaultSpec("sec_edgar", "slow", 1.0)]
    with SandboxServer(faults=faults, rate_limits=FAST_LIMITS, slow_ms=300) as server:
        settings = load_settings(fast_config(tmp_path), data_root=root)
        options = DiscoverOptions("gen", target=Target("sandbox", server.url))
        outcome = await discover_async(settings, options)
    assert outcome.report is not None
    filings_gaps = {g.ticker for g in outcome.gaps if g.slot == "filings"}
    for ticker, data in outcome.report["ticker_data"].items():
        assert (data["filings"] is not None) != (ticker in filings_gaps), ticker
    assert sum(1 for d in outcome.report["ticker_data"].values() if d["filings"]) == 30
    assert outcome.exit_code == 0


# -- the engine against a scripted hub: no sockets, exact outcomes -----------------------------


class ScriptedHub:
    """Answers each request by its cache key: a status ("ok" / "negative") or an exception,
    after an optional delay; everything else is "ok" at once."""

    def __init__(self, script: dict[str, Any] | None = None, delay: dict[str, float] | None = None):
        self.script = script or {}
        self.delay = delay or {}
        self.planned: dict[str, int] = {}
        self.asked: list[str] = []

    def status(self, service: str) -> Any:
        return SimpleNamespace(max_connections=2)

    concurrency = 4

    def set_concurrency(self, n: int) -> None:
        self.concurrency = n

    def add_planned(self, service: str, n: int) -> None:
        self.planned[service] = self.planned.get(service, 0) + n

    def peek(self, request: ServiceRequest, *, verify: bool = True) -> CacheRead:
        return CacheRead(ReadState.MISS)

    def cached(self, request: ServiceRequest) -> FetchResult | None:
        return None  # nothing is cached here: every read goes through `fetch`

    async def fetch(self, request: ServiceRequest) -> FetchResult:
        key = request.cache_key()
        self.asked.append(key)
        await asyncio.sleep(self.delay.get(request.dataset, 0.0))
        answer = self.script.get(key, "ok")
        if isinstance(answer, Exception):
            raise answer
        when = datetime(2026, 11, 20, tzinfo=UTC)
        return FetchResult(request, answer, {"ok": True}, "network", when, when)

    fetch_fresh = fetch


def one_ticker_plan(ticker: str = "AAPL") -> FetchPlan:
    needs = report_needs(
        [TickerFacts(ticker, True)], first_entry=None, today=TODAY, locally_covered={}
    )
    return plan_needs(needs, coverage=lambda r: "miss", availability=lambda s: Availability(True))


TODAY = date(2026, 11, 20)


async def test_a_failed_primary_falls_back_and_both_outcomes_are_kept() -> None:
    plan = one_ticker_plan()
    fmp_key = fmp.profile_request("AAPL").cache_key()
    av_key = alpha_vantage.overview_request("AAPL").cache_key()
    hub = ScriptedHub({fmp_key: QuotaExhausted("fmp", "daily limit reached")})
    events: list[tuple[str, str]] = []
    out = await FetchEngine(hub, progress=lambda s, e: events.append((s, e))).run(plan)
    assert isinstance(out.outcomes[fmp_key], Failed)
    assert out.outcomes[fmp_key].reason == "quota_exhausted"
    assert isinstance(out.outcomes[av_key], Got)
    assert hub.planned["alpha_vantage"] == 1  # the fallback is counted when it is sent
    assert ("fmp", "done") in events  # the item counts once, against its primary service
    profile = next(n for n in plan.needs if n.kind == "profile")
    answer = resolve(profile, out.outcomes)
    assert not isinstance(answer, Gap) and answer.source.service == "alpha_vantage"


async def test_unknown_everywhere_is_not_found_with_both_services_named() -> None:
    plan = one_ticker_plan("ZZQ")
    fmp_key = fmp.profile_request("ZZQ").cache_key()
    av_key = alpha_vantage.overview_request("ZZQ").cache_key()
    out = await FetchEngine(ScriptedHub({fmp_key: "negative", av_key: "negative"})).run(plan)
    gap = resolve(next(n for n in plan.needs if n.kind == "profile"), out.outcomes)
    assert isinstance(gap, Gap) and gap.reason == "not_found" and not gap.is_fault
    assert gap.detail is not None and "fmp" in gap.detail and "alpha_vantage" in gap.detail


async def test_past_the_memory_ceiling_nothing_is_sent_and_every_item_fails_with_its_reason() -> (
    None
):
    plan = one_ticker_plan()
    hub = ScriptedHub()
    ceiling = MemoryCeiling(100, rss_reader=lambda: 500.0)
    out = await FetchEngine(hub, ceiling=ceiling).run(plan)
    assert hub.asked == []
    assert out.stopped_early == "memory_ceiling"
    assert {o.reason for o in out.outcomes.values() if isinstance(o, Failed)} == {"memory_ceiling"}
    assert len(out.outcomes) >= len(plan.fetches)


async def test_phase_two_scheduled_after_everything_else_finished_is_awaited() -> None:
    """The CIK map answers last and each filing takes longer still: the engine returns only
    when every filing scheduled from the map has its outcome."""
    tickers = ["AAPL", "MSFT", "NVDA"]
    needs = report_needs(
        [TickerFacts(t, True) for t in tickers], first_entry=None, today=TODAY, locally_covered={}
    )
    planner = lambda ns: plan_needs(  # noqa: E731
        ns, coverage=lambda r: "miss", availability=lambda s: Availability(True)
    )
    plan = planner(needs)
    company_tickers = {
        "0": {"cik_str": 320193, "ticker": "AAPL"},
        "1": {"cik_str": 789019, "ticker": "MSFT"},
    }
    hub = ScriptedHub(delay={"cik_map": 0.05, "submissions": 0.2})
    phase_two = PhaseTwo.of(plan, planner, lambda answer: answer.source.parse(company_tickers))
    out = await FetchEngine(hub).run(plan, phase_two)
    assert out.second is not None
    subs = [sec_edgar.submissions_request(c).cache_key() for c in ("320193", "789019")]
    assert all(isinstance(out.outcomes.get(k), Got) for k in subs)
    filings = {n.ticker: n for n in out.needs(plan) if n.kind == "filings"}
    assert filings["NVDA"].settled == ("not_found", "not in the SEC CIK map")
