"""Stage 2: from TradeBook + Inventory + cache, the FetchPlan (pure: the cache is asked through a
`peek` function and service availability through a `status` function, both passed in).

Every planned request carries the reason it is needed; everything not planned is either covered
(by a local file or a fresh cache entry) or reported as a gap with its reason. Duplicates are
impossible by construction: requests are keyed by their cache key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Literal

from services import alpha_vantage, coingecko, fmp, fred, imf, sec_edgar, yahoo_finance
from services.spec import ServiceRequest

# What the report's market context is made of.
MACRO_SERIES: tuple[str, ...] = ("FEDFUNDS", "DGS10", "CPIAUCSL", "UNRATE", "VIXCLS")
VIX_SYMBOL = "^VIX"
MARKET_COINS: tuple[str, ...] = ("bitcoin", "ethereum")
GROWTH_INDICATOR = "NGDP_RPCH"
GROWTH_COUNTRIES: tuple[str, ...] = ("USA", "CHN", "DEU", "JPN", "GBR", "IND")
TIMEFRAMES: tuple[str, ...] = ("1m", "3m", "6m", "1y", "ytd", "all")

Coverage = Literal["fresh", "negative", "stale", "miss"]
CoverageLookup = Callable[[ServiceRequest], Coverage]


@dataclass(frozen=True)
class Availability:
    """Whether a service may be called this run, and why not."""

    usable: bool
    reason: str | None = (
        None  # not_configured | quota_exhausted | circuit_open | offline | disabled
    )
    # Calls left in today's quota (None: no quota). The planner spends it as it plans, so a
    # plan never asks a service for more than its quota allows: the rest goes to the fallback
    # from the start (in parallel) instead of after the primary has run dry.
    quota_left: int | None = None


AvailabilityLookup = Callable[[str], Availability]


@dataclass(frozen=True)
class PlannedFetch:
    request: ServiceRequest
    reason: str
    fallback: ServiceRequest | None = None  # tried when the primary is unusable or not-found
    ticker: str | None = None  # the portfolio ticker it serves (None: market context)

    @property
    def label(self) -> str:
        """What a gap for this fetch is about: the ticker, else the request's subjects."""
        return self.ticker or subject_label(self.request)

    @property
    def service(self) -> str:
        return self.request.service

    @property
    def key(self) -> str:
        return self.request.cache_key()


@dataclass(frozen=True)
class Covered:
    subject: str
    dataset: str
    by: Literal["local", "cache"]
    detail: str
    request: ServiceRequest | None = None  # the cached request (read back at fetch time)


@dataclass(frozen=True)
class PlannedGap:
    ticker: str | None
    service: str | None
    dataset: str
    reason: str
    detail: str | None = None
    subject: str | None = None  # the ticker, or the market series/coin the gap is about


def subject_label(request: ServiceRequest) -> str:
    """A short name for what a request is about (`FEDFUNDS`, `bitcoin,ethereum`, `market`)."""
    return ",".join(request.subjects) if request.subjects else "market"


