"""`closed_trades`: one record per closed trade, with the benchmark's return over the trade's
own window. Pure (the trades come from the per-trade pass the shell runs).

benchmark_return = the benchmark's close-to-close return from the entry date to the exit date,
each day's close being the last close on or before it (a weekend entry takes Friday's);
excess_return = the trade's `Return` − benchmark_return. Both are null where the benchmark's
chart has no close on or before the entry date, or the trade has no exit date or no Return.
One benchmark chart covers every trade (the benchmark need reaches back to the first entry).

At most `INLINE_LIMIT` records are inlined; beyond that the shell writes them as JSON lines
beside the report and the report holds `{path, count}`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from discovery.ingest.closed_trades import ClosedTrade
from discovery.ingest.figures import ratio
from discovery.report.facts import Closes

INLINE_LIMIT = 5_000


def closed_trade_record(
    trade: ClosedTrade, benchmark: Closes | None, currency: str | None
) -> dict[str, Any]:
    bench = None
    if benchmark is not None and trade.exit_date is not None:
        bench = benchmark.return_between(trade.entry_date, trade.exit_date)
    excess = None if bench is None or trade.return_ is None else trade.return_ - bench
    return {
        **trade.to_json(),
        "currency": currency,
        "benchmark_return": ratio(bench),
        "excess_return": ratio(excess),
    }


def closed_trade_records(
    trades: Iterable[ClosedTrade], benchmark: Closes | None, currency_of: Mapping[str, str | None]
) -> Iterator[dict[str, Any]]:
    for trade in trades:
        yield closed_trade_record(trade, benchmark, currency_of.get(trade.ticker))
