"""`closed_trades`: one record per closed trade, with the benchmark's return over the trade's
own window. Pure (the trades come from the per-trade pass the shell runs).

benchmark_return = the benchmark's close-to-close return from the entry date to the exit date,
each day's close being the last close on or before it (a weekend entry takes Friday's);
excess_return = the trade's `Return` − benchmark_return. Both are null where the benchmark's
chart has no close on or before the entry date, or the trade has no exit date or no Return.
One benchmark chart covers every trade (the benchmark need reaches back to the first entry).

At most `INLINE_LIMIT` records are inlined; beyond that the shell writes them as JSON lines
beside the report and the report holds `{path, count}`. Both come from the same columns, a
chunk at a time: one encoder (`discovery.json_lines`), the inline records parsed back from its
lines.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from datetime import date
from typing import Any

import numpy as np

from discovery.ingest.chunk import NO_DAY
from discovery.ingest.closed_trades import ClosedChunk, rounded
from discovery.ingest.figures import RATIO_PLACES
from discovery.json_lines import Column, floats, json_lines, labels, records_of
from discovery.report.facts import Closes

INLINE_LIMIT = 5_000
RECORDS_FORMAT = "closed-trades-jsonl/1"
"""Part of every file's inputs digest: bump it whenever the same inputs could give other bytes
(keys, rounding, encoding), so a file written the old way is never reused."""


def with_benchmark(
    chunk: ClosedChunk, benchmark: Closes | None, currency_of: Mapping[str, str | None]
) -> dict[str, Column]:
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
    currencies = [currency_of.get(t) for t in chunk.tickers]
    return {
        **chunk.columns,
        "currency": labels(chunk.ticker_codes, currencies),
        "benchmark_return": floats(rounded(bench, RATIO_PLACES)),
        "excess_return": floats(rounded(chunk.returns - bench, RATIO_PLACES)),
    }


def closed_trade_lines(
    chunks: Iterable[ClosedChunk],
    benchmark: Closes | None,
    currency_of: Mapping[str, str | None],
) -> Iterator[tuple[bytes, int]]:
    """The records as JSON lines, one block (and its record count) per chunk."""
    for chunk in chunks:
        yield json_lines(with_benchmark(chunk, benchmark, currency_of)), len(chunk)


def closed_trade_records(
    chunks: Iterable[ClosedChunk],
    benchmark: Closes | None,
    currency_of: Mapping[str, str | None],
) -> Iterator[dict[str, Any]]:
    """One record per closed trade, in file order: the lines parsed back, so the inline form
    is what the JSON-lines file holds."""
    for block, _ in closed_trade_lines(chunks, benchmark, currency_of):
        yield from records_of(block)


def records_inputs(
    csv_sha256: str,
    last_exit: date | None,
    benchmark: Closes | None,
    currency_of: Mapping[str, str | None],
    version: str,
) -> str:
    """The sha256 of everything the closed-trade records are made of: the CSV (by its bytes'
    hash), each ticker's currency, the benchmark's closes up to the last exit (a later close
    changes no record), the tool's version and `RECORDS_FORMAT`. Two runs whose digests agree
    write the same bytes, so a nightly rerun can reuse the file instead of writing it again."""
    digest = hashlib.sha256()
    for part in (RECORDS_FORMAT, version, csv_sha256, repr(sorted(currency_of.items()))):
        digest.update(part.encode("utf-8") + b"\0")
    if benchmark is not None and last_exit is not None:
        days = np.asarray(benchmark.days, dtype=np.int64)
        upto = int(np.searchsorted(days, last_exit.toordinal(), side="right"))
        digest.update(days[:upto].tobytes())
        digest.update(np.asarray(benchmark.prices, dtype=np.float64)[:upto].tobytes())
    else:
        digest.update(b"no benchmark" if benchmark is None else b"no exit")
    return digest.hexdigest()
