"""Money in the report: per currency, never added across currencies, and converted into the
base currency only where every currency involved has an exchange rate. Pure.

The CSV's PnL is authoritative and in the ticker's own currency (the chart's `meta.currency`,
else the profile's). A ticker whose currency could not be learned counts under `unknown`; no
converted total is given then, nor when any currency lacks a rate (a partial total would read
as the whole). A minor unit (GBp) keeps its own bucket and converts through its major
currency's rate ÷ 100.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from discovery.currencies import major
from discovery.ingest.analytics import UNKNOWN_CURRENCY, MoneyFigures
from discovery.ingest.models import TradeBook
from discovery.report.facts import Rate
from services.recordclass import record

MONEY_FIELDS = ("total_pnl", "gross_profit", "gross_loss", "profit_factor", "expectancy_pnl")


@record
class Conversion:
    """Per currency bucket, the factor into the base currency and the rate behind it; or why a
    converted figure cannot be given (`missing`: the buckets without a rate)."""

    base: str
    factors: Mapping[str, float]
    rates: Mapping[str, Rate]
    missing: tuple[str, ...]

    @property
    def possible(self) -> bool:
        return not self.missing

    def rates_json(self) -> dict[str, Any]:
        return {code: rate.to_json() for code, rate in sorted(self.rates.items())}


def conversion(buckets: Sequence[str], rates: Mapping[str, Rate], base: str) -> Conversion:
    """How each bucket converts into `base`: the base itself at 1, a currency (or a minor unit
    of one) with a rate at that rate (× its unit's value), `unknown` and the rest never."""
    factors: dict[str, float] = {}
    used: dict[str, Rate] = {}
    missing: list[str] = []
    for code in sorted(set(buckets)):
        if code == UNKNOWN_CURRENCY:
            missing.append(code)
            continue
        currency, unit = major(code)
        if currency == base:
            factors[code] = unit
            continue
        rate = rates.get(currency)
        if rate is None:
            missing.append(code)
            continue
        factors[code] = unit * rate.rate
        used[currency] = rate
    return Conversion(base, factors, used, tuple(missing))


def convert(figures: Mapping[str, MoneyFigures], conv: Conversion) -> MoneyFigures | None:
    """The buckets' money added in the base currency (None when a bucket has no rate)."""
    if not figures or any(code not in conv.factors for code in figures):
        return None
    total = MoneyFigures(0, 0, 0, 0, 0.0, 0.0, 0.0)
    for code, m in figures.items():
        f = conv.factors[code]
        total = MoneyFigures(
            total.closed_trades + m.closed_trades,
            total.wins + m.wins,
            total.losses + m.losses,
            total.breakevens + m.breakevens,
            total.total_pnl + f * m.total_pnl,
            total.gross_profit + f * m.gross_profit,
            total.gross_loss + f * m.gross_loss,
        )
    return total


def converted_json(figures: MoneyFigures | None, conv: Conversion) -> dict[str, Any] | None:
    if figures is None:
        return None
    out = {k: v for k, v in figures.to_json().items() if k in MONEY_FIELDS}
    return {"currency": conv.base, **out, "rates": conv.rates_json()}


def performance_metrics(
    book: TradeBook, currency_of: Mapping[str, str | None], rates: Mapping[str, Rate], base: str
) -> dict[str, Any]:
    """`performance_metrics`: the currency-free figures of the whole book, its money per
    currency, and the converted total with the rates used.

    The top-level money fields (`total_pnl`, `gross_profit`, `gross_loss`, `profit_factor`)
    hold the one currency's figures when every closed trade is in one known currency, else
    null (`currency` says which): they are never a sum across currencies."""
    figures = book.metrics.to_json()
    by_currency = book.money_by_currency(currency_of)
    conv = conversion(list(by_currency), rates, base)
    only = next(iter(by_currency)) if len(by_currency) == 1 else None
    single = by_currency[only].to_json() if only and only != UNKNOWN_CURRENCY else None
    for name in ("total_pnl", "gross_profit", "gross_loss", "profit_factor"):
        figures[name] = single[name] if single is not None else None
    unknown = sorted(t for t, c in currency_of.items() if c is None)
    metrics = {
        **figures,
        "currency": only if single is not None else None,
        "by_currency": {code: m.to_json() for code, m in by_currency.items()},
        "base_currency": conv.base,
        "converted": converted_json(convert(by_currency, conv), conv),
        "not_converted": list(conv.missing),
        "currency_unknown": unknown,
    }
    return metrics
