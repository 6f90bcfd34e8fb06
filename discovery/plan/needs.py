"""What the report needs, declared once: every slot with the request(s) that can fill it, in
fallback order, and the parser that turns an answer into the slot's record.

The planner plans from these needs, the fetch engine fetches what the planner chose, and
assembly reads each slot's answer back through the same declaration — nobody rebuilds a
request to find its result. A new slot is one more builder here and one renderer in the report;
the engine does not change. The FX charts are such slots: they are planned once the tickers'
currencies are known (`fx_needs`), after the first fetch.

Each Yahoo chart asks for the smallest range that covers what it is for (a ticker's own
holding window, the benchmark's report window and every trade) and its parser keeps only the
bars of that window.

Pure: no I/O; every function here is a value computation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import field, replace
from datetime import date, timedelta
from functools import partial
from typing import Any

from discovery.currencies import fx_symbol
from services import alpha_vantage, coingecko, fmp, fred, imf, sec_edgar, yahoo_finance
from services.recordclass import record
from services.spec import ServiceRequest

# What the report's market context is made of.
MACRO_SERIES: tuple[str, ...] = ("FEDFUNDS", "DGS10", "CPIAUCSL", "UNRATE", "VIXCLS")
VIX_SYMBOL = "^VIX"
MARKET_COINS: tuple[str, ...] = ("bitcoin", "ethereum")
GROWTH_INDICATOR = "NGDP_RPCH"
GROWTH_COUNTRIES: tuple[str, ...] = ("USA", "CHN", "DEU", "JPN", "GBR", "IND")
TIMEFRAMES: tuple[str, ...] = ("1m", "3m", "6m", "1y", "ytd", "all")

TICKER_KINDS: tuple[str, ...] = ("chart", "profile", "filings")
FX_RANGE = "1mo"  # a rate is read from the latest close: the smallest range Yahoo offers
CIK_MAP = "cik_map:SEC"

Parser = Callable[[Any], Any]


@record
class Source:
    """One way to fill a slot: a request, and the parser from its payload to the slot's record
    (None or empty: the service answered, with nothing for this slot)."""

    request: ServiceRequest
    parse: Parser = field(compare=False, repr=False)
    negative: str = "not_found"  # the gap reason when the service answers "nothing known"

    @property
    def key(self) -> str:
        return self.request.cache_key()

    @property
    def service(self) -> str:
        return self.request.service


@record
class Deferred:
    """Sources that can only be named once another need's value is in hand (SEC filings need
    the ticker→CIK map). `sources(value)` returns () when the value does not list the subject."""

    on: str  # the id of the need whose parsed value this one needs
    sources: Callable[[Any], tuple[Source, ...]] = field(compare=False, repr=False)
    missing: str = "not listed"  # the not_found detail when the value does not list the subject


@record
class Need:
    """One report slot: its kind, what it is about, why, and how to fill it.

    Exactly one of these describes how: `sources` (the fallback chain; () with `settled`: a gap
    by declaration), `deferred`, or `local` (a fresh local analysis file stands in)."""

    kind: str
    subject: str
    why: str
    service: str  # where a gap for it is filed (the first source's service)
    dataset: str
    sources: tuple[Source, ...] = ()
    ticker: str | None = None
    deferred: Deferred | None = None
    local: str | None = None  # the local file that covers the slot
    settled: tuple[str, str] | None = None  # (reason, detail): known to be a gap by declaration
    window: tuple[date, date] | None = None  # the dates a price summary covers
    internal: bool = False  # fills no report slot (the CIK map only unlocks filings)

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.ticker or self.subject}"

    @property
    def label(self) -> str:
        return self.ticker or self.subject

    def resolved(self, value: Any) -> Need:
        """A deferred need made concrete from its dependency's value."""
        assert self.deferred is not None
        sources = self.deferred.sources(value)
        if not sources:
            return replace(self, deferred=None, settled=("not_found", self.deferred.missing))
        return replace(self, deferred=None, sources=sources)


@record
class TickerFacts:
    """What the needs of one traded ticker depend on (from the TradeBook)."""

    symbol: str
    open: bool
    first_entry: date | None = None
    last_exit: date | None = None


