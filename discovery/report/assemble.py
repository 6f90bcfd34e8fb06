"""Stage 4: turn the trade book, the inventory and each need's outcome into the report dict.

Pure: everything it needs arrives in `AssembleInputs`. Every need ends in exactly one place —
its slot holds a value (with `as_of`, `source`, provenance), or `gaps` holds its gap — because
both come from one walk over the needs: resolve the outcome (discovery.plan.outcomes), read the
payload back, parse it with the need's own parser, render it. Any step that yields nothing is
that need's gap, with the reason that says which step.

The walk is done in two steps with a fetch between them: `fill_slots` fills every slot and
learns each ticker's currency (discovery.report.facts); the shell then fetches one exchange
rate per foreign currency (`needs.fx_needs`) and `fill_slots(..., into=…)` adds those slots.
`assemble_report` builds the sections that combine them: money per currency and converted,
marks, exposure, analysis overtaken by filings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import field
from datetime import date, datetime
from typing import Any

from discovery.currencies import fx_symbol, major
from discovery.ingest.analytics import UNKNOWN_CURRENCY
from discovery.ingest.drawdown import Drawdown, realized_drawdowns
from discovery.ingest.trades import TradeBook
from discovery.local.inventory import Inventory
from discovery.local.sectors import canonical_sector
from discovery.plan.needs import GROWTH_INDICATOR, TICKER_KINDS, Need
from discovery.plan.outcomes import Answer, Outcome, gap_for, resolve
from discovery.plan.parsed import PARSE_ERRORS, NoPayload, ParsedAnswers
from discovery.report.confidence import confidence, next_phase_inputs
from discovery.report.exposure import (
    outdated_analysis,
    sector_by_ticker,
    sector_exposure,
    sectors_without_analysis,
)
from discovery.report.facts import Learned, Rate, closes_of, latest_close
from discovery.report.gaps import Gap, dedupe_gaps
from discovery.report.market import (
    coin_entry,
    crypto_market_entry,
    growth_entry,
    latest_observation,
    price_summary,
    vix_regime,
)
from discovery.report.money import performance_metrics
from discovery.report.positions import active_positions
from services.errors import ServiceError
from services.recordclass import record
from services.records import CloseHistory, CompanyProfile
from services.sec_edgar import latest_of_each_form
from services.spec import FetchResult

# The market slots whose presence the confidence score measures (crypto prices are extra).
SCORED_MARKET = frozenset({"benchmark", "vix", "indicator", "crypto_market", "growth"})
TICKER_FIELD = {"chart": "price_history", "profile": "profile", "filings": "filings"}


@record
class AssembleInputs:
    portfolio: str
    run_id: str
    started_at: datetime
    tool_version: str
    upstream: str
    data_source: str
    book: TradeBook
    inventory: Inventory
    needs: Sequence[Need]  # deferred needs in their phase-two form where it ran
    outcomes: Mapping[str, Outcome]
    usage: Mapping[str, Mapping[str, Any]]
    cache_inventory: Mapping[str, Any]
    today: date
    timeframe: str
    report_path: str
    stopped_early: str | None = None
    # The fetch stage keeps no payloads (memory stays O(tickers), not O(bytes fetched)): each
    # answer was parsed as it arrived (`parsed`); one that was not is read back from the cache,
    # one at a time, by `load_payload`.
    load_payload: Callable[[FetchResult], Any] | None = None
    parsed: ParsedAnswers = field(default_factory=ParsedAnswers)
    # Faults of the run itself rather than of one slot (the cache refusing writes: disk_full).
    run_gaps: Sequence[Gap] = ()
    base_currency: str = "USD"
    cache_upstream: str = "live"  # whose cache entries were read (sandbox ones are synthetic)
    # The per-trade records (at most closed.INLINE_LIMIT), or where the shell wrote them
    # (`{path, count}`, relative to the report); None: not built (e.g. a unit test).
    closed_trades: list[dict[str, Any]] | dict[str, Any] | None = None
    # `realized_drawdowns(book, currencies)` when the shell has it already (it runs beside the
    # closed-trade records); None: computed here.
    max_drawdown: Mapping[str, Drawdown] | None = None


@record
class Filled:
    need: Need
    value: Any
    provenance: dict[str, Any]


def provenance(result: FetchResult) -> dict[str, Any]:
    return {
        "service": result.request.service,
        "origin": result.origin,
        "fetched_at": result.fetched_at.isoformat(),
        "synthetic": result.synthetic,
    }


def iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# -- rendering: one function per kind, from the parsed record to the slot's JSON (None: empty) ---


def _sourced(result: FetchResult, **value: Any) -> dict[str, Any]:
    return {**value, "source": result.request.service, "synthetic": result.synthetic}


def _render_benchmark(need: Need, parsed: Any, result: FetchResult) -> Any:
    lo, hi = need.window or (None, None)
    summary = price_summary(parsed, lo, hi)
    if summary is None:
        return None
    return _sourced(result, **summary, as_of=summary["end_date"])


def _render_vix(need: Need, parsed: Any, result: FetchResult) -> Any:
    if not len(parsed):
        return None
    last = float(parsed.closes[-1])
    return _sourced(
        result,
        value=round(last, 2),
        regime=vix_regime(last),
        as_of=date.fromordinal(int(parsed.days[-1])).isoformat(),
    )


def _render_indicator(need: Need, parsed: Any, result: FetchResult) -> Any:
    obs = latest_observation(parsed)
    if obs is None:
        return None
    return _sourced(result, value=obs.value, as_of=obs.date.isoformat())


def _render_growth(need: Need, parsed: Any, result: FetchResult) -> Any:
    year = need.window[1].year if need.window else result.fetched_at.year
    countries = growth_entry(parsed, year)
    if not countries:
        return None
    return _sourced(
        result,
        indicator=GROWTH_INDICATOR,
        countries=countries,
        as_of=result.fetched_at.date().isoformat(),
    )


def _render_crypto_market(need: Need, parsed: Any, result: FetchResult) -> Any:
    return crypto_market_entry(parsed, result.request.service, result.synthetic)


def _render_crypto_prices(need: Need, parsed: Any, result: FetchResult) -> Any:
    service = result.request.service
    return {coin: coin_entry(q, service, result.synthetic) for coin, q in sorted(parsed.items())}


def _render_chart(need: Need, parsed: Any, result: FetchResult) -> Any:
    lo, hi = need.window or (None, None)
    return price_summary(parsed, lo, hi)


def _render_profile(need: Need, parsed: Any, result: FetchResult) -> Any:
    if result.request.dataset == "simple_price":  # a crypto pair: CoinGecko's quote
        return {
            "name": parsed.coin_id,
            "asset_class": "crypto",
            "coingecko_id": parsed.coin_id,
            "price_usd": parsed.usd,
            "sector": None,
        }
    return {
        "name": parsed.name,
        "sector": canonical_sector(parsed.sector) if parsed.sector else None,
        "sector_reported": parsed.sector,
        "industry": parsed.industry,
        "market_cap": parsed.market_cap,
        "beta": parsed.beta,
        "currency": parsed.currency,
        "exchange": parsed.exchange,
        "country": parsed.country,
    }


def _render_fx(need: Need, parsed: Any, result: FetchResult) -> Any:
    close = latest_close(parsed, result.request.service, result.synthetic)
    if close is None:
        return None
    return _sourced(result, value=close.price, as_of=close.as_of.isoformat())


def _render_filings(need: Need, parsed: Any, result: FetchResult) -> Any:
    return [
        {
            "form": f.form,
            "filing_date": iso(f.filing_date),
            "report_date": iso(f.report_date),
            "accession_number": f.accession_number,
            "primary_document": f.primary_document,
        }
        for f in latest_of_each_form(parsed)
    ]


Renderer = Callable[[Need, Any, FetchResult], Any]
RENDER: Mapping[str, Renderer] = {
    "benchmark": _render_benchmark,
    "vix": _render_vix,
    "indicator": _render_indicator,
    "growth": _render_growth,
    "crypto_market": _render_crypto_market,
    "crypto_prices": _render_crypto_prices,
    "chart": _render_chart,
    "profile": _render_profile,
    "filings": _render_filings,
    "fx": _render_fx,
}
EMPTY: Mapping[str, str] = {  # the no_data detail when a rendered slot comes out empty
    "benchmark": "no bars in the window",
    "fx": "no close in the answer",
    "chart": "no bars in the window",
    "vix": "no close in the answer",
    "indicator": "no observation with a value",
    "growth": "no values for the countries asked",
}


def _message(payload: Any, depth: int = 0) -> str | None:
    """The upstream's own words in an error body ("The series does not exist.")."""
    if isinstance(payload, dict) and depth < 3:
        for key in ("description", "error_message", "Error Message", "message", "detail"):
            value = payload.get(key)
            if isinstance(value, str) and value.strip():
                return " ".join(value.split())[:200]
        for value in payload.values():
            found = _message(value, depth + 1)
            if found:
                return found
    return None


