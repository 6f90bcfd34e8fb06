"""What stage 1 (ingest) hands on: a bounded, typed summary of a trade-history CSV.

Everything here is O(tickers + open positions + kept issues), never O(rows): the rows themselves
are gone once their chunk has been aggregated (the per-trade records come from a second pass,
`discovery.ingest.closed_trades`). `TradeBook.to_report_sections()` decides how the
currency-free sections look in the report (plain JSON types, ISO dates, no NaN/inf); the money
sections are folded per currency by the methods the report side calls with its currency map.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from discovery.errors import clip
from discovery.ingest.analytics import (
    MoneyFigures,
    MonthFigures,
    StrategyPerformance,
    TradeAnalytics,
    fold_months,
    fold_portfolio,
    fold_strategies,
    fold_tickers,
)
from discovery.ingest.drawdown import ExitOrder
from discovery.ingest.figures import expectancy_of, finite, money, ratio, win_rate_of
from services.recordclass import record

if TYPE_CHECKING:
    from discovery.ingest.closed_spill import ClosedSpill

MAX_KEPT_ISSUES = 500
"""Issues beyond this many are counted per kind but not listed (the report stays small)."""


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


@record
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
            "position_uuid": None if self.position_uuid is None else clip(self.position_uuid),
            "field": self.field,
            "kind": self.kind,
            "message": self.message,
        }


@record
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
    csv_days_since_entry: int | None = None
    """The CSV's own `Days_Since_Entry`: with the entry date it dates the export's snapshot."""

    def stated_json(self) -> dict[str, Any]:
        """What the CSV states of the trade itself (the report adds marks and context)."""
        return {
            "ticker": self.ticker,
            "position_uuid": None if self.position_uuid is None else clip(self.position_uuid),
            "strategy": self.strategy,
            "entry_date": self.entry_date.isoformat(),
            "entry_price": None if self.entry_price is None else finite(self.entry_price),
            "position_size": None if self.position_size is None else finite(self.position_size),
            "direction": self.direction,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            **self.stated_json(),
            "days_since_entry": self.days_since_entry,
            "current_unrealized_pnl": ratio(self.current_unrealized_pnl),
        }


@record
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
        return win_rate_of(self.wins, self.losses)

    def to_json(self) -> dict[str, Any]:
        return {
            "total_trades": self.total_trades,
            "closed_trades": self.closed_trades,
            "active_trades": self.active_trades,
            "total_pnl": money(self.total_pnl),
            "total_return": ratio(self.total_return),
            "wins": self.wins,
            "losses": self.losses,
            "breakevens": self.breakevens,
            "win_rate": ratio(self.win_rate),
            "first_entry_date": _iso(self.first_entry),
            "last_exit_date": _iso(self.last_exit),
            "open_positions": list(self.open_positions),
        }


@record
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


@record
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
        return win_rate_of(self.total_wins, self.total_losses)

    @property
    def profit_factor(self) -> float | None:
        return None if self.gross_loss <= 0 else self.gross_profit / self.gross_loss

    @property
    def expectancy(self) -> float | None:
        return expectancy_of(
            self.total_wins, self.total_losses, self.average_win_return, self.average_loss_return
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "win_rate": ratio(self.win_rate),
            "total_wins": self.total_wins,
            "total_losses": self.total_losses,
            "total_breakevens": self.total_breakevens,
            "profit_factor": ratio(self.profit_factor),
            "total_pnl": money(self.total_pnl),
            "gross_profit": money(self.gross_profit),
            "gross_loss": money(self.gross_loss),
            "average_win_return": ratio(self.average_win_return),
            "average_loss_return": ratio(self.average_loss_return),
            "expectancy": ratio(self.expectancy),
        }


@record
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


@record
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
    analytics: TradeAnalytics
    exits: ExitOrder
    """Closed trades in exit order (sorted runs, possibly on disk): `realized_drawdowns`."""
    source_bytes: int = 0
    """The snapshot length read: the per-trade pass reads exactly these bytes again."""
    numbers_as_text: bool = False
    """Whether the file needed the text-typed read (a repeated header line): the per-trade pass
    reads it the same way."""
    ids_as_text: bool = False
    """Whether a Position_UUID was too long for the fixed-width bytes form (`uuids`): the
    per-trade pass reads the ids as text too."""
    closed: ClosedSpill | None = None
    """The closed trades' record columns, kept by the first pass when asked
    (`ingest(keep_records=True)`): the records are read from them instead of the CSV."""

    def close(self) -> None:
        """Drop what the book keeps on disk (the exit runs, the kept closed trades)."""
        self.exits.close()
        if self.closed is not None:
            self.closed.close()

    @property
    def ticker_symbols(self) -> tuple[str, ...]:
        """Tickers as written in the CSV, upper-cased, sorted."""
        return tuple(self.tickers)

    @property
    def overall_confidence(self) -> float:
        return self.quality.overall_confidence

    # -- money per currency: the report side passes what it learned of each ticker's currency --

    def strategy_performance(
        self, currency_of: Mapping[str, str | None] | None = None
    ) -> dict[str, StrategyPerformance]:
        """Per strategy over closed trades (`strategy_performance`), money per currency."""
        return fold_strategies(self.analytics, currency_of)

    def money_by_currency(
        self, currency_of: Mapping[str, str | None] | None = None
    ) -> dict[str, MoneyFigures]:
        """`performance_metrics.by_currency`: total_pnl, gross profit/loss, expectancy_pnl."""
        return fold_portfolio(self.analytics, currency_of)

    def ticker_money(self) -> dict[str, MoneyFigures]:
        """Per ticker: its closed-trade money (in the ticker's own currency)."""
        return fold_tickers(self.analytics)

    def monthly(
        self, currency_of: Mapping[str, str | None] | None = None
    ) -> dict[str, MonthFigures]:
        """`period_performance.monthly`: closed trades by exit month, PnL per currency."""
        return fold_months(self.analytics, currency_of)

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