def timeframe_start(timeframe: str, first_entry: date | None, end: date) -> date:
    """First day of the analysis window ending on `end` (`all` = the portfolio's first entry)."""
    if timeframe == "all":
        return first_entry or end - timedelta(days=365)
    if timeframe == "ytd":
        return date(end.year, 1, 1)
    days = {"1m": 31, "3m": 92, "6m": 183, "1y": 366}[timeframe]
    return end - timedelta(days=days)


def period_end(tickers: Sequence[TickerFacts], today: date) -> date:
    """The last day the report's window covers: today while a position is open (or nothing has
    been exited), else the portfolio's last exit — a closed book is not measured to today."""
    exits = [f.last_exit for f in tickers if f.last_exit is not None]
    if not exits or any(f.open for f in tickers):
        return today
    return min(max(exits), today)


def macro_start(today: date) -> date:
    """FRED window start: fixed per calendar year so the cache key is stable all year."""
    return date(today.year - 2, 1, 1)


def _need(kind: str, subject: str, why: str, *sources: Source, **extra: Any) -> Need:
    first = sources[0].request
    return Need(kind, subject, why, first.service, first.dataset, sources, **extra)


def _chart(
    symbol: str, since: date | None, today: date, until: date | None = None, range_: str = ""
) -> Source:
    """A Yahoo chart over the smallest range reaching back to `since`, parsed on [since, until]."""
    span = range_ or yahoo_finance.range_covering(since or today, today)
    return Source(
        yahoo_finance.chart_request(symbol, span),
        partial(yahoo_finance.parse_closes, since=since, until=until),
    )


def _coin_quote(coin: str, payload: Any) -> Any:
    return coingecko.parse_simple_price(payload).get(coin)


def cik_lookup(cik_map: Mapping[str, str], ticker: str) -> str | None:
    """SEC lists share classes with a dash (BRK-B) where exports often write a dot (BRK.B)."""
    return cik_map.get(ticker) or cik_map.get(ticker.replace(".", "-"))


def _filings_sources(ticker: str, cik_map: Mapping[str, str]) -> tuple[Source, ...]:
    cik = cik_lookup(cik_map, ticker)
    if cik is None:
        return ()
    return (Source(sec_edgar.submissions_request(cik), sec_edgar.parse_filings),)


def market_needs(
    *,
    benchmark: str,
    start: date,
    end: date,
    today: date,
    first_entry: date | None,
    crypto_ids: Sequence[str],
) -> list[Need]:
    """The market context: benchmark, ^VIX, each FRED series, IMF growth, CoinGecko.

    The benchmark's chart reaches back to the first trade as well as to the window's start:
    the same chart gives each closed trade its benchmark return (one request, not one per
    trade)."""
    since = min(start, first_entry) if first_entry is not None else start
    needs = [
        _need(
            "benchmark",
            benchmark,
            f"benchmark {benchmark} return over the period and over each trade",
            _chart(benchmark, since, today, end),
            window=(start, end),
        ),
        _need(
            "vix", VIX_SYMBOL, "VIX level and regime", _chart(VIX_SYMBOL, None, today, None, "1mo")
        ),
    ]
    for series in MACRO_SERIES:
        needs.append(
            _need(
                "indicator",
                series,
                f"economic indicator {series}",
                Source(fred.observations_request(series, macro_start(today)), fred.parse_latest),
            )
        )
    growth = imf.growth_request(GROWTH_INDICATOR, GROWTH_COUNTRIES)
    needs.append(
        _need(
            "growth",
            ",".join(growth.subjects),
            "global growth",
            Source(
                growth,
                partial(imf.parse_datamapper, indicator=GROWTH_INDICATOR, current_year=today.year),
                negative="no_data",  # the DataMapper answers `{"api": …}` alone when it has none
            ),
            window=(date(today.year, 1, 1), today),  # projections are relative to this year
        )
    )
    needs.append(
        _need(
            "crypto_market",
            "crypto market",
            "crypto market overview",
            Source(coingecko.global_request(), coingecko.parse_global),
        )
    )
    prices = coingecko.simple_price_request(crypto_ids)
    needs.append(
        _need(
            "crypto_prices",
            ",".join(prices.subjects),
            "crypto prices (portfolio coins and market leaders)",
            Source(prices, coingecko.parse_simple_price),
        )
    )
    return needs


