"""Market context and per-ticker summaries from parsed service records (pure).

Every value carries `as_of` and `source`; a value that is absent stays absent (and is a gap),
never a default. Values from the sandbox are flagged `synthetic`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import numpy as np

from services.records import CloseHistory, CoinQuote, CryptoMarket, Observation, YearValue

VIX_REGIMES: tuple[tuple[float, str], ...] = (
    (15.0, "low"),
    (20.0, "normal"),
    (30.0, "elevated"),
    (math.inf, "high"),
)


def vix_regime(level: float) -> str:
    """Common practitioner VIX bands: <15 low, <20 normal, <30 elevated, else high."""
    for ceiling, name in VIX_REGIMES:
        if level < ceiling:
            return name
    return "high"


def price_summary(
    history: CloseHistory, start: date | None, end: date | None
) -> dict[str, Any] | None:
    """Close-to-close summary over [start, end]; None when no close falls in the window."""
    inside = np.ones(len(history), dtype=bool)
    if start is not None:
        inside &= history.days >= start.toordinal()
    if end is not None:
        inside &= history.days <= end.toordinal()
    days, closes = history.days[inside], history.closes[inside]
    if not len(closes):
        return None
    first, last = float(closes[0]), float(closes[-1])
    return {
        "symbol": history.symbol,
        "currency": history.currency,
        "start_date": date.fromordinal(int(days[0])).isoformat(),
        "end_date": date.fromordinal(int(days[-1])).isoformat(),
        "start_close": round(first, 4),
        "end_close": round(last, 4),
        "period_return": round(last / first - 1.0, 6) if first else None,
        "high_close": round(float(closes.max()), 4),
        "low_close": round(float(closes.min()), 4),
        "bars": len(closes),
    }


def latest_observation(observations: Sequence[Observation]) -> Observation | None:
    """The most recent observation that has a value (FRED marks missing values with ".")."""
    for obs in reversed(observations):
        if obs.value is not None:
            return obs
    return None


def coin_entry(quote: CoinQuote, source: str, synthetic: bool) -> dict[str, Any]:
    return {
        "value": quote.usd,
        "unit": "USD",
        "change_24h_pct": quote.change_24h,
        "market_cap_usd": quote.market_cap,
        "as_of": quote.last_updated.isoformat() if quote.last_updated else None,
        "source": source,
        "synthetic": synthetic,
    }


def crypto_market_entry(market: CryptoMarket, source: str, synthetic: bool) -> dict[str, Any]:
    return {
        "value": market.total_market_cap_usd,
        "unit": "USD total market cap",
        "btc_dominance_pct": market.btc_dominance,
        "market_cap_change_24h_pct": market.market_cap_change_24h_pct,
        "active_cryptocurrencies": market.active_cryptocurrencies,
        "as_of": market.updated_at.isoformat() if market.updated_at else None,
        "source": source,
        "synthetic": synthetic,
    }


def growth_entry(
    series: Mapping[str, Sequence[YearValue]], current_year: int
) -> dict[str, dict[str, Any]]:
    """Per country: the latest actual year and the current/next-year projections, labelled."""
    out: dict[str, dict[str, Any]] = {}
    for country, values in sorted(series.items()):
        actual = [v for v in values if not v.projection and v.value is not None]
        projected = [v for v in values if v.projection and v.value is not None]
        entry: dict[str, Any] = {}
        if actual:
            last = max(actual, key=lambda v: v.year)
            entry["latest_actual"] = {"year": last.year, "value": last.value}
        for v in sorted(projected, key=lambda v: v.year):
            if v.year in (current_year, current_year + 1):
                entry[f"projection_{v.year}"] = {
                    "year": v.year,
                    "value": v.value,
                    "projection": True,
                }
        if entry:
            out[country] = entry
    return out