class _Filler:
    """Walks the needs once; every need becomes a `Filled` or a `Gap`, and what the combined
    sections need from each value is learned as it is rendered (each payload parsed once)."""

    def __init__(self, inp: AssembleInputs, learned: Learned) -> None:
        self.inp = inp
        self.learned = learned
        self.by_id = {n.id: n for n in inp.needs}
        self.local = inp.inventory.entries()
        self.filings_known: set[str] = set()

    def payload(self, result: FetchResult) -> Any:
        if result.payload is not None or self.inp.load_payload is None:
            return result.payload
        return self.inp.load_payload(result)

    def explain(self, result: FetchResult) -> str | None:
        """Why the service said "nothing": its own message, or what it answered."""
        payload = self.payload(result)
        message = _message(payload)
        if message:
            return message
        if payload in ([], {}):
            return f"{result.request.service} answered {payload!r} for {result.request.path}"
        if isinstance(payload, dict) and set(payload) == {"api"}:
            return "the answer holds no values, only its `api` block"
        return f"{result.request.service} does not know it"

    def fill(self, need: Need) -> Filled | Gap | None:
        """A value, a gap, or None for an internal need that answered (the CIK map)."""
        found = self._fill(need)
        if need.kind == "fx" and isinstance(found, Gap):
            return fx_gap(need, found)
        return found

    def _fill(self, need: Need) -> Filled | Gap | None:
        if need.settled is not None:
            return gap_for(need, *need.settled)
        if need.local is not None:
            return self._local(need)
        if need.deferred is not None:
            return self._unresolved(need)
        found = resolve(need, self.inp.outcomes, self.explain)
        if isinstance(found, Gap):
            return found
        if need.internal:
            return None
        return self._value(found)

    def _value(self, answer: Answer) -> Filled | Gap:
        need, result = answer.need, answer.result
        service = answer.source.service
        try:
            parsed = self.inp.parsed.parsed(answer, self.payload)
            value = None if parsed in (None, [], {}) else RENDER[need.kind](need, parsed, result)
        except NoPayload:
            why = "fetched this run but no longer in the cache when the report was built"
            return gap_for(need, "cache_evicted", why, service)
        except PARSE_ERRORS as exc:
            detail = exc.detail if isinstance(exc, ServiceError) else str(exc)
            return gap_for(need, "bad_response", detail[:200], service)
        if value is None or value == {}:
            detail = EMPTY.get(need.kind, f"the answer holds nothing for {need.label}")
            return gap_for(need, "no_data", detail, service)
        self.learn(need, parsed, result)
        return Filled(need, value, provenance(result))

    def learn(self, need: Need, parsed: Any, result: FetchResult) -> None:
        """Keep what the combined sections need from a value just rendered."""
        service, synthetic = result.request.service, result.synthetic
        if need.kind == "chart" and isinstance(parsed, CloseHistory):
            self.learned.chart(need.label, parsed, service, synthetic)
        elif need.kind == "profile" and isinstance(parsed, CompanyProfile):
            self.learned.profile(need.label, parsed)
        elif need.kind == "filings":
            entry = self.local.get(need.label)
            self.learned.filings(need.label, parsed, entry.date if entry else None)
            self.filings_known.add(need.label)
        elif need.kind == "benchmark" and isinstance(parsed, CloseHistory):
            self.learned.benchmark = closes_of(parsed, service, synthetic)
        elif need.kind == "fx" and isinstance(parsed, CloseHistory):
            close = latest_close(parsed, service, synthetic)
            base = self.inp.base_currency
            currency = need.subject.removesuffix(f"{base}=X")
            if close is not None and currency != need.subject:
                self.learned.rates[currency] = Rate(
                    currency, base, need.subject, close.price, close.as_of, service, synthetic
                )

    def _local(self, need: Need) -> Filled | Gap:
        entry = self.local.get(need.label)
        if entry is None:
            return gap_for(need, "no_data", f"{need.local} could not be read")
        value = {
            "sector": entry.sector,
            "recommendation": entry.recommendation,
            "from_local_analysis": entry.file,
        }
        origin = {
            "service": "local",
            "origin": "local",
            "fetched_at": entry.date.isoformat(),
            "synthetic": False,
        }
        return Filled(need, value, origin)

    def _unresolved(self, need: Need) -> Gap:
        """A deferred need that never became concrete: why its dependency did not help."""
        assert need.deferred is not None
        dependency = self.by_id.get(need.deferred.on)
        missing = "the SEC CIK map is not available"
        if dependency is None:
            return gap_for(need, "cik_map_unavailable", missing)
        found = resolve(dependency, self.inp.outcomes, self.explain)
        if isinstance(found, Gap):
            reason = found.reason if found.is_fault else "cik_map_unavailable"
            return gap_for(need, reason, f"{missing}: {found.detail or found.reason}")
        if self.inp.stopped_early:
            return gap_for(need, self.inp.stopped_early, "stopped before the filings were asked")
        return gap_for(need, "cik_map_unavailable", "the SEC CIK map could not be read")


