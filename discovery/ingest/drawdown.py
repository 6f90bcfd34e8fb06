"""The realized equity curve's maximum drawdown, per currency, exact and in bounded memory.

The curve is cumulative PnL over closed trades in exit order (exit timestamp as written, then
row), starting at 0 before the first exit; one curve per currency, because money is never added
across currencies and a ticker's currency is only known after fetching. The drawdown is the
largest fall from a running peak to a later trough; `peak_date` is None when that peak is the
start (a curve that opens with losses).

Ordering every closed trade needs all of them at once, which a 5M-row file must not hold in
memory. So while the first pass streams the file, each closed trade's (exit timestamp, row,
ticker id, PnL) — 32 bytes — goes into sorted runs of fixed size, spilled to a private temporary
directory once full (`ExitOrder`); the report side later folds them with its ticker → currency
map by a blocked k-way merge. Why this and not a second read, SQLite or `heapq.merge`: reading the
CSV again costs as much as the first pass (pandas tokenizes every column of every line), and
inserting a million rows into a temporary table and reading them back ordered, or a Python-level
heap merge, costs seconds per million, where numpy sorts a run and merges blocks at memory speed
(a round emits everything up to the smallest last key among the runs' current blocks, then
reloads). A file whose closed trades fit in one run never touches the disk.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import numpy.typing as npt
import pandas as pd

from discovery.ingest.analytics import UNKNOWN_CURRENCY
from discovery.ingest.columns import FloatArray, IntArray
from discovery.ingest.figures import money
from services.recordclass import record

if TYPE_CHECKING:
    from discovery.ingest.models import TradeBook

RUN_TRADES = 1 << 18
"""Trades per sorted run (8 MB): the memory the sort needs, whatever the file's size."""
_BLOCK = 1 << 15
_RECORD = np.dtype([("stamp", "<i8"), ("row", "<i8"), ("gid", "<i8"), ("pnl", "<f8")])
Records = npt.NDArray[Any]


@record
class Drawdown:
    """The largest peak-to-trough fall of one currency's realized equity curve (value ≥ 0)."""

    currency: str
    value: float
    peak_date: date | None
    trough_date: date | None
    trades: int  # closed trades with a PnL and an exit on the curve

    def to_json(self) -> dict[str, Any]:
        return {
            "value": money(self.value),
            "peak_date": None if self.peak_date is None else self.peak_date.isoformat(),
            "trough_date": None if self.trough_date is None else self.trough_date.isoformat(),
            "trades": self.trades,
        }


class _Curve:
    """One currency's curve, fed in exit order a sorted block at a time (vectorized)."""

    def __init__(self) -> None:
        self.equity = 0.0
        self.peak = 0.0
        self.peak_stamp: int | None = None
        self.best = 0.0
        self.best_peak: int | None = None
        self.best_trough: int | None = None
        self.trades = 0

    def feed(self, block: Records) -> None:
        if not len(block):
            return
        stamps = block["stamp"]
        cum = self.equity + np.cumsum(block["pnl"])
        running = np.maximum(np.maximum.accumulate(cum), self.peak)
        at_peak = np.where(cum >= running, np.arange(len(cum)), -1)
        peak_at = np.maximum.accumulate(at_peak)
        fall = running - cum
        j = int(np.argmax(fall))
        if fall[j] > self.best:
            self.best = float(fall[j])
            self.best_trough = int(stamps[j])
            self.best_peak = int(stamps[peak_at[j]]) if peak_at[j] >= 0 else self.peak_stamp
        self.equity, self.peak = float(cum[-1]), float(running[-1])
        if peak_at[-1] >= 0:
            self.peak_stamp = int(stamps[peak_at[-1]])
        self.trades += len(block)

    def result(self, currency: str) -> Drawdown:
        return Drawdown(
            currency=currency,
            value=self.best,
            peak_date=_day(self.best_peak),
            trough_date=_day(self.best_trough),
            trades=self.trades,
        )


def _day(stamp: int | None) -> date | None:
    if stamp is None:
        return None
    day: date = np.datetime64(stamp, "ns").astype("datetime64[D]").astype(date)
    return day


