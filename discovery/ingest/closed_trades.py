"""The per-trade pass: the CSV streamed a second time, one record per closed trade.

The TradeBook keeps nothing per row, so whatever needs the rows themselves (the closed-trade
records, the realized equity curve) reads the file again — the same snapshot length, the same
dialect, the same decoding rules — and checks that the bytes still hash to the TradeBook's
sha256. A file that changed in between is refused rather than described twice differently.
Memory stays one chunk.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from discovery.errors import InputError
from discovery.ingest.checks import Outcome, outcome
from discovery.ingest.chunk import (
    LONG,
    NO_DAY,
    SHORT,
    Decoder,
    Rows,
    day_from_epoch,
)
from discovery.ingest.columns import (
    MAX_RECORD_TEXT_CHARS,
    RECORD_COLUMNS,
    RECORD_NUMBER_COLUMNS,
    RECORD_TEXT_COLUMNS,
    FloatArray,
    IntArray,
    ObjArray,
)
from discovery.ingest.dialect import sniff
from discovery.ingest.figures import MONEY_PLACES, RATIO_PLACES
from discovery.ingest.models import TradeBook
from discovery.ingest.stream import ChunkStream, RetryTolerant
from discovery.ingest.uuids import RetryTextIds


def second_pass(
    book: TradeBook, columns: Sequence[str], *, chunk_rows: int = 50_000
) -> Iterator[tuple[Rows, Outcome]]:
    """The book's file again, chunk by chunk, as decoded rows (same rules as the first pass)."""
    path = book.source_path
    dialect = sniff(path, book.source_bytes)
    wanted = tuple(c for c in RECORD_COLUMNS if c in columns)
    decoder = Decoder(path, dialect, wanted)
    texts = tuple(c for c in RECORD_TEXT_COLUMNS if c in decoder.has)
    numbers = tuple(c for c in RECORD_NUMBER_COLUMNS if c in decoder.has)
    stream = ChunkStream(
        path,
        dialect,
        wanted,
        chunk_rows,
        tolerant=book.numbers_as_text,
        ids_as_text=book.ids_as_text,
        as_text=RECORD_NUMBER_COLUMNS,
    )
    try:
        for frame in stream:
            rows = decoder.decode(
                frame,
                tolerant=book.numbers_as_text,
                on_repeated_header=lambda row: None,
                text_columns=texts,
                lenient_numbers=numbers,
            )
            if rows is not None:
                yield rows, outcome(rows)
    except (RetryTolerant, RetryTextIds):
        # The first pass read these bytes without needing a retry: they are not the same bytes.
        raise _changed(path) from None
    if stream.sha256 != book.sha256:
        raise _changed(path)


def _changed(path: Path) -> InputError:
    return InputError(
        f"{path}: the file changed since it was first read this run; run again on the "
        "finished file.",
        path=path,
    )


RECORD_KEYS: tuple[str, ...] = (
    "row", "position_uuid", "ticker", "strategy", "short_window", "long_window", "entry_date",
    "exit_date", "entry_price", "exit_price", "direction", "position_size", "pnl", "return",
    "duration_days", "mfe", "mae", "mfe_mae_ratio", "exit_efficiency", "trade_quality", "x_status",
)  # fmt: skip
"""The fields of one closed trade as the CSV states it, in record order (null: not stated).

duration_days: exit date − entry date (the `Duration_Days` column is checked against it);
mfe / mae: `Max_Favourable_Excursion` / `Max_Adverse_Excursion` (fractions of the entry price);
mfe_mae_ratio = mfe / mae (null when either is missing or mae is 0: never inf);
exit_efficiency: `Exit_Efficiency_Fixed` (the export's Return ÷ MFE), or `Exit_Efficiency` when
only that column exists; x_status: the 19-digit id as text (never a float). Money is rounded to
cents, ratios to 6 places."""


@dataclass(frozen=True)
class ClosedChunk:
    """One chunk's closed trades as columns (JSON-ready lists keyed by `RECORD_KEYS`), plus the
    raw arrays the benchmark comparison needs. Columns, not one object per trade: a million
    trades are a million JSON lines, and per-field Python work per row is what made them slow."""

    columns: dict[str, list[Any]]
    tickers: list[str]
    entry_ordinal: IntArray
    exit_ordinal: IntArray  # NO_DAY where the trade has no exit date
    returns: FloatArray  # the CSV's Return, unrounded (NaN: not stated)

    def __len__(self) -> int:
        return len(self.tickers)

    def records(self) -> Iterator[dict[str, Any]]:
        return records_of(self.columns)


def records_of(columns: Mapping[str, list[Any]]) -> Iterator[dict[str, Any]]:
    """Equal-length columns as one dict per row, keys in column order."""
    keys = tuple(columns)
    for values in zip(*columns.values(), strict=True):
        yield dict(zip(keys, values, strict=True))


def iter_closed_chunks(book: TradeBook, *, chunk_rows: int = 50_000) -> Iterator[ClosedChunk]:
    """Every closed trade of the book's file, in file order, a chunk at a time (a second
    streaming pass: memory stays one chunk).

    Raises `InputError` if the file no longer matches the book (changed since it was read).
    """
    for rows, out in second_pass(book, RECORD_COLUMNS, chunk_rows=chunk_rows):
        chunk = _closed_chunk(rows, out)
        if len(chunk):
            yield chunk


