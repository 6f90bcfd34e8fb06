"""The data root's layout: every path tradescout reads or writes, in one place."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from discovery.errors import InputError, echo
from discovery.tickers import is_valid_ticker
from services.recordclass import record

_PORTFOLIO_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


MAX_PORTFOLIO_NAME = 200
"""Characters in a portfolio name: file names are limited to 255 bytes on common file systems,
and every file named after a portfolio adds a suffix (`_YYYYMMDD.json`, a run id)."""


def check_portfolio_name(name: str) -> str:
    """A portfolio name becomes a file name: refuse separators, `..`, empty and overlong names."""
    if not name or name.startswith(".") or not set(name) <= _PORTFOLIO_CHARS:
        raise InputError(
            f"Portfolio name {echo(name)} is not valid: use letters, digits, '_', '-' or '.' only."
        )
    if len(name) > MAX_PORTFOLIO_NAME:
        raise InputError(
            f"Portfolio name {echo(name)} is too long for the file names made from it: use at "
            f"most {MAX_PORTFOLIO_NAME} characters."
        )
    return name


@record
class DataLayout:
    """Paths under one data root. Pure: building a layout touches no file."""

    root: Path

    @property
    def trade_history_dir(self) -> Path:
        return self.root / "raw" / "trade_history"

    @property
    def fundamental_dir(self) -> Path:
        return self.root / "outputs" / "fundamental_analysis"

    @property
    def sector_dir(self) -> Path:
        return self.root / "outputs" / "sector_analysis"

    @property
    def discovery_dir(self) -> Path:
        return self.root / "outputs" / "trade_history" / "discovery"

    @property
    def cache_reports_dir(self) -> Path:
        return self.root / "outputs" / "cache_reports"

    @property
    def refresh_reports_dir(self) -> Path:
        return self.root / "outputs" / "refresh"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    def report_path(self, portfolio: str, day: date) -> Path:
        check_portfolio_name(portfolio)
        return self.discovery_dir / f"{portfolio}_{day:%Y%m%d}.json"

    @property
    def report_history_dir(self) -> Path:
        """Every discover run's report, kept (the daily file is the latest of its day)."""
        return self.discovery_dir / "history"

    def history_report_path(self, portfolio: str, run_id: str) -> Path:
        check_portfolio_name(portfolio)
        return self.report_history_dir / f"{portfolio}_{run_id}.json"

    def closed_trades_path(self, portfolio: str, run_id: str) -> Path:
        """A run's closed-trade records when too many to inline (JSON lines, beside its history
        report; the daily report refers to it as `history/…`)."""
        check_portfolio_name(portfolio)
        return self.report_history_dir / f"{portfolio}_{run_id}.closed_trades.jsonl"

    @property
    def scratch_dir(self) -> Path:
        """Temporary files of a run (sorted runs of a very large CSV), inside the data root."""
        return self.state_dir / "tmp"

    def cache_report_path(self, day: date) -> Path:
        return self.cache_reports_dir / f"cache_report_{day:%Y%m%d}.json"

    def fundamental_path(self, ticker: str, day: date) -> Path:
        """Only a validated ticker is ever turned into a path."""
        if not is_valid_ticker(ticker):
            raise InputError(
                f"Ticker {ticker!r} is not a plausible symbol; refusing to use it in a path."
            )
        return self.fundamental_dir / f"{ticker}_{day:%Y%m%d}.md"