class ExitOrder:
    """Closed trades in sorted runs: in memory until a run is full, then in a temporary file.

    Filled by the first pass (`add`), then read any number of times in (exit timestamp, row)
    order (`blocks`). The temporary directory is removed by `close()`, or when the object is
    garbage-collected (tempfile's finalizer), whichever comes first.
    """

    def __init__(self, scratch: Path | None = None) -> None:
        self.scratch = scratch
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._pending: list[tuple[IntArray, IntArray, IntArray, FloatArray]] = []
        self._pending_size = 0
        self._tail: Records | None = None
        self._files: list[Path] = []
        self.trades = 0

    def add(self, stamps: IntArray, rows: IntArray, gids: IntArray, pnls: FloatArray) -> None:
        if not len(rows):
            return
        self._pending.append((stamps, rows, gids, pnls))
        self._pending_size += len(rows)
        self.trades += len(rows)
        self._tail = None
        if self._pending_size >= RUN_TRADES:
            self._spill()

    def _take(self) -> Records:
        """The pending trades as one sorted run (columns gathered apiece: a structured gather
        is ~20x slower than four plain ones)."""
        pending, self._pending, self._pending_size = self._pending, [], 0
        if not pending:
            return np.zeros(0, _RECORD)
        stamps, rows, gids, pnls = (np.concatenate(column) for column in zip(*pending, strict=True))
        order = _exit_order(stamps)
        run = np.empty(len(order), dtype=_RECORD)
        run["stamp"], run["row"], run["gid"], run["pnl"] = (
            stamps[order],
            rows[order],
            gids[order],
            pnls[order],
        )
        return run

    def _spill(self) -> None:
        run = self._take()
        if self._tmp is None:
            if self.scratch is not None:  # made only when needed: a small file leaves no trace
                self.scratch.mkdir(parents=True, exist_ok=True)
            self._tmp = tempfile.TemporaryDirectory(prefix="tradescout-exits-", dir=self.scratch)
        path = Path(self._tmp.name) / f"run-{len(self._files)}.bin"
        run.tofile(path)
        self._files.append(path)

    def blocks(self) -> Iterator[Records]:
        """Every trade added, in (exit timestamp, row) order, a block at a time."""
        if self._tail is None:
            self._tail = self._take()
        if not self._files:
            yield self._tail
            return
        handles = [path.open("rb") for path in self._files]
        try:
            yield from _merge([_Reader(h) for h in handles] + [_Reader(None, self._tail)])
        finally:
            for handle in handles:
                handle.close()

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp, self._files = None, []


def _exit_order(stamps: IntArray) -> IntArray:
    """The stable order of `stamps`: rows arrive in file order, so it is the (timestamp, row)
    order. Exits fall on few distinct moments (days, mostly), so the stamps are ranked first and
    the ranks sorted as 16-bit keys, which numpy radix-sorts (~3x faster than a merge sort)."""
    codes, uniques = pd.factorize(stamps)
    if len(uniques) > np.iinfo(np.int16).max:
        return np.asarray(np.argsort(stamps, kind="stable"), dtype=np.int64)
    rank = np.empty(len(uniques), dtype=np.int16)
    rank[np.argsort(uniques)] = np.arange(len(uniques), dtype=np.int16)
    return np.asarray(np.argsort(rank[codes], kind="stable"), dtype=np.int64)


class _Reader:
    """One sorted run read a block at a time (from a file, or an array already in memory)."""

    def __init__(self, handle: BinaryIO | None, data: Records | None = None) -> None:
        self.handle = handle
        self.data = data
        self.block: Records = np.zeros(0, _RECORD)
        self.done = False
        self.refill()

    def refill(self) -> None:
        if len(self.block) or self.done:
            return
        if self.handle is None:
            assert self.data is not None
            self.block, self.data, self.done = self.data, None, True
            return
        self.block = np.fromfile(self.handle, dtype=_RECORD, count=_BLOCK)
        if len(self.block) < _BLOCK:
            self.done = True

    @property
    def last(self) -> tuple[int, int]:
        return int(self.block["stamp"][-1]), int(self.block["row"][-1])


def _merge(readers: list[_Reader]) -> Iterator[Records]:
    """Blocked k-way merge: emit everything up to the smallest last key of the runs that still
    have more to read (their next block can only hold larger keys), then reload."""
    while True:
        live = [r for r in readers if len(r.block)]
        if not live:
            return
        bounded = [r.last for r in live if not r.done]
        parts: list[Records] = []
        for reader in live:
            block = reader.block
            if bounded:
                stamp, row = min(bounded)
                lo = int(np.searchsorted(block["stamp"], stamp, side="left"))
                hi = int(np.searchsorted(block["stamp"], stamp, side="right"))
                cut = lo + int(np.searchsorted(block["row"][lo:hi], row, side="right"))
            else:
                cut = len(block)
            parts.append(block[:cut])
            reader.block = block[cut:]
        merged = np.concatenate(parts)
        yield merged[np.lexsort((merged["row"], merged["stamp"]))]
        for reader in live:
            reader.refill()


def realized_drawdowns(
    book: TradeBook, currency_of: Mapping[str, str | None] | None = None
) -> dict[str, Drawdown]:
    """`period_performance.max_drawdown` per currency, from the book's exit order.

    Tickers missing from `currency_of` count under "unknown". Pure apart from reading the
    book's runs back (no CSV is read again).
    """
    tickers = book.analytics.tickers
    names: dict[str, int] = {}
    lut = np.array(
        [names.setdefault((currency_of or {}).get(t) or UNKNOWN_CURRENCY, len(names))
         for t in tickers] or [0],
        dtype=np.int64,
    )  # fmt: skip
    curves: dict[int, _Curve] = {}
    for block in book.exits.blocks():
        codes = lut[block["gid"]]
        for code in np.unique(codes):
            curves.setdefault(int(code), _Curve()).feed(block[codes == code])
    by_code = {code: name for name, code in names.items()}
    return {by_code[c]: curve.result(by_code[c]) for c, curve in sorted(curves.items(),
            key=lambda kv: by_code[kv[0]])}  # fmt: skip
