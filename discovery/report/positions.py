"""Open positions as the report gives them: the CSV's own figures, dated, and a mark to market
from the latest fetched close. Pure.

The CSV's `Current_Unrealized_PnL` is a return as of the export, not of today: it stays as
`csv_unrealized_return`, dated `csv_as_of` (entry date + the CSV's `Days_Since_Entry`) when the
CSV lets that be derived. The mark is computed from the chart's latest close, in the position's
currency, with the sign flipped for a Short; without a fetched close there is no mark (the
ticker's chart gap says why), never an estimate.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from discovery.ingest.figures import finite, money, ratio
from discovery.ingest.models import ActivePosition
from discovery.local.inventory import Inventory
from discovery.report.facts import Close


def mark(position: ActivePosition, close: Close, currency: str | None) -> dict[str, Any]:
    """The position marked at `close`: unrealized return and PnL (None where the CSV lacks the
    entry price, the size or the direction)."""
    sign = {"Long": 1.0, "Short": -1.0}.get(position.direction or "")
    entry, size = position.entry_price, position.position_size
    unrealized_return = unrealized_pnl = None
    if sign is not None and entry is not None and entry > 0:
        unrealized_return = sign * (close.price / entry - 1.0)
        if size is not None:
            unrealized_pnl = sign * (close.price - entry) * size
    return {
        "price": finite(close.price),
        "as_of": close.as_of.isoformat(),
        "source": close.source,
        "synthetic": close.synthetic,
        "currency": currency,
        "unrealized_return": ratio(unrealized_return),
        "unrealized_pnl": None if unrealized_pnl is None else money(unrealized_pnl),
    }


def csv_as_of(position: ActivePosition) -> date | None:
    days = position.csv_days_since_entry
    if days is None or not 0 <= days <= 36_500:
        return None
    return position.entry_date + timedelta(days=days)


def position_json(
    position: ActivePosition,
    *,
    today: date,
    close: Close | None,
    currency: str | None,
    inventory: Inventory,
) -> dict[str, Any]:
    at_entry = inventory.file_current_on(position.ticker, position.entry_date)
    snapshot = csv_as_of(position)
    return {
        **position.stated_json(),
        "currency": currency,
        "days_since_entry": (today - position.entry_date).days,
        "csv_unrealized_return": ratio(position.current_unrealized_pnl),
        "csv_as_of": None if snapshot is None else snapshot.isoformat(),
        "mark": None if close is None else mark(position, close, currency),
        "analysis_at_entry": None if at_entry is None else at_entry.to_dict(),
    }


def active_positions(
    positions: tuple[ActivePosition, ...],
    *,
    today: date,
    closes: Mapping[str, Close],
    currency_of: Mapping[str, str | None],
    inventory: Inventory,
) -> list[dict[str, Any]]:
    return [
        position_json(
            p,
            today=today,
            close=closes.get(p.ticker),
            currency=currency_of.get(p.ticker),
            inventory=inventory,
        )
        for p in positions
    ]
