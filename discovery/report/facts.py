"""What assembly learns from the values it fills, for the sections that combine them.

Each payload is decoded and parsed once, when its slot is filled; what the other sections need
from it — a ticker's currency and latest close, its sector, its filings after a date, the
benchmark's closes, an exchange rate — is kept here, a few numbers per ticker (the benchmark's
closes are one array), so nothing is read back twice. Pure.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import field
from datetime import date
from typing import Any

import numpy as np

from discovery.currencies import currency_code
from discovery.local.sectors import canonical_sector
from services.recordclass import record
from services.records import CloseHistory, CompanyProfile, Filing


@record
class Close:
    """The latest close of a chart: the price a position is marked at."""

    price: float
    as_of: date
    source: str
    synthetic: bool


@record
class Sourced:
    """A value and the service it came from (a currency, a sector)."""

    value: str
    source: str
    reported: str | None = None  # as the service wrote it, when normalized


@record(frozen=False)
class Closes:
    """One chart's closes, oldest first, as day ordinals and prices (compact arrays)."""

    symbol: str
    source: str
    synthetic: bool
    days: array[int] = field(default_factory=lambda: array("l"))
    prices: array[float] = field(default_factory=lambda: array("d"))

    def on_or_before(self, day: date) -> float | None:
        """The last close on or before `day` (None before the first bar)."""
        at = bisect_right(self.days, day.toordinal())
        return self.prices[at - 1] if at else None

    def return_between(self, first: date, last: date) -> float | None:
        """Close-to-close return from `first` to `last` (last close on or before each day)."""
        start, end = self.on_or_before(first), self.on_or_before(last)
        if start is None or end is None or start <= 0:
            return None
        return end / start - 1.0


@record
class Rate:
    """The value of one unit of `currency` in `base`, from the latest close of an FX chart."""

    currency: str
    base: str
    symbol: str
    rate: float
    as_of: date
    source: str
    synthetic: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "rate": self.rate,
            "as_of": self.as_of.isoformat(),
            "source": self.source,
            "synthetic": self.synthetic,
        }


def latest_close(history: CloseHistory, source: str, synthetic: bool) -> Close | None:
    positive = np.flatnonzero(history.closes > 0)
    if not len(positive):
        return None
    at = int(positive[-1])
    day = date.fromordinal(int(history.days[at]))
    return Close(float(history.closes[at]), day, source, synthetic)


def closes_of(history: CloseHistory, source: str, synthetic: bool) -> Closes:
    """The positive closes, each day once (its first close: bars are oldest first)."""
    positive = history.closes > 0
    days, prices = history.days[positive], history.closes[positive]
    if len(days):  # a day not after every day before it (a repeat) is dropped
        before = np.maximum.accumulate(np.concatenate(([np.iinfo(np.int64).min], days[:-1])))
        later = days > before
        days, prices = days[later], prices[later]
    out = Closes(history.symbol, source, synthetic)
    out.days.extend(days.tolist())
    out.prices.extend(prices.tolist())
    return out


@record(frozen=False)
class Learned:
    """Everything assembly keeps from the filled slots (see the module docstring)."""

    chart_currency: dict[str, Sourced] = field(default_factory=dict)
    profile_currency: dict[str, Sourced] = field(default_factory=dict)
    profile_sector: dict[str, Sourced] = field(default_factory=dict)
    last_close: dict[str, Close] = field(default_factory=dict)
    filed_after: dict[str, Filing | None] = field(default_factory=dict)
    benchmark: Closes | None = None
    rates: dict[str, Rate] = field(default_factory=dict)

    def chart(self, ticker: str, history: CloseHistory, source: str, synthetic: bool) -> None:
        code = currency_code(history.currency)
        if code is not None:
            self.chart_currency[ticker] = Sourced(code, source)
        close = latest_close(history, source, synthetic)
        if close is not None:
            self.last_close[ticker] = close

    def profile(self, ticker: str, profile: CompanyProfile) -> None:
        code = currency_code(profile.currency)
        if code is not None:
            self.profile_currency[ticker] = Sourced(code, profile.source)
        sector = canonical_sector(profile.sector)
        if sector is not None:
            self.profile_sector[ticker] = Sourced(sector, profile.source, profile.sector)

    def filings(self, ticker: str, filings: Sequence[Filing], since: date | None) -> None:
        """The first filing after `since` (the local analysis file's date), when there is one."""
        if since is None:
            return
        after = [f for f in filings if f.filing_date > since]
        self.filed_after[ticker] = min(after, key=lambda f: (f.filing_date, f.form), default=None)

    def currency_of(self, ticker: str) -> Sourced | None:
        """The chart's currency (prices and the CSV's PnL are in it), else the profile's."""
        return self.chart_currency.get(ticker) or self.profile_currency.get(ticker)

    def currencies(self, tickers: Sequence[str]) -> dict[str, str | None]:
        return {
            t: (found.value if (found := self.currency_of(t)) is not None else None)
            for t in tickers
        }


def sources_of(currencies: Mapping[str, Sourced | None]) -> dict[str, str | None]:
    return {t: (s.source if s is not None else None) for t, s in currencies.items()}
