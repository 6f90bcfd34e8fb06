"""Stage 4: turn the trade book, the inventory and the fetched (or cached) payloads into the
report dict. Pure: everything it needs arrives in `AssembleInputs`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from discovery.ingest.trades import TradeBook
from discovery.local.inventory import Inventory
from discovery.local.sectors import canonical_sector
from discovery.plan.planner import (
    GROWTH_COUNTRIES,
    GROWTH_INDICATOR,
    MACRO_SERIES,
    MARKET_COINS,
    VIX_SYMBOL,
    FetchPlan,
    macro_start,
    subject_label,
    timeframe_start,
)
from discovery.report.confidence import confidence, next_phase_inputs
from discovery.report.gaps import Gap, dedupe_gaps
from discovery.report.market import (
    coin_entry,
    crypto_market_entry,
    growth_entry,
    latest_observation,
    price_summary,
    vix_regime,
)
from services import alpha_vantage, coingecko, fmp, fred, imf, sec_edgar, yahoo_finance
from services.errors import BadResponse
from services.spec import FetchResult, ServiceRequest


@dataclass(frozen=True)
class AssembleInputs:
    portfolio: str
    run_id: str
    started_at: datetime
    tool_version: str
    upstream: str
    data_source: str
    book: TradeBook
    inventory: Inventory
    plan: FetchPlan
    filings_plan: FetchPlan | None
    results: Mapping[str, FetchResult]
    fetch_gaps: Sequence[Gap]
    usage: Mapping[str, Mapping[str, Any]]
    cache_inventory: Mapping[str, Any]
    today: date
    timeframe: str
    benchmark: str
    report_path: str
    stopped_early: str | None = None
    # The fetch stage keeps no payloads (memory stays O(tickers), not O(bytes fetched)): a
    # result without its payload is read back from the cache, one at a time, by this function.
    load_payload: Callable[[FetchResult], Any] | None = None


class _Reader:
    """Looks up results by request and records parse failures as gaps (never made-up data)."""

    def __init__(
        self,
        results: Mapping[str, FetchResult],
        load_payload: Callable[[FetchResult], Any] | None = None,
    ) -> None:
        self.results = results
        self.load_payload = load_payload
        self.gaps: list[Gap] = []

    def get(self, request: ServiceRequest) -> FetchResult | None:
        result = self.results.get(request.cache_key())
        if result is None or result.status != "ok":
            return None
        return result

    def parse(
        self,
        request: ServiceRequest,
        parser: Any,
        *args: Any,
        ticker: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """The parsed payload, or None (absent, negative, or unparseable → a gap)."""
        result = self.get(request)
        if result is None:
            return None
        payload = result.payload
        if payload is None and self.load_payload is not None:
            payload = self.load_payload(result)
        if payload is None:
            self.gaps.append(
                Gap(
                    ticker,
                    request.service,
                    request.dataset,
                    "cache_evicted",
                    "fetched this run but no longer in the cache when the report was built",
                    ticker or subject_label(request),
                )
            )
            return None
        try:
            return parser(payload, *args, **kwargs)
        except (BadResponse, ValueError, KeyError, TypeError, AttributeError) as exc:
            self.gaps.append(
                Gap(
                    ticker,
                    request.service,
                    request.dataset,
                    "bad_response",
                    str(exc)[:200],
                    ticker or subject_label(request),
                )
            )
            return None


def provenance(result: FetchResult) -> dict[str, Any]:
    return {
        "service": result.request.service,
        "origin": result.origin,
        "fetched_at": result.fetched_at.isoformat(),
        "synthetic": result.synthetic,
    }


def _profile_json(profile: Any) -> dict[str, Any]:
    return {
        "name": profile.name,
        "sector": canonical_sector(profile.sector) if profile.sector else None,
        "sector_reported": profile.sector,
        "industry": profile.industry,
        "market_cap": profile.market_cap,
        "beta": profile.beta,
        "currency": profile.currency,
        "exchange": profile.exchange,
        "country": profile.country,
    }


def _ticker_window(perf: Mapping[str, Any], start: date, today: date) -> tuple[date, date]:
    first = perf.get("first_entry_date")
    last = perf.get("last_exit_date")
    lo = date.fromisoformat(first[:10]) if isinstance(first, str) else start
    open_now = perf.get("active_trades", 0) > 0
    hi = today if open_now or not isinstance(last, str) else date.fromisoformat(last[:10])
    return max(lo, start), hi


def market_context(inp: AssembleInputs, reader: _Reader) -> tuple[dict[str, Any], float]:
    """The market section and the share of its values present."""
    present = 0
    expected = 0
    start = timeframe_start(inp.timeframe, inp.book.summary.first_entry_date, inp.today)
    bench_req = yahoo_finance.chart_request(inp.benchmark, inp.plan.price_range)
    benchmarks: dict[str, Any] = {}
    expected += 1
    hist = reader.parse(bench_req, yahoo_finance.parse_chart, since=start)
    if hist is not None:
        summary = price_summary(hist, start, inp.today)
        if summary is not None:
            res = reader.get(bench_req)
            assert res is not None
            benchmarks[inp.benchmark] = {
                **summary,
                "as_of": summary["end_date"],
                "source": "yahoo_finance",
                "synthetic": res.synthetic,
            }
            present += 1

    volatility: dict[str, Any] = {}
    expected += 1
    vix_req = yahoo_finance.chart_request(VIX_SYMBOL, "1mo")
    vix = reader.parse(vix_req, yahoo_finance.parse_chart)
    if vix is not None:
        closes = [b for b in vix.bars if b.close is not None]
        if closes:
            res = reader.get(vix_req)
            assert res is not None
            last = closes[-1]
            volatility["vix"] = {
                "value": round(last.close, 2),
                "regime": vix_regime(last.close),
                "as_of": last.date.isoformat(),
                "source": "yahoo_finance",
                "synthetic": res.synthetic,
            }
            present += 1

    indicators: dict[str, Any] = {}
    for series in MACRO_SERIES:
        expected += 1
        req = fred.observations_request(series, macro_start(inp.today))
        observations = reader.parse(req, fred.parse_observations)
        if observations:
            obs = latest_observation(observations)
            if obs is not None:
                res = reader.get(req)
                assert res is not None
                indicators[series] = {
                    "value": obs.value,
                    "as_of": obs.date.isoformat(),
                    "source": "fred",
                    "synthetic": res.synthetic,
                }
                present += 1

    crypto: dict[str, Any] = {}
    expected += 1
    global_req = coingecko.global_request()
    market = reader.parse(global_req, coingecko.parse_global)
    if market is not None:
        res = reader.get(global_req)
        assert res is not None
        crypto["market"] = crypto_market_entry(market, "coingecko", res.synthetic)
        present += 1
    price_req = coingecko.simple_price_request(sorted(crypto_ids(inp)))
    quotes = reader.parse(price_req, coingecko.parse_simple_price)
    if quotes:
        res = reader.get(price_req)
        assert res is not None
        crypto["prices"] = {
            coin: coin_entry(q, "coingecko", res.synthetic) for coin, q in sorted(quotes.items())
        }

    growth: dict[str, Any] = {}
    expected += 1
    growth_req = imf.growth_request(GROWTH_INDICATOR, GROWTH_COUNTRIES)
    series_by_country = reader.parse(
        growth_req, imf.parse_datamapper, GROWTH_INDICATOR, current_year=inp.today.year
    )
    if series_by_country:
        res = reader.get(growth_req)
        assert res is not None
        growth = {
            "indicator": GROWTH_INDICATOR,
            "countries": growth_entry(series_by_country, inp.today.year),
            "as_of": res.fetched_at.date().isoformat(),
            "source": "imf",
            "synthetic": res.synthetic,
        }
        present += 1
    section = {
        "benchmarks": benchmarks,
        "volatility": volatility,
        "economic_indicators": indicators,
        "crypto": crypto,
        "global_growth": growth,
    }
    return section, (present / expected if expected else 1.0)


def crypto_ids(inp: AssembleInputs) -> set[str]:
    ids = set(MARKET_COINS)
    for ticker in inp.book.ticker_symbols:
        coin = coingecko.coin_id(ticker)
        if coin is not None:
            ids.add(coin)
    return ids


def ticker_data(
    inp: AssembleInputs, reader: _Reader, perf: Mapping[str, Mapping[str, Any]]
) -> tuple[dict[str, Any], float]:
    """Per ticker: profile, price history over the holding period, filings, provenance."""
    out: dict[str, Any] = {}
    start = timeframe_start(inp.timeframe, inp.book.summary.first_entry_date, inp.today)
    cik_map: Mapping[str, str] = {}
    map_req = sec_edgar.company_tickers_request()
    parsed_map = reader.parse(map_req, sec_edgar.parse_company_tickers)
    if parsed_map:
        cik_map = parsed_map
    quotes: Mapping[str, Any] = {}
    price_req = coingecko.simple_price_request(sorted(crypto_ids(inp)))
    parsed_quotes = reader.parse(price_req, coingecko.parse_simple_price)
    if parsed_quotes:
        quotes = parsed_quotes
    local = inp.inventory.entries()
    expected = 0
    present = 0
    for ticker in inp.book.ticker_symbols:
        prov: dict[str, Any] = {}
        entry: dict[str, Any] = {"profile": None, "price_history": None, "filings": None}
        coin = coingecko.coin_id(ticker)
        # price history
        expected += 1
        chart_req = yahoo_finance.chart_request(ticker, inp.plan.price_range)
        lo, hi = _ticker_window(perf.get(ticker, {}), start, inp.today)
        hist = reader.parse(chart_req, yahoo_finance.parse_chart, since=lo, ticker=ticker)
        if hist is not None:
            summary = price_summary(hist, lo, hi)
            if summary is not None:
                entry["price_history"] = summary
                res = reader.get(chart_req)
                assert res is not None
                prov["price_history"] = provenance(res)
                present += 1
        # profile: local analysis first, then FMP, then Alpha Vantage; crypto from CoinGecko
        expected += 1
        if coin is not None:
            quote = quotes.get(coin)
            if quote is not None:
                res = reader.get(price_req)
                assert res is not None
                entry["profile"] = {
                    "name": coin,
                    "asset_class": "crypto",
                    "coingecko_id": coin,
                    "price_usd": quote.usd,
                    "sector": None,
                }
                prov["profile"] = provenance(res)
                present += 1
        else:
            local_entry = local.get(ticker)
            fmp_req = fmp.profile_request(ticker)
            av_req = alpha_vantage.overview_request(ticker)
            profile = reader.parse(fmp_req, fmp.parse_profile, ticker=ticker)
            used = fmp_req
            if profile is None:
                profile = reader.parse(av_req, alpha_vantage.parse_overview, ticker=ticker)
                used = av_req
            if profile is not None:
                entry["profile"] = _profile_json(profile)
                res = reader.get(used)
                assert res is not None
                prov["profile"] = provenance(res)
                present += 1
            elif local_entry is not None and not local_entry.stale:
                entry["profile"] = {
                    "sector": local_entry.sector,
                    "recommendation": local_entry.recommendation,
                    "from_local_analysis": local_entry.file,
                }
                prov["profile"] = {
                    "service": "local",
                    "origin": "local",
                    "fetched_at": local_entry.date.isoformat(),
                    "synthetic": False,
                }
                present += 1
            # filings (SEC registrants only)
            cik = cik_map.get(ticker) or cik_map.get(ticker.replace(".", "-"))
            if cik is not None:
                expected += 1
                sub_req = sec_edgar.submissions_request(cik)
                filings = reader.parse(sub_req, sec_edgar.parse_submissions, ticker=ticker)
                if filings is not None:
                    entry["filings"] = [
                        {
                            "form": f.form,
                            "filing_date": iso(f.filing_date),
                            "report_date": iso(f.report_date),
                            "accession_number": f.accession_number,
                            "primary_document": f.primary_document,
                        }
                        for f in filings
                    ]
                    res = reader.get(sub_req)
                    assert res is not None
                    prov["filings"] = provenance(res)
                    present += 1
        entry["provenance"] = prov
        out[ticker] = entry
    return out, (present / expected if expected else 1.0)


def _negative(inp: AssembleInputs, request: ServiceRequest) -> bool:
    result = inp.results.get(request.cache_key())
    return result is not None and result.status == "negative"


def unexplained_gaps(
    inp: AssembleInputs, tickers: Mapping[str, Mapping[str, Any]], known: Sequence[Gap]
) -> list[Gap]:
    """A missing price history or profile that no earlier gap explains: `not_found` when the
    service said the symbol is unknown (inherent, not a fault), else `no_data`."""
    explained = {(g.ticker, g.dataset) for g in known}
    out: list[Gap] = []
    for ticker, data in tickers.items():
        if data["price_history"] is None and (ticker, "chart") not in explained:
            chart = yahoo_finance.chart_request(ticker, inp.plan.price_range)
            if _negative(inp, chart):
                out.append(
                    Gap(ticker, "yahoo_finance", "chart", "not_found", "unknown symbol", ticker)
                )
            else:
                why = "no bars in the window"
                out.append(Gap(ticker, "yahoo_finance", "chart", "no_data", why, ticker))
        if (
            data["profile"] is None
            and coingecko.coin_id(ticker) is None
            and not explained & {(ticker, "profile"), (ticker, "overview")}
        ):
            tried = [fmp.profile_request(ticker), alpha_vantage.overview_request(ticker)]
            if any(_negative(inp, r) for r in tried):
                out.append(Gap(ticker, "fmp", "profile", "not_found", "unknown symbol", ticker))
            else:
                out.append(Gap(ticker, "fmp", "profile", "no_data", "no profile found", ticker))
    return out


def assemble_report(inp: AssembleInputs) -> tuple[dict[str, Any], list[Gap]]:
    """The whole report (without stage timings and RSS, which the shell adds) and its gaps."""
    sections = inp.book.to_report_sections()
    local = inp.inventory.to_report_section()
    reader = _Reader(inp.results, inp.load_payload)
    perf = sections["ticker_performance"]
    market, market_share = market_context(inp, reader)
    tickers, ticker_share = ticker_data(inp, reader, perf)

    gaps = [Gap.from_planned(g) for g in inp.plan.gaps]
    gaps.extend(inp.fetch_gaps)
    gaps.extend(reader.gaps)
    gaps.extend(unexplained_gaps(inp, tickers, gaps))
    gaps = dedupe_gaps(gaps)

    cov = local["fundamental_analysis"].get("coverage", {})
    with_analysis = cov.get("with_analysis", 0)
    stale_count = len(local["fundamental_analysis"].get("stale", []) or [])
    total = max(1, cov.get("total", 0))
    components = {
        "trade_quality": inp.book.overall_confidence,
        "local_coverage": max(0.0, (with_analysis - 0.5 * stale_count) / total),
        "ticker_data": ticker_share,
        "market_context": market_share,
    }
    score = confidence(components)
    fault_gaps = sum(1 for g in gaps if g.is_fault)
    report: dict[str, Any] = {
        "portfolio": inp.portfolio,
        "discovery_metadata": {
            "run_id": inp.run_id,
            "execution_timestamp": inp.started_at.isoformat(),
            "tool_version": inp.tool_version,
            "upstream": inp.upstream,
            "data_source": inp.data_source,
            "data_source_sha256": inp.book.sha256,
            "confidence_score": score,
            "confidence_components": {k: round(v, 4) for k, v in components.items()},
            "stage_timings_ms": {},
            "peak_rss_mb": 0.0,
            "stopped_early": inp.stopped_early,
            "timeframe": inp.timeframe,
        },
        **{
            k: sections[k]
            for k in (
                "portfolio_summary",
                "strategy_distribution",
                "ticker_performance",
                "performance_metrics",
                "active_positions",
                "data_quality_assessment",
            )
        },
        "local_data_integration": {**local, "cache_inventory": dict(inp.cache_inventory)},
        "market_context": market,
        "ticker_data": tickers,
        "service_usage": {k: dict(v) for k, v in inp.usage.items()},
        "gaps": [g.to_json() for g in gaps],
        "next_phase_inputs": next_phase_inputs(
            report_path=inp.report_path,
            closed_trades=sections["portfolio_summary"]["closed_trades"],
            active_trades=sections["portfolio_summary"]["active_trades"],
            confidence_score=score,
            fault_gaps=fault_gaps,
            tickers_missing_analysis=local["fundamental_analysis"].get("missing", []) or [],
            stale_analysis=local["fundamental_analysis"].get("stale", []) or [],
        ),
    }
    return report, gaps


def iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