def fx_gap(need: Need, gap: Gap) -> Gap:
    """An exchange rate that could not be had is `fx_unavailable` (the totals in that currency
    stay unconverted), with what happened to its chart in the detail."""
    detail = f"{gap.reason}: {gap.detail}" if gap.detail else gap.reason
    return gap_for(need, "fx_unavailable", f"{need.subject} {detail}", gap.service)


@record(frozen=False)
class Sections:
    market: dict[str, Any]
    tickers: dict[str, Any]
    gaps: list[Gap]
    scored: dict[str, list[int]]  # side → [present, expected]
    learned: Learned
    filings_known: set[str]
    fx_asked: set[str]  # the FX symbols whose slot was walked

    def share(self, side: str) -> float:
        present, expected = self.scored[side]
        return present / expected if expected else 1.0

    @property
    def market_share(self) -> float:
        return self.share("market")

    @property
    def ticker_share(self) -> float:
        return self.share("ticker")


def empty_sections(tickers: Sequence[str]) -> Sections:
    market: dict[str, Any] = {
        "benchmarks": {},
        "volatility": {},
        "economic_indicators": {},
        "crypto": {},
        "global_growth": {},
        "fx_rates": {},
    }
    slots: dict[str, dict[str, Any]] = {
        t: {"profile": None, "price_history": None, "filings": None, "provenance": {}}
        for t in tickers
    }
    scored = {"market": [0, 0], "ticker": [0, 0]}
    return Sections(market, slots, [], scored, Learned(), set(), set())


