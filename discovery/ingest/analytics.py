"""Trade analytics kept foldable: money per (strategy, ticker) and per (exit month, ticker).

A ticker's currency is only known once its chart or profile has been fetched, and money is never
added across currencies, so ingest cannot total PnL yet. It keeps the sums per ticker within
each strategy and each exit month instead (memory: strategies × tickers and months × tickers,
never rows), and the pure `fold_*` functions total them per currency once the report side has a
ticker → currency map. Counts and returns need no currency and are totalled directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from discovery.ingest.columns import BoolArray, FloatArray, IntArray
from discovery.ingest.figures import expectancy_of, mean_of, money, ratio, win_rate_of
from services.recordclass import record

UNKNOWN_CURRENCY = "unknown"
"""Where the money of a ticker whose currency could not be learned is counted."""

STRATEGY_MEASURES: tuple[str, ...] = (
    "total",
    "closed",
    "wins",
    "losses",
    "breakevens",
    "pnl",
    "ret",
    "gross_profit",
    "gross_loss",
    "win_return",
    "win_return_n",
    "loss_return",
    "loss_return_n",
    "holding_days",
    "holding_n",
    "open",
)
MONTH_MEASURES: tuple[str, ...] = ("closed", "wins", "losses", "pnl")
_LOW = np.int64(0xFFFFFFFF)


def whole(value: float) -> int:
    """A count summed as float64 weights, back to an int (exact below 2**53)."""
    return int(np.rint(value))


def pack(high: IntArray, low: IntArray) -> IntArray:
    """Two int32-range arrays as one int64 key (`high` may be negative)."""
    return np.asarray((high.astype(np.int64) << 32) | low.astype(np.int64), dtype=np.int64)


def unpack(keys: IntArray) -> tuple[IntArray, IntArray]:
    return np.asarray(keys >> 32, dtype=np.int64), np.asarray(keys & _LOW, dtype=np.int64)


class KeyedSums:
    """Running sums of named measures per int64 key; grows as new keys appear.

    Keys are kept sorted (a binary search maps a chunk's distinct keys to their columns), so a
    chunk costs one factorize, one search and one bincount per measure, never a Python loop.
    """

    def __init__(self, measures: tuple[str, ...]) -> None:
        self.measures = measures
        self._keys = np.zeros(0, dtype=np.int64)  # sorted
        self._values = np.zeros((len(measures), 0), dtype=np.float64)  # columns follow _keys

    def add(self, keys: IntArray, weights: Mapping[str, FloatArray | BoolArray | None]) -> None:
        """Add one chunk: per measure, float weights (summed), a mask (rows counted) or None
        (every row counted)."""
        if not len(keys):
            return
        codes, found = pd.factorize(keys)
        uniques = np.asarray(found, dtype=np.int64)
        at = np.searchsorted(self._keys, uniques)
        known = at < len(self._keys)
        known[known] = self._keys[at[known]] == uniques[known]
        if not known.all():
            self._insert(np.sort(uniques[~known]))
            at = np.searchsorted(self._keys, uniques)
        count = len(uniques)
        for j, name in enumerate(self.measures):
            if name not in weights:
                continue
            weight = weights[name]
            if weight is None:
                found = np.bincount(codes, minlength=count)
            elif weight.dtype == np.bool_:
                found = np.bincount(codes[weight], minlength=count)
            else:
                found = np.bincount(codes, weights=weight, minlength=count)
            self._values[j, at] += found

    def _insert(self, new: IntArray) -> None:
        keys = np.concatenate([self._keys, new])
        order = np.argsort(keys, kind="stable")
        values = np.zeros((len(self.measures), len(keys)), dtype=np.float64)
        values[:, : self._values.shape[1]] = self._values
        self._keys, self._values = keys[order], values[:, order]

    def frozen(self) -> Sums:
        return Sums(self.measures, self._keys.copy(), self._values.copy())


@record
class Sums:
    """Frozen `KeyedSums`: sorted keys and one row of values per measure."""

    measures: tuple[str, ...]
    keys: IntArray
    values: FloatArray

    def column(self, name: str) -> FloatArray:
        return np.asarray(self.values[self.measures.index(name)], dtype=np.float64)


@record
class TradeAnalytics:
    """What stage 1 keeps for the per-strategy and per-month sections (see the fold functions)."""

    tickers: tuple[str, ...]  # by ticker id
    strategies: tuple[str, ...]  # by strategy id
    by_strategy: Sums  # key: pack(strategy id + 1, ticker id); strategy id -1 = missing
    by_month: Sums  # key: pack(months since 1970-01, ticker id)


# --------------------------------------------------------------------------------------------
# Folded results.


@record
class MoneyFigures:
    """Closed-trade money of one currency. gross_loss is a positive amount.

    profit_factor = gross_profit / gross_loss (None without a loss, never inf);
    expectancy_pnl = (gross_profit − gross_loss) / (wins + losses): the expected PnL of a
    decisive trade, i.e. win_rate × average win + (1 − win_rate) × average loss, in money.
    """

    closed_trades: int
    wins: int
    losses: int
    breakevens: int
    total_pnl: float
    gross_profit: float
    gross_loss: float

    @property
    def profit_factor(self) -> float | None:
        return None if self.gross_loss <= 0 else self.gross_profit / self.gross_loss

    @property
    def expectancy_pnl(self) -> float | None:
        decided = self.wins + self.losses
        return None if decided == 0 else (self.gross_profit - self.gross_loss) / decided

    def to_json(self) -> dict[str, Any]:
        return {
            "closed_trades": self.closed_trades,
            "wins": self.wins,
            "losses": self.losses,
            "breakevens": self.breakevens,
            "total_pnl": money(self.total_pnl),
            "gross_profit": money(self.gross_profit),
            "gross_loss": money(self.gross_loss),
            "profit_factor": ratio(self.profit_factor),
            "expectancy_pnl": None if self.expectancy_pnl is None else money(self.expectancy_pnl),
        }


@record
class StrategyPerformance:
    """One strategy's closed trades (counts, returns, holding time) and its open positions.

    average_holding_days: mean of exit date − entry date over closed trades with both dates.
    expectancy: the expected Return of a decisive trade (as in performance_metrics).
    Money is per currency in `by_currency`.
    """

    strategy: str
    closed_trades: int
    wins: int
    losses: int
    breakevens: int
    open_positions: int
    average_win_return: float | None
    average_loss_return: float | None
    average_holding_days: float | None
    by_currency: MappingProxyType[str, MoneyFigures]

    @property
    def win_rate(self) -> float | None:
        return win_rate_of(self.wins, self.losses)

    @property
    def expectancy(self) -> float | None:
        return expectancy_of(
            self.wins, self.losses, self.average_win_return, self.average_loss_return
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "closed_trades": self.closed_trades,
            "wins": self.wins,
            "losses": self.losses,
            "breakevens": self.breakevens,
            "win_rate": ratio(self.win_rate),
            "average_win_return": ratio(self.average_win_return),
            "average_loss_return": ratio(self.average_loss_return),
            "expectancy": ratio(self.expectancy),
            "average_holding_days": ratio(self.average_holding_days),
            "open_positions": self.open_positions,
            "by_currency": {c: m.to_json() for c, m in sorted(self.by_currency.items())},
        }


@record
class MonthFigures:
    """Closed trades by exit month (`YYYY-MM`); realized PnL per currency."""

    month: str
    closed_trades: int
    wins: int
    losses: int
    realized_pnl: MappingProxyType[str, float]

    def to_json(self) -> dict[str, Any]:
        return {
            "closed_trades": self.closed_trades,
            "wins": self.wins,
            "losses": self.losses,
            "realized_pnl": {c: money(v) for c, v in sorted(self.realized_pnl.items())},
        }


Currencies = Mapping[str, str | None]


def _currency_codes(
    tickers: tuple[str, ...], ticker_ids: IntArray, currency_of: Currencies | None
) -> tuple[IntArray, list[str]]:
    """Per entry, the index of its ticker's currency; and the currency names."""
    names: dict[str, int] = {}
    lut = np.zeros(len(tickers), dtype=np.int64)
    for i, ticker in enumerate(tickers):
        code = (currency_of or {}).get(ticker) or UNKNOWN_CURRENCY
        lut[i] = names.setdefault(code, len(names))
    return lut[ticker_ids] if len(tickers) else np.zeros(0, np.int64), list(names)


def _money_by_currency(sums: Sums, select: IntArray, currency: IntArray, names: list[str]) -> dict[
    str, MoneyFigures
]:  # fmt: skip
    out: dict[str, MoneyFigures] = {}
    col = {m: sums.column(m)[select] for m in ("closed", "wins", "losses", "breakevens", "pnl",
                                                "gross_profit", "gross_loss")}  # fmt: skip
    cur = currency[select]
    for code in np.unique(cur):
        at = cur == code
        out[names[int(code)]] = MoneyFigures(
            closed_trades=whole(col["closed"][at].sum()),
            wins=whole(col["wins"][at].sum()),
            losses=whole(col["losses"][at].sum()),
            breakevens=whole(col["breakevens"][at].sum()),
            total_pnl=float(col["pnl"][at].sum()),
            gross_profit=float(col["gross_profit"][at].sum()),
            gross_loss=float(col["gross_loss"][at].sum()),
        )
    return out


def fold_strategies(
    analytics: TradeAnalytics, currency_of: Currencies | None = None
) -> dict[str, StrategyPerformance]:
    """Per strategy (sorted): counts, returns, holding time, open positions, money per currency.

    Rows without a Strategy_Type are in no strategy (they are in the portfolio totals).
    """
    sums = analytics.by_strategy
    sid, gid = unpack(sums.keys)
    sid = sid - 1
    currency, names = _currency_codes(analytics.tickers, gid, currency_of)
    out: dict[str, StrategyPerformance] = {}
    for s in sorted(set(sid.tolist()) - {-1}, key=lambda k: analytics.strategies[k]):
        select = np.flatnonzero(sid == s)

        def total(name: str, select: IntArray = select) -> float:
            return float(sums.column(name)[select].sum())

        by_currency = {
            c: m for c, m in _money_by_currency(sums, select, currency, names).items()
            if m.closed_trades
        }  # fmt: skip
        out[analytics.strategies[s]] = StrategyPerformance(
            strategy=analytics.strategies[s],
            closed_trades=whole(total("closed")),
            wins=whole(total("wins")),
            losses=whole(total("losses")),
            breakevens=whole(total("breakevens")),
            open_positions=whole(total("open")),
            average_win_return=mean_of(total("win_return"), total("win_return_n")),
            average_loss_return=mean_of(total("loss_return"), total("loss_return_n")),
            average_holding_days=mean_of(total("holding_days"), total("holding_n")),
            by_currency=MappingProxyType(by_currency),
        )
    return out


def fold_portfolio(
    analytics: TradeAnalytics, currency_of: Currencies | None = None
) -> dict[str, MoneyFigures]:
    """The portfolio's closed-trade money per currency (`performance_metrics.by_currency`)."""
    sums = analytics.by_strategy
    _, gid = unpack(sums.keys)
    currency, names = _currency_codes(analytics.tickers, gid, currency_of)
    everything = np.arange(len(sums.keys))
    found = _money_by_currency(sums, everything, currency, names)
    return {c: m for c, m in sorted(found.items()) if m.closed_trades}


def fold_tickers(analytics: TradeAnalytics) -> dict[str, MoneyFigures]:
    """Each ticker's closed-trade money (one ticker has one currency: no map needed)."""
    sums = analytics.by_strategy
    _, gid = unpack(sums.keys)
    out: dict[str, MoneyFigures] = {}
    found = _money_by_currency(sums, np.arange(len(gid)), gid, list(analytics.tickers))
    for ticker in sorted(found):
        out[ticker] = found[ticker]
    return out


def fold_months(
    analytics: TradeAnalytics, currency_of: Currencies | None = None
) -> dict[str, MonthFigures]:
    """Closed trades by exit month, oldest first, with realized PnL per currency."""
    sums = analytics.by_month
    month, gid = unpack(sums.keys)
    currency, names = _currency_codes(analytics.tickers, gid, currency_of)
    pnl = sums.column("pnl")
    out: dict[str, MonthFigures] = {}
    for m in np.unique(month):
        at = month == m
        per_currency: dict[str, float] = {}
        for code in np.unique(currency[at]):
            per_currency[names[int(code)]] = float(pnl[at & (currency == code)].sum())
        label = str(np.datetime64(int(m), "M"))
        out[label] = MonthFigures(
            month=label,
            closed_trades=whole(sums.column("closed")[at].sum()),
            wins=whole(sums.column("wins")[at].sum()),
            losses=whole(sums.column("losses")[at].sum()),
            realized_pnl=MappingProxyType(per_currency),
        )
    return out
