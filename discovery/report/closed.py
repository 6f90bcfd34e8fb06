"""`closed_trades`: one record per closed trade, with the benchmark's return over the trade's
own window. Pure (the trades come from the per-trade pass the shell runs).

benchmark_return = the benchmark's close-to-close return from the entry date to the exit date,
each day's close being the last close on or before it (a weekend entry takes Friday's);
excess_return = the trade's `Return` − benchmark_return. Both are null where the benchmark's
chart has no close on or before the entry date, or the trade has no exit date or no Return.
One benchmark chart covers every trade (the benchmark need reaches back to the first entry).

At most `INLINE_LIMIT` records are inlined; beyond that the shell writes them as JSON lines
beside the report and the report holds `{path, count}`. Both come from the same columns, a
chunk at a time, computed with array operations (a million trades in seconds).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import orjson

from discovery.ingest.chunk import NO_DAY
from discovery.ingest.closed_trades import ClosedChunk, records_of, rounded
from discovery.ingest.figures import RATIO_PLACES
from discovery.report.facts import Closes

INLINE_LIMIT = 5_000
RECORD_CHUNK_ROWS = 5_000
"""The per-trade pass holds a chunk's records as Python values: a smaller chunk than the first
pass keeps that small."""


def with_benchmark(
    chunk: ClosedChunk, benchmark: Closes | None, currency_of: Mapping[str, str | None]
) -> dict[str, list[Any]]:
    """The chunk's record columns plus currency, benchmark_return and excess_return."""
    size = len(chunk)
    bench = np.full(size, np.nan)
    if benchmark is not None and len(benchmark.days):
        days = np.asarray(benchmark.days, dtype=np.int64)
        prices = np.asarray(benchmark.prices, dtype=np.float64)
        first = np.searchsorted(days, chunk.entry_ordinal, side="right")
        last = np.searchsorted(days, chunk.exit_ordinal, side="right")
        ok = (first > 0) & (last > 0) & (chunk.exit_ordinal != NO_DAY)
        start = np.where(ok, prices[np.maximum(first - 1, 0)], np.nan)
        end = np.where(ok, prices[np.maximum(last - 1, 0)], np.nan)
        ok &= start > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            bench = np.where(ok, end / start - 1.0, np.nan)
    currencies = {t: currency_of.get(t) for t in set(chunk.tickers)}
    return {
        **chunk.columns,
        "currency": [currencies[t] for t in chunk.tickers],
        "benchmark_return": rounded(bench, RATIO_PLACES),
        "excess_return": rounded(chunk.returns - bench, RATIO_PLACES),
    }


def closed_trade_records(
    chunks: Iterable[ClosedChunk],
    benchmark: Closes | None,
    currency_of: Mapping[str, str | None],
) -> Iterator[dict[str, Any]]:
    """One record per closed trade, in file order."""
    for chunk in chunks:
        yield from records_of(with_benchmark(chunk, benchmark, currency_of))


def closed_trade_lines(
    chunks: Iterable[ClosedChunk],
    benchmark: Closes | None,
    currency_of: Mapping[str, str | None],
) -> Iterator[tuple[bytearray, int]]:
    """The records as JSON lines, one block (and its record count) per chunk. Each line is
    appended to the block as soon as it is encoded: holding a chunk's encoded lines as separate
    objects would cost far more memory than their size (orjson's output buffers)."""
    dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    for chunk in chunks:
        block = bytearray()
        for record in records_of(with_benchmark(chunk, benchmark, currency_of)):
            block += dumps(record, option=newline)
        yield block, len(chunk)
