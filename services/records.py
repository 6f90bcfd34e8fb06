"""Typed records the service parsers produce: what the pipeline reads, whatever service answered.

Plain frozen dataclasses (no behaviour): a parser maps one real payload shape onto them and a
value the payload lacks stays None — never a made-up default.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from services.recordclass import record


class PriceBar(NamedTuple):
    """One daily (or intraday) bar; any field the upstream left null stays None.

    A NamedTuple, not a frozen dataclass: a 500-ticker report builds about a million of them,
    and a tuple is built three times faster (equally immutable)."""

    date: date
    open: float | None
    high: float | None
    low: float | None
    close: float | None
    adjclose: float | None
    volume: int | None


@record
class PriceHistory:
    symbol: str
    currency: str | None
    exchange: str | None
    instrument_type: str | None
    regular_market_price: float | None
    bars: tuple[PriceBar, ...]
    source: str = "yahoo_finance"


@record(eq=False)
class CloseHistory:
    """A chart's daily closes as two aligned arrays, oldest first, with the instrument's meta:
    all the report reads of a chart (window summaries, the latest close, the benchmark's
    closes). Arrays, not bars: a 500-ticker report reads about two million closes, and a bar
    object per close cost more than the rest of a warm run. Only bars with a finite close are
    kept; `days` are `date.toordinal()` of each bar's exchange-local day."""

    symbol: str
    currency: str | None
    exchange: str | None
    instrument_type: str | None
    regular_market_price: float | None
    days: npt.NDArray[np.int64]
    closes: npt.NDArray[np.float64]
    source: str = "yahoo_finance"

    def __len__(self) -> int:
        return len(self.days)


@record
class CompanyProfile:
    symbol: str
    name: str | None
    sector: str | None
    industry: str | None
    market_cap: float | None
    beta: float | None
    currency: str | None
    exchange: str | None
    country: str | None
    source: str  # the service that answered: "fmp" or "alpha_vantage"


@record
class Filing:
    form: str  # "10-K", "10-Q" or "8-K"
    filing_date: date
    report_date: date | None
    accession_number: str
    primary_document: str | None


@record
class Observation:
    date: date
    value: float | None  # FRED's "." (no value that day) is None


@record
class CoinQuote:
    coin_id: str
    usd: float | None
    market_cap: float | None
    vol_24h: float | None
    change_24h: float | None  # percent
    last_updated: datetime | None


@record
class CryptoMarket:
    active_cryptocurrencies: int | None
    total_market_cap_usd: float | None
    total_volume_usd: float | None
    btc_dominance: float | None  # percent of total market cap
    eth_dominance: float | None
    market_cap_change_24h_pct: float | None
    updated_at: datetime | None


@record
class YearValue:
    year: int
    value: float | None
    projection: bool  # IMF WEO values for the current year and later are projections