def fill_slots(
    inp: AssembleInputs, needs: Sequence[Need] | None = None, into: Sections | None = None
) -> Sections:
    """Every need (default: `inp.needs`) into its slot or into the gaps (the heart of stage 4);
    `into` adds to sections already filled (the FX slots, after their fetch)."""
    sections = into if into is not None else empty_sections(inp.book.ticker_symbols)
    filler = _Filler(inp, sections.learned)
    market, tickers, gaps, scored = (
        sections.market,
        sections.tickers,
        sections.gaps,
        sections.scored,
    )
    for need in inp.needs if needs is None else needs:
        if need.kind == "fx":
            sections.fx_asked.add(need.subject)
        outcome = filler.fill(need)
        if outcome is None:
            continue
        side = "ticker" if need.kind in TICKER_KINDS else "market"
        counted = (
            need.kind in SCORED_MARKET
            if side == "market"
            else not (isinstance(outcome, Gap) and not outcome.is_fault and need.settled)
        )
        if counted:
            scored[side][1] += 1
        if isinstance(outcome, Gap):
            gaps.append(outcome)
            continue
        if counted:
            scored[side][0] += 1
        if side == "ticker":
            entry = tickers.setdefault(
                need.label,
                {"profile": None, "price_history": None, "filings": None, "provenance": {}},
            )
            entry[TICKER_FIELD[need.kind]] = outcome.value
            entry["provenance"][TICKER_FIELD[need.kind]] = outcome.provenance
        else:
            _place(market, need, outcome.value)
    sections.filings_known |= filler.filings_known
    return sections


