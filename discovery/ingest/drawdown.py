"""The realized equity curve's maximum drawdown, per currency, exact and in bounded memory.

The curve is cumulative PnL over closed trades in exit order (exit timestamp as written, then
row), starting at 0 before the first exit; one curve per currency, because money is never added
across currencies and a ticker's currency is only known after fetching. The drawdown is the
largest fall from a running peak to a later trough; `peak_date` is None when that peak is the
start (a curve that opens with losses).

Ordering every closed trade needs all of them at once, which a 5M-row file must not hold in
memory. So the second pass writes sorted runs of fixed size (24 bytes a trade) to a private
temporary directory and merges them block by block. Why this and not SQLite or `heapq.merge`:
numpy sorts a run and merges blocks at memory speed (a blocked k-way merge emits everything up
to the smallest last key among the runs' current blocks, then reloads), where inserting a
million rows into a temporary table and reading them back ordered, or a Python-level heap merge,
costs seconds per million. A file whose closed trades fit in one run never touches the disk.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from discovery.ingest.analytics import UNKNOWN_CURRENCY
from discovery.ingest.checks import Outcome
from discovery.ingest.chunk import NO_DAY, Rows
from discovery.ingest.closed_trades import second_pass
from discovery.ingest.columns import REQUIRED_COLUMNS
from discovery.ingest.figures import money
from discovery.ingest.models import TradeBook

RUN_TRADES = 1 << 18
"""Trades per sorted run (6 MB): the memory the sort needs, whatever the file's size."""
_BLOCK = 1 << 15
_RECORD = np.dtype([("stamp", "<i8"), ("row", "<i8"), ("pnl", "<f8")])
_COLUMNS = (*REQUIRED_COLUMNS, "Exit_Timestamp", "PnL")
Records = npt.NDArray[Any]


@dataclass(frozen=True)
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


class _Runs:
    """Trades per currency in sorted runs: in memory until a run is full, then on disk."""

    def __init__(self, scratch: Path | None) -> None:
        self.scratch = scratch
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.pending: dict[int, list[Records]] = {}
        self.pending_size: dict[int, int] = {}
        self.files: dict[int, list[Path]] = {}

    def add(self, currency: int, records: Records) -> None:
        self.pending.setdefault(currency, []).append(records)
        size = self.pending_size.get(currency, 0) + len(records)
        self.pending_size[currency] = size
        if size >= RUN_TRADES:
            self._spill(currency)

    def _spill(self, currency: int) -> None:
        run = _sorted(np.concatenate(self.pending.pop(currency)))
        self.pending_size[currency] = 0
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="tradescout-curve-", dir=self.scratch)
        files = self.files.setdefault(currency, [])
        path = Path(self._tmp.name) / f"{currency}-{len(files)}.bin"
        run.tofile(path)
        files.append(path)

    def ordered(self, currency: int) -> Iterator[Records]:
        """The currency's trades in (exit timestamp, row) order, a block at a time."""
        tail = self.pending.pop(currency, [])
        memory = _sorted(np.concatenate(tail)) if tail else np.zeros(0, _RECORD)
        files = self.files.get(currency, [])
        if not files:
            yield memory
            return
        handles = [path.open("rb") for path in files]
        try:
            yield from _merge([_Reader(h) for h in handles] + [_Reader(None, memory)])
        finally:
            for handle in handles:
                handle.close()

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


def _sorted(records: Records) -> Records:
    """Rows arrive in file order, so a stable sort by timestamp is the (timestamp, row) order."""
    return records[np.argsort(records["stamp"], kind="stable")]


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
    book: TradeBook,
    currency_of: Mapping[str, str | None] | None = None,
    *,
    chunk_rows: int = 50_000,
    scratch_dir: Path | None = None,
) -> dict[str, Drawdown]:
    """`period_performance.max_drawdown` per currency: a second streaming pass over the file.

    Tickers missing from `currency_of` count under "unknown". Sorted runs go to a temporary
    directory under `scratch_dir` (default: the system's) and are removed before returning.
    """
    names: dict[str, int] = {}
    runs = _Runs(scratch_dir)
    try:
        for rows, out in second_pass(book, _COLUMNS, chunk_rows=chunk_rows):
            _collect(rows, out, currency_of or {}, names, runs)
        result: dict[str, Drawdown] = {}
        for name, code in sorted(names.items()):
            curve = _Curve()
            for block in runs.ordered(code):
                curve.feed(block)
            result[name] = curve.result(name)
        return result
    finally:
        runs.close()


def _collect(
    rows: Rows,
    out: Outcome,
    currency_of: Mapping[str, str | None],
    names: dict[str, int],
    runs: _Runs,
) -> None:
    on_curve = np.flatnonzero(out.has_pnl & (rows.exit_day != NO_DAY))
    if not len(on_curve):
        return
    lut = np.array(
        [names.setdefault(currency_of.get(t) or UNKNOWN_CURRENCY, len(names)) if t else -1
         for t in rows.tickers],
        dtype=np.int64,
    )  # fmt: skip
    currency = lut[rows.t_codes[on_curve]]
    records = np.zeros(len(on_curve), dtype=_RECORD)
    records["stamp"] = rows.exit_stamp[on_curve]
    records["row"] = rows.rows[on_curve]
    records["pnl"] = rows.number["PnL"][on_curve]
    for code in np.unique(currency):
        runs.add(int(code), records[currency == code])