def ticker_needs(
    facts: TickerFacts,
    *,
    start: date,
    today: date,
    prices: ServiceRequest,
    local: str | None,
) -> list[Need]:
    """One traded ticker: its price history (over its own holding window: the smallest Yahoo
    range reaching back to its first entry within the report's window; an open position's
    reaches today, for its mark), its profile (a fresh local analysis file, else FMP then Alpha
    Vantage; CoinGecko's quote for a crypto pair) and its SEC filings."""
    t = facts.symbol
    role = "open position" if facts.open else "traded ticker"
    lo = max(facts.first_entry or start, start)
    hi = today if facts.open or facts.last_exit is None else facts.last_exit
    chart = _need(
        "chart",
        t,
        f"{role}: price history over the holding period",
        _chart(t, lo, today, hi),
        ticker=t,
        window=(lo, hi),
    )
    coin = coingecko.coin_id(t)
    if coin is not None:
        profile = _need(
            "profile",
            t,
            f"{role}: crypto quote",
            Source(prices, partial(_coin_quote, coin)),
            ticker=t,
        )
        filings = Need(
            "filings",
            t,
            f"{role}: SEC filings",
            "sec_edgar",
            "submissions",
            ticker=t,
            settled=("not_applicable", "a crypto pair has no SEC filings"),
        )
        return [chart, profile, filings]
    if local is not None:
        profile = Need(
            "profile", t, f"{role}: company profile", "local", "profile", ticker=t, local=local
        )
    else:
        profile = _need(
            "profile",
            t,
            f"{role}: no fresh local analysis, company profile needed",
            Source(fmp.profile_request(t), fmp.parse_profile),
            Source(alpha_vantage.overview_request(t), alpha_vantage.parse_overview),
            ticker=t,
        )
    filings = Need(
        "filings",
        t,
        "latest 10-K/10-Q/8-K filings",
        "sec_edgar",
        "submissions",
        ticker=t,
        deferred=Deferred(CIK_MAP, partial(_filings_sources, t), "not in the SEC CIK map"),
    )
    return [chart, profile, filings]


def report_needs(
    tickers: Sequence[TickerFacts],
    *,
    first_entry: date | None,
    today: date,
    locally_covered: Mapping[str, str],
    benchmark: str = "SPY",
    timeframe: str = "all",
) -> tuple[Need, ...]:
    """Every slot the report has, in planning order: market context first (shared by every
    ticker), then each ticker's, then the CIK map the filings wait on."""
    if timeframe not in TIMEFRAMES:
        raise ValueError(f"unknown timeframe {timeframe!r}")
    end = period_end(tickers, today)
    start = timeframe_start(timeframe, first_entry, end)
    coins = sorted({*MARKET_COINS, *(c for f in tickers if (c := coingecko.coin_id(f.symbol)))})
    needs = market_needs(
        benchmark=benchmark,
        start=start,
        end=end,
        today=today,
        first_entry=first_entry,
        crypto_ids=coins,
    )
    prices = needs[-1].sources[0].request
    for facts in tickers:
        needs.extend(
            ticker_needs(
                facts,
                start=start,
                today=today,
                prices=prices,
                local=locally_covered.get(facts.symbol),
            )
        )
    if any(n.deferred is not None and n.deferred.on == CIK_MAP for n in needs):
        needs.append(
            Need(
                "cik_map",
                "SEC",
                "SEC ticker→CIK map",
                "sec_edgar",
                "cik_map",
                (Source(sec_edgar.company_tickers_request(), sec_edgar.parse_company_tickers),),
                internal=True,
            )
        )
    return tuple(needs)


def fx_needs(currencies: Sequence[str], *, base: str, today: date) -> tuple[Need, ...]:
    """One exchange-rate slot per major currency other than `base` (GBp and GBP share GBP's):
    Yahoo's `{CUR}{BASE}=X` chart, read at its latest close. Planned after the first fetch,
    once the tickers' currencies are known."""
    needs = []
    for currency in sorted(set(currencies) - {base}):
        symbol = fx_symbol(currency, base)
        needs.append(
            _need(
                "fx",
                symbol,
                f"exchange rate {currency} → {base} for the converted totals",
                _chart(symbol, today - timedelta(days=31), today, None, FX_RANGE),
            )
        )
    return tuple(needs)