def _place(market: dict[str, Any], need: Need, value: Any) -> None:
    if need.kind == "benchmark":
        market["benchmarks"][need.subject] = value
    elif need.kind == "vix":
        market["volatility"]["vix"] = value
    elif need.kind == "indicator":
        market["economic_indicators"][need.subject] = value
    elif need.kind == "growth":
        market["global_growth"] = value
    elif need.kind == "crypto_market":
        market["crypto"]["market"] = value
    elif need.kind == "crypto_prices":
        market["crypto"]["prices"] = value
    elif need.kind == "fx":
        market["fx_rates"][need.subject] = value
    else:
        raise ValueError(f"no market slot for need kind {need.kind!r}")


def foreign_currencies(sections: Sections, tickers: Sequence[str], base: str) -> list[str]:
    """The major currencies (other than `base`) the tickers' money is in: one rate each."""
    found = sections.learned.currencies(tickers)
    return sorted({major(c)[0] for c in found.values() if c is not None} - {base})


def missing_rate_gaps(sections: Sections, buckets: Sequence[str], base: str) -> list[Gap]:
    """`fx_unavailable` for a currency whose rate was never asked for (its slot was not walked:
    the run stopped first); a rate that was asked for and not had is that slot's own gap."""
    gaps = []
    for code in buckets:
        currency = major(code)[0]
        symbol = fx_symbol(currency, base)
        if code == UNKNOWN_CURRENCY or currency == base or symbol in sections.fx_asked:
            continue
        gaps.append(
            Gap(None, "yahoo_finance", "chart", "fx_unavailable",
                f"{symbol}: no exchange rate was asked for this run", symbol, "fx")
        )  # fmt: skip
    return gaps


def _ticker_performance(book: TradeBook, currency_of: Mapping[str, str | None]) -> Any:
    return {
        t: {**stats.to_json(), "currency": currency_of.get(t)} for t, stats in book.tickers.items()
    }