@dataclass(frozen=True)
class FetchPlan:
    fetches: tuple[PlannedFetch, ...]
    covered: tuple[Covered, ...]
    gaps: tuple[PlannedGap, ...]
    # Filled in a second phase once the CIK map is known (SEC submissions need CIKs).
    filings_pending: tuple[str, ...] = ()
    price_range: str = "1y"
    notes: tuple[str, ...] = field(default_factory=tuple)

    def planned_by_service(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.fetches:
            counts[item.service] = counts.get(item.service, 0) + 1
        return counts

    def to_json(self) -> dict[str, object]:
        return {
            "totals": {
                "planned": len(self.fetches),
                "by_service": self.planned_by_service(),
                "covered": len(self.covered),
                "gaps": len(self.gaps),
                "filings_pending_cik_map": len(self.filings_pending),
            },
            "fetches": [
                {
                    "service": f.service,
                    "dataset": f.request.dataset,
                    "key": f.key,
                    "subjects": list(f.request.subjects),
                    "reason": f.reason,
                    "fallback": f.fallback.service if f.fallback else None,
                }
                for f in self.fetches
            ],
            "covered": [
                {"subject": c.subject, "dataset": c.dataset, "by": c.by, "detail": c.detail}
                for c in self.covered
            ],
            "gaps": [g.__dict__ for g in self.gaps],
            "notes": list(self.notes),
        }


def timeframe_start(timeframe: str, first_entry: date | None, today: date) -> date:
    """First day of the analysis window (`all` = the portfolio's first entry)."""
    if timeframe == "all":
        return first_entry or today - timedelta(days=365)
    if timeframe == "ytd":
        return date(today.year, 1, 1)
    days = {"1m": 31, "3m": 92, "6m": 183, "1y": 366}[timeframe]
    return today - timedelta(days=days)


def macro_start(today: date) -> date:
    """FRED window start: fixed per calendar year so the cache key is stable all year."""
    return date(today.year - 2, 1, 1)


class _Planner:
    """Accumulates the plan; one instance per `build_plan` call."""

    def __init__(self, coverage: CoverageLookup, availability: AvailabilityLookup) -> None:
        self.coverage = coverage
        self.availability = availability
        self.fetches: dict[str, PlannedFetch] = {}
        self.covered: list[Covered] = []
        self.gaps: list[PlannedGap] = []
        self.spent: dict[str, int] = {}  # planned network requests per service

    def usable(self, service: str) -> Availability:
        """The service's availability, with its quota reduced by what is already planned."""
        avail = self.availability(service)
        spent = self.spent.get(service, 0)
        if avail.usable and avail.quota_left is not None and spent >= avail.quota_left:
            return Availability(False, "quota_exhausted", 0)
        return avail

    def want(
        self,
        request: ServiceRequest,
        reason: str,
        *,
        subject: str | None,
        fallback: ServiceRequest | None = None,
    ) -> None:
        """Cover `request` from the cache, or plan it (or its fallback), or record a gap."""
        label = subject or subject_label(request)
        chain = [request] if fallback is None else [request, fallback]
        blocked: list[tuple[ServiceRequest, str, bool]] = []
        all_negative = True
        for i, candidate in enumerate(chain):
            state = self.coverage(candidate)
            if state == "fresh":
                self.covered.append(
                    Covered(label, candidate.dataset, "cache", candidate.service, candidate)
                )
                return
            if state == "negative":  # this service already said "unknown": try the next one
                continue
            all_negative = False
            avail = self.usable(candidate.service)
            if not avail.usable:
                blocked.append((candidate, avail.reason or "unavailable", state == "stale"))
                continue
            why = reason if state == "miss" else f"{reason} (cached entry expired)"
            if i > 0:
                why += f" (fallback from {request.service})"
            rest = chain[i + 1 :]
            key = candidate.cache_key()
            if key not in self.fetches:
                self.fetches[key] = PlannedFetch(
                    candidate, why, rest[0] if rest else None, ticker=subject
                )
                self.spent[candidate.service] = self.spent.get(candidate.service, 0) + 1
            return
        if all_negative:
            self.gaps.append(
                PlannedGap(
                    subject,
                    request.service,
                    request.dataset,
                    "not_found",
                    "cached negative",
                    subject=label,
                )
            )
            return
        first, why_not, stale = blocked[0]
        detail = "stale cache entry will be used" if stale else None
        self.gaps.append(
            PlannedGap(subject, first.service, first.dataset, why_not, detail, subject=label)
        )


def build_plan(
    *,
    tickers: Sequence[str],
    open_tickers: Iterable[str],
    first_entry: date | None,
    today: date,
    locally_covered: Mapping[str, str],
    cik_map: Mapping[str, str] | None,
    coverage: CoverageLookup,
    availability: AvailabilityLookup,
    benchmark: str = "SPY",
    timeframe: str = "all",
) -> FetchPlan:
    """Plan every request the report needs.

    `locally_covered` maps a ticker to the local fundamental file that replaces its profile fetch
    (only fresh files: a stale file still counts as coverage but its profile is refreshed).
    `cik_map` is the cached SEC ticker→CIK map, or None when it must be fetched first.
    """
    if timeframe not in TIMEFRAMES:
        raise ValueError(f"unknown timeframe {timeframe!r}")
    planner = _Planner(coverage, availability)
    open_set = set(open_tickers)
    start = timeframe_start(timeframe, first_entry, today)
    price_range = yahoo_finance.range_covering(start, today)

    # Market context first: it is shared by every ticker.
    planner.want(
        yahoo_finance.chart_request(benchmark, price_range),
        f"benchmark {benchmark} return over the period",
        subject=None,
    )
    vix = yahoo_finance.chart_request(VIX_SYMBOL, "1mo")
    planner.want(vix, "VIX level and regime", subject=None)
    for series in MACRO_SERIES:
        planner.want(
            fred.observations_request(series, macro_start(today)),
            f"economic indicator {series}",
            subject=None,
        )
    planner.want(
        imf.growth_request(GROWTH_INDICATOR, GROWTH_COUNTRIES), "global growth", subject=None
    )
    planner.want(coingecko.global_request(), "crypto market overview", subject=None)

    crypto_ids: set[str] = set(MARKET_COINS)
    equities: list[str] = []
    for ticker in tickers:
        why = "open position" if ticker in open_set else "traded ticker"
        planner.want(
            yahoo_finance.chart_request(ticker, price_range),
            f"{why}: price history over the holding period",
            subject=ticker,
        )
        coin = coingecko.coin_id(ticker)
        if coin is not None:
            crypto_ids.add(coin)
            continue
        if ticker in locally_covered:
            planner.covered.append(Covered(ticker, "profile", "local", locally_covered[ticker]))
        else:
            planner.want(
                fmp.profile_request(ticker),
                f"{why}: no fresh local analysis, company profile needed",
                subject=ticker,
                fallback=alpha_vantage.overview_request(ticker),
            )
        equities.append(ticker)
    planner.want(
        coingecko.simple_price_request(sorted(crypto_ids)),
        "crypto prices (portfolio coins and market leaders)",
        subject=None,
    )

    pending: tuple[str, ...] = ()
    if equities:
        # Always through `want`: when the map is cached it is read back (the report needs it).
        planner.want(sec_edgar.company_tickers_request(), "SEC ticker→CIK map", subject=None)
        if cik_map is None:
            pending = tuple(equities)
        else:
            plan_filings(planner, equities, cik_map)
    return FetchPlan(
        fetches=tuple(planner.fetches.values()),
        covered=tuple(planner.covered),
        gaps=tuple(planner.gaps),
        filings_pending=pending,
        price_range=price_range,
    )


def plan_filings(planner: _Planner, tickers: Iterable[str], cik_map: Mapping[str, str]) -> None:
    for ticker in tickers:
        cik = cik_map.get(ticker) or cik_map.get(ticker.replace(".", "-"))
        if cik is None:
            planner.gaps.append(
                PlannedGap(
                    ticker,
                    "sec_edgar",
                    "submissions",
                    "not_found",
                    "not in the SEC CIK map",
                    subject=ticker,
                )
            )
            continue
        planner.want(
            sec_edgar.submissions_request(cik), "latest 10-K/10-Q/8-K filings", subject=ticker
        )


def build_filings_plan(
    tickers: Iterable[str],
    cik_map: Mapping[str, str],
    *,
    coverage: CoverageLookup,
    availability: AvailabilityLookup,
) -> FetchPlan:
    """Phase two: the SEC submissions requests, once the CIK map is known."""
    planner = _Planner(coverage, availability)
    plan_filings(planner, tickers, cik_map)
    return FetchPlan(tuple(planner.fetches.values()), tuple(planner.covered), tuple(planner.gaps))