def iter_closed_trades(book: TradeBook, *, chunk_rows: int = 50_000) -> Iterator[dict[str, Any]]:
    """Every closed trade as one record (`RECORD_KEYS`), in file order."""
    for chunk in iter_closed_chunks(book, chunk_rows=chunk_rows):
        yield from chunk.records()


_EPOCH_ORDINAL = day_from_epoch(0).toordinal()
_DIRECTION_NAMES = np.array(["Long", "Short", None], dtype=object)


def _closed_chunk(rows: Rows, out: Outcome) -> ClosedChunk:
    at = np.flatnonzero(out.closed)
    n = rows.number
    ticker_codes = rows.t_codes[at]
    tickers = np.array(rows.tickers, dtype=object)[ticker_codes].tolist()
    mfe, mae = n["Max_Favourable_Excursion"][at], n["Max_Adverse_Excursion"][at]
    with np.errstate(divide="ignore", invalid="ignore"):
        mfe_mae = np.where(mae > 0, mfe / mae, np.nan)
    exit_day = rows.exit_day[at]
    held = out.holding_days[at]
    direction = rows.direction[at]
    known = (direction == LONG) | (direction == SHORT)
    columns: dict[str, list[Any]] = {
        "row": rows.rows[at].tolist(),
        "position_uuid": rows.uuid[at].positions(),
        "ticker": tickers,
        "strategy": [rows.strategies[c] for c in rows.g_codes[at].tolist()],
        "short_window": _windows(n["Short_Window"][at]),
        "long_window": _windows(n["Long_Window"][at]),
        "entry_date": _iso_days(rows.entry_day[at]),
        "exit_date": _iso_days(exit_day),
        "entry_price": _plain(n["Avg_Entry_Price"][at]),
        "exit_price": _plain(n["Avg_Exit_Price"][at]),
        "direction": _DIRECTION_NAMES[np.where(known, direction, 2)].tolist(),
        "position_size": _plain(n["Position_Size"][at]),
        "pnl": rounded(n["PnL"][at], MONEY_PLACES),
        "return": rounded(n["Return"][at], RATIO_PLACES),
        "duration_days": [None if h != h else int(h) for h in held.tolist()],
        "mfe": rounded(mfe, RATIO_PLACES),
        "mae": rounded(mae, RATIO_PLACES),
        "mfe_mae_ratio": rounded(mfe_mae, RATIO_PLACES),
        "exit_efficiency": rounded(_efficiency(rows)[at], RATIO_PLACES),
        "trade_quality": _labels(rows.text.get("Trade_Quality"), at),
        "x_status": _labels(rows.text.get("X_Status"), at),
    }
    return ClosedChunk(
        columns=columns,
        tickers=tickers,
        entry_ordinal=rows.entry_day[at] + _EPOCH_ORDINAL,
        exit_ordinal=np.where(exit_day == NO_DAY, NO_DAY, exit_day + _EPOCH_ORDINAL),
        returns=n["Return"][at],
    )


def rounded(values: FloatArray, places: int) -> list[float | None]:
    """JSON-ready numbers rounded to `places` exactly as Python's `round` does (NaN: None), so
    the records agree with every other rounded figure of the report. `np.round` scales, rounds
    and divides, which can land on the other side of a near-half; those few values, and values
    too large for the scaling to be exact, are redone with `round`. Refuses inf loudly, as
    `finite` does: the report never carries one."""
    if np.isinf(values).any():
        raise ValueError("a non-finite value reached the closed-trade records")
    out = np.round(values, places)
    scaled = np.abs(values) * 10.0**places
    with np.errstate(invalid="ignore"):  # NaN compares False: kept as NaN, written as None
        redo = (np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6) | (scaled >= 2.0**52)
    for i in np.flatnonzero(redo).tolist():
        out[i] = round(float(values[i]), places)
    return _plain(out)


def _plain(values: FloatArray) -> list[float | None]:
    if np.isinf(values).any():
        raise ValueError("a non-finite value reached the closed-trade records")
    return [None if v != v else v + 0.0 for v in values.tolist()]  # + 0.0: -0.0 becomes 0.0


def _windows(values: FloatArray) -> list[int | float | None]:
    return [None if v is None else int(v) if v.is_integer() else v for v in _plain(values)]


def _iso_days(days: IntArray) -> list[str | None]:
    """Epoch days as ISO dates, each distinct day formatted once (NO_DAY: None)."""
    unique, inverse = np.unique(days, return_inverse=True)
    labels = np.array(
        [None if d == NO_DAY else day_from_epoch(d).isoformat() for d in unique.tolist()],
        dtype=object,
    )
    return list(labels[inverse.reshape(-1)].tolist())


def _efficiency(rows: Rows) -> FloatArray:
    """`Exit_Efficiency_Fixed` when the file has it, else `Exit_Efficiency` (NaN: not stated)."""
    for name in ("Exit_Efficiency_Fixed", "Exit_Efficiency"):
        if name in rows.number:
            return rows.number[name]
    return np.full(len(rows), np.nan)


def _labels(raw: ObjArray | None, at: IntArray) -> list[str | None]:
    """A text column as trimmed labels, each distinct value trimmed once; over-long values are
    not labels or ids: None."""
    if raw is None:
        return [None] * len(at)
    codes, uniques = pd.factorize(raw[at])  # a missing cell: code -1, the None appended last
    labels: list[str | None] = []
    for value in uniques.tolist():
        text = str(value).strip()
        labels.append(text if text and len(text) <= MAX_RECORD_TEXT_CHARS else None)
    labels.append(None)
    return list(np.array(labels, dtype=object)[codes].tolist())