def assemble_report(
    inp: AssembleInputs, filled: Sections | None = None
) -> tuple[dict[str, Any], list[Gap]]:
    """The whole report (without stage timings and RSS, which the shell adds) and its gaps.
    `filled`: the slots as `fill_slots` left them (FX included); filled here when None."""
    book = inp.book
    summary = book.summary.to_json()  # the stage-1 sections the report keeps as they are
    local = inp.inventory.to_report_section()
    filled = filled if filled is not None else fill_slots(inp)
    learned = filled.learned
    tickers = book.ticker_symbols
    currency_of = learned.currencies(tickers)
    metrics = performance_metrics(book, currency_of, learned.rates, inp.base_currency)
    drawdowns = (
        inp.max_drawdown if inp.max_drawdown is not None else realized_drawdowns(book, currency_of)
    )
    gaps = dedupe_gaps(
        [
            *filled.gaps,
            *missing_rate_gaps(filled, list(metrics["by_currency"]), inp.base_currency),
            *inp.run_gaps,
        ]
    )
    positions = active_positions(
        book.active_positions,
        today=inp.today,
        closes=learned.last_close,
        currency_of=currency_of,
        inventory=inp.inventory,
    )
    by_ticker = sector_by_ticker(tickers, inp.inventory, learned)
    outdated = outdated_analysis(inp.inventory, learned, filled.filings_known)
    for ticker, entry in local["fundamental_analysis"]["tickers"].items():
        if entry is not None and ticker in outdated:
            entry["outdated_by"] = outdated[ticker]["outdated_by"]
            entry["checked_against_filings"] = outdated[ticker]["checked"]

    cov = local["fundamental_analysis"].get("coverage", {})
    with_analysis = cov.get("with_analysis", 0)
    stale_count = len(local["fundamental_analysis"].get("stale", []) or [])
    total = max(1, cov.get("total", 0))
    components = {
        "trade_quality": book.overall_confidence,
        "local_coverage": max(0.0, (with_analysis - 0.5 * stale_count) / total),
        "ticker_data": filled.ticker_share,
        "market_context": filled.market_share,
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
            "cache_upstream": inp.cache_upstream,
            "data_source": inp.data_source,
            "data_source_sha256": book.sha256,
            "confidence_score": score,
            "confidence_components": {k: round(v, 4) for k, v in components.items()},
            "stage_timings_ms": {},
            "peak_rss_mb": 0.0,
            "stopped_early": inp.stopped_early,
            "timeframe": inp.timeframe,
            "base_currency": inp.base_currency,
        },
        "portfolio_summary": summary,
        "strategy_distribution": dict(book.strategy_distribution),
        "ticker_performance": _ticker_performance(book, currency_of),
        "performance_metrics": metrics,
        "strategy_performance": {
            name: perf.to_json() for name, perf in book.strategy_performance(currency_of).items()
        },
        "period_performance": {
            "monthly": {m: f.to_json() for m, f in book.monthly(currency_of).items()},
            "max_drawdown": {c: d.to_json() for c, d in drawdowns.items()},
        },
        "active_positions": positions,
        "closed_trades": inp.closed_trades if inp.closed_trades is not None else [],
        "exposure": {
            "by_ticker": by_ticker,
            "by_sector": sector_exposure(positions, by_ticker),
        },
        "data_quality_assessment": book.quality.to_json(),
        "local_data_integration": {**local, "cache_inventory": dict(inp.cache_inventory)},
        "market_context": filled.market,
        "ticker_data": filled.tickers,
        "service_usage": {k: dict(v) for k, v in inp.usage.items()},
        "gaps": [g.to_json() for g in gaps],
        "next_phase_inputs": {
            **next_phase_inputs(
                report_path=inp.report_path,
                closed_trades=summary["closed_trades"],
                active_trades=summary["active_trades"],
                confidence_score=score,
                fault_gaps=fault_gaps,
                tickers_missing_analysis=local["fundamental_analysis"].get("missing", []) or [],
                stale_analysis=local["fundamental_analysis"].get("stale", []) or [],
            ),
            "analysis_predates_filing": sorted(
                t for t, o in outdated.items() if o["outdated_by"] is not None
            ),
            "sectors_without_analysis": sectors_without_analysis(by_ticker, inp.inventory),
            "currencies": sorted(metrics["by_currency"]),
            "converted_totals": metrics["converted"] is not None,
        },
    }
    return report, gaps
