"""Figures drawn on the page, computed from the report's own records (pure).

Cumulative realized PnL in exit order, per currency (never added across currencies), its
drawdown from the running peak, and PnL by exit month. Ties on a day keep the file's order.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from discovery.reading.closed_trades import TradeColumns
from discovery.view.svg import Point

MAX_POINTS = 1000


def _label(currency: str | None) -> str:
    return currency or "PnL"


def equity_curves(trades: TradeColumns) -> dict[str, list[Point]]:
    """Per currency: (exit date, cumulative PnL) after each trade, thinned to MAX_POINTS (the
    last point of each stretch is kept, so the end value is exact)."""
    out: dict[str, list[Point]] = {}
    for cur, days in trades.days.items():
        pnl = trades.pnl[cur]
        order = sorted(range(len(days)), key=days.__getitem__)
        stride = max(1, len(order) // MAX_POINTS)
        total = 0.0
        points: list[Point] = []
        for k, i in enumerate(order):
            total += pnl[i]
            if (k + 1) % stride == 0 or k == len(order) - 1:
                points.append((date.fromordinal(days[i]).isoformat(), round(total, 6)))
        out[_label(cur)] = points
    return out


def drawdown(points: list[Point]) -> list[Point]:
    """Distance below the running peak of the curve (0 at a new high), per point."""
    peak = 0.0
    out: list[Point] = []
    for day, value in points:
        peak = max(peak, value)
        out.append((day, round(value - peak, 6)))
    return out


def max_drawdown(points: list[Point]) -> dict[str, Any] | None:
    """The deepest fall from a peak (the curve starts at 0 before the first trade)."""
    if not points:
        return None
    peak, peak_day = 0.0, None
    worst: dict[str, Any] = {"value": 0.0, "peak_date": None, "trough_date": None}
    for day, value in points:
        if value > peak:
            peak, peak_day = value, day
        if value - peak < worst["value"]:
            worst = {"value": round(value - peak, 6), "peak_date": peak_day, "trough_date": day}
    return worst


def monthly_from_trades(trades: TradeColumns) -> dict[str, list[Point]]:
    """Per currency: realized PnL by exit month (YYYY-MM), oldest first."""
    out: dict[str, list[Point]] = {}
    for cur, days in trades.days.items():
        sums: dict[str, float] = {}
        for day, value in zip(days, trades.pnl[cur], strict=True):
            month = date.fromordinal(day).isoformat()[:7]
            sums[month] = sums.get(month, 0.0) + value
        out[_label(cur)] = [(m, round(v, 6)) for m, v in sorted(sums.items())]
    return out


def monthly_from_report(monthly: Any) -> dict[str, list[Point]]:
    """`period_performance.monthly` as bars per currency: `realized_pnl` is a number, or a
    mapping currency → number when the portfolio trades in several."""
    if not isinstance(monthly, dict):
        return {}
    out: dict[str, list[Point]] = {}
    for month in sorted(monthly):
        entry = monthly[month]
        value = entry.get("realized_pnl") if isinstance(entry, dict) else entry
        per = value if isinstance(value, dict) else {None: value}
        for cur, v in per.items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                out.setdefault(_label(cur), []).append((str(month), float(v)))
    return out
