"""What stage 1 (ingest) hands on: a bounded, typed summary of a trade-history CSV.

Everything here is O(tickers + open positions + kept issues), never O(rows): the rows themselves
are gone once their chunk has been aggregated. `TradeBook.to_report_sections()` is the only place
that decides how these records look in the report (plain JSON types, ISO dates, no NaN/inf).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Any

# Report rounding: money to the cent, returns and ratios to 6 places. Sums are accumulated in
# float64 per chunk, so rounding also makes the report independent of the chunk size.
_MONEY_PLACES = 2
_RATIO_PLACES = 6

MAX_KEPT_ISSUES = 500
"""Issues beyond this many are counted per kind but not listed (the report stays small)."""


def _money(value: float) -> float:
    return _finite(round(value, _MONEY_PLACES))


def _ratio(value: float | None) -> float | None:
    return None if value is None else _finite(round(value, _RATIO_PLACES))


def _finite(value: float) -> float:
    """The report never carries NaN/inf; callers guarantee finiteness, this asserts it loudly."""
    if not math.isfinite(value):
        raise ValueError(f"non-finite value {value!r} reached the report")
    return value + 0.0  # turns -0.0 into 0.0


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


@dataclass(frozen=True)
class Issue:
    """One data-quality finding about one row.

    `row` is the spreadsheet row number: the header is row 1, the first trade row is row 2 (equal to
    the file's line number as long as no quoted field spans lines).
    """

    row: int
    position_uuid: str | None
    field: str
    kind: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "position_uuid": self.position_uuid,
            "field": self.field,
            "kind": self.kind,
            "message": self.message,
        }


@dataclass(frozen=True)
class ActivePosition:
    """An open trade as the CSV states it; `current_unrealized_pnl` is a fraction (0.05 = +5 %)."""

    row: int
    ticker: str
    position_uuid: str | None
    strategy: str | None
    entry_date: date
    entry_price: float | None
    position_size: float | None
    direction: str | None
    days_since_entry: int | None
    current_unrealized_pnl: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "ticker": self.ticker,
            "position_uuid": self.position_uuid,
            "strategy": self.strategy,
            "entry_date": self.entry_date.isoformat(),
            "entry_price": None if self.entry_price is None else _finite(self.entry_price),
            "position_size": None if self.position_size is None else _finite(self.position_size),
            "direction": self.direction,
            "days_since_entry": self.days_since_entry,
            "current_unrealized_pnl": _ratio(self.current_unrealized_pnl),
        }


@dataclass(frozen=True)
class TickerStats:
    """Per-ticker aggregates. PnL and Return sums cover closed trades only (realized)."""

    ticker: str
    total_trades: int
    closed_trades: int
    active_trades: int
    total_pnl: float
    total_return: float
    wins: int
    losses: int
    breakevens: int
    first_entry: date | None
    last_exit: date | None
    open_positions: tuple[str, ...]

    @property
    def win_rate(self) -> float | None:
        """wins / (wins + losses); None when no closed trade was decisive (not 0, not made up)."""
        decided = self.wins + self.losses
        return None if decided == 0 else self.wins / decided

    def to_json(self) -> dict[str, Any]:
        return {
            "total_trades": self.total_trades,
            "closed_trades": self.closed_trades,
            "active_trades": self.active_trades,
            "total_pnl": _money(self.total_pnl),
            "total_return": _ratio(self.total_return),
            "wins": self.wins,
            "losses": self.losses,
            "breakevens": self.breakevens,
            "win_rate": _ratio(self.win_rate),
            "first_entry_date": _iso(self.first_entry),
            "last_exit_date": _iso(self.last_exit),
            "open_positions": list(self.open_positions),
        }


@dataclass(frozen=True)
class PortfolioSummary:
    total_trades: int
    closed_trades: int
    active_trades: int
    unique_tickers: int
    first_entry_date: date | None
    last_exit_date: date | None

    def to_json(self) -> dict[str, Any]:
        return {
            "total_trades": self.total_trades,
            "closed_trades": self.closed_trades,
            "active_trades": self.active_trades,
            "unique_tickers": self.unique_tickers,
            "first_entry_date": _iso(self.first_entry_date),
            "last_exit_date": _iso(self.last_exit_date),
        }


@dataclass(frozen=True)
class PerformanceMetrics:
    """Closed-trade metrics.

    - win: PnL > 0.01; loss: PnL < -0.01; breakeven: |PnL| <= 0.01 (breakevens are in neither the
      win rate nor the gross sums).
    - profit_factor = gross profit / gross loss (sum of winning PnL / |sum of losing PnL|); None
      when there is no loss, so the report never carries inf.
    - average_win_return / average_loss_return: mean `Return` of winning / losing trades (the
      loss average is negative); None when there is no such trade with a Return.
    - expectancy = win_rate × average_win_return + (1 − win_rate) × average_loss_return: the
      expected Return of a decisive closed trade; None when there is none.
    """

    total_wins: int
    total_losses: int
    total_breakevens: int
    total_pnl: float
    gross_profit: float
    gross_loss: float
    average_win_return: float | None
    average_loss_return: float | None

    @property
    def win_rate(self) -> float | None:
        decided = self.total_wins + self.total_losses
        return None if decided == 0 else self.total_wins / decided

    @property
    def profit_factor(self) -> float | None:
        return None if self.gross_loss <= 0 else self.gross_profit / self.gross_loss

    @property
    def expectancy(self) -> float | None:
        rate = self.win_rate
        if rate is None:
            return None
        value = 0.0
        if self.total_wins and self.average_win_return is not None:
            value += rate * self.average_win_return
        if self.total_losses and self.average_loss_return is not None:
            value += (1 - rate) * self.average_loss_return
        return value

    def to_json(self) -> dict[str, Any]:
        return {
            "win_rate": _ratio(self.win_rate),
            "total_wins": self.total_wins,
            "total_losses": self.total_losses,
            "total_breakevens": self.total_breakevens,
            "profit_factor": _ratio(self.profit_factor),
            "total_pnl": _money(self.total_pnl),
            "gross_profit": _money(self.gross_profit),
            "gross_loss": _money(self.gross_loss),
            "average_win_return": _ratio(self.average_win_return),
            "average_loss_return": _ratio(self.average_loss_return),
            "expectancy": _ratio(self.expectancy),
        }


@dataclass(frozen=True)
class DataQuality:
    """Issues found while ingesting, bounded: the first `MAX_KEPT_ISSUES` plus counts per kind."""

    rows_read: int
    rows_with_issues: int
    skipped_rows: int
    issue_counts: MappingProxyType[str, int]
    issues: tuple[Issue, ...]

    @property
    def total_issues(self) -> int:
        return sum(self.issue_counts.values())

    @property
    def overall_confidence(self) -> float:
        """Fraction of trade rows without any issue (1.0 for a clean file)."""
        if self.rows_read == 0:
            return 0.0
        return (self.rows_read - self.rows_with_issues) / self.rows_read

    def to_json(self) -> dict[str, Any]:
        return {
            "overall_confidence": round(self.overall_confidence, 4),
            "rows_read": self.rows_read,
            "rows_with_issues": self.rows_with_issues,
            "skipped_rows": self.skipped_rows,
            "issue_counts": dict(sorted(self.issue_counts.items())),
            "total_issues": self.total_issues,
            "issues_truncated": self.total_issues > len(self.issues),
            "issues": [issue.to_json() for issue in self.issues],
        }


@dataclass(frozen=True)
class TradeBook:
    """Stage 1's result: everything the report needs from the CSV, nothing per row."""

    source_path: Path
    sha256: str
    delimiter: str
    rows_read: int
    summary: PortfolioSummary
    strategy_distribution: MappingProxyType[str, int]
    tickers: MappingProxyType[str, TickerStats]
    metrics: PerformanceMetrics
    active_positions: tuple[ActivePosition, ...]
    quality: DataQuality

    @property
    def ticker_symbols(self) -> tuple[str, ...]:
        """Tickers as written in the CSV, upper-cased, sorted."""
        return tuple(self.tickers)

    @property
    def overall_confidence(self) -> float:
        return self.quality.overall_confidence

    def to_report_sections(self) -> dict[str, Any]:
        """The report keys stage 1 fills, as plain JSON types (ISO dates, no NaN/inf)."""
        return {
            "portfolio_summary": self.summary.to_json(),
            "strategy_distribution": dict(self.strategy_distribution),
            "ticker_performance": {t: s.to_json() for t, s in self.tickers.items()},
            "performance_metrics": self.metrics.to_json(),
            "active_positions": [p.to_json() for p in self.active_positions],
            "data_quality_assessment": self.quality.to_json(),
        }
