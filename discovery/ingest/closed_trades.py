"""The per-trade pass: the CSV streamed a second time, one typed record per closed trade.

The TradeBook keeps nothing per row, so whatever needs the rows themselves (the closed-trade
records, the realized equity curve) reads the file again — the same snapshot length, the same
dialect, the same decoding rules — and checks that the bytes still hash to the TradeBook's
sha256. A file that changed in between is refused rather than described twice differently.
Memory stays one chunk.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from discovery.errors import InputError
from discovery.ingest.checks import Outcome, outcome
from discovery.ingest.chunk import LONG, NO_DAY, SHORT, Decoder, Rows, day_from_epoch
from discovery.ingest.columns import (
    MAX_RECORD_TEXT_CHARS,
    RECORD_COLUMNS,
    RECORD_NUMBER_COLUMNS,
    RECORD_TEXT_COLUMNS,
    FloatArray,
    ObjArray,
)
from discovery.ingest.dialect import sniff
from discovery.ingest.figures import finite, money, ratio
from discovery.ingest.models import TradeBook
from discovery.ingest.stream import ChunkStream


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
        as_text=RECORD_NUMBER_COLUMNS,
    )
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
    if stream.sha256 != book.sha256:
        raise InputError(
            f"{path}: the file changed since it was first read this run; run again on the "
            "finished file.",
            path=path,
        )


@dataclass(frozen=True)
class ClosedTrade:
    """One closed trade as the CSV states it (None where the CSV does not say).

    duration_days: exit date − entry date (the `Duration_Days` column is checked against it);
    mfe / mae: `Max_Favourable_Excursion` / `Max_Adverse_Excursion` (fractions of the entry
    price); mfe_mae_ratio = mfe / mae (None when either is missing or mae is 0: never inf);
    exit_efficiency: `Exit_Efficiency_Fixed` (the export's Return ÷ MFE), or `Exit_Efficiency`
    when only that column exists; x_status: the 19-digit id as text (never a float).
    """

    row: int
    position_uuid: str | None
    ticker: str
    strategy: str | None
    short_window: float | None
    long_window: float | None
    entry_date: date
    exit_date: date | None
    entry_price: float | None
    exit_price: float | None
    direction: str | None
    position_size: float | None
    pnl: float | None
    return_: float | None
    duration_days: int | None
    mfe: float | None
    mae: float | None
    exit_efficiency: float | None
    trade_quality: str | None
    x_status: str | None

    @property
    def mfe_mae_ratio(self) -> float | None:
        if self.mfe is None or self.mae is None or self.mae <= 0:
            return None
        return self.mfe / self.mae

    def to_json(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "position_uuid": self.position_uuid,
            "ticker": self.ticker,
            "strategy": self.strategy,
            "short_window": _window(self.short_window),
            "long_window": _window(self.long_window),
            "entry_date": self.entry_date.isoformat(),
            "exit_date": None if self.exit_date is None else self.exit_date.isoformat(),
            "entry_price": _plain(self.entry_price),
            "exit_price": _plain(self.exit_price),
            "direction": self.direction,
            "position_size": _plain(self.position_size),
            "pnl": None if self.pnl is None else money(self.pnl),
            "return": ratio(self.return_),
            "duration_days": self.duration_days,
            "mfe": ratio(self.mfe),
            "mae": ratio(self.mae),
            "mfe_mae_ratio": ratio(self.mfe_mae_ratio),
            "exit_efficiency": ratio(self.exit_efficiency),
            "trade_quality": self.trade_quality,
            "x_status": self.x_status,
        }


def _plain(value: float | None) -> float | None:
    return None if value is None else finite(value)


def _window(value: float | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if value.is_integer() else finite(value)


def iter_closed_trades(book: TradeBook, *, chunk_rows: int = 50_000) -> Iterator[ClosedTrade]:
    """Every closed trade of the book's file, in file order (a second streaming pass).

    Raises `InputError` if the file no longer matches the book (changed since it was read).
    """
    for rows, out in second_pass(book, RECORD_COLUMNS, chunk_rows=chunk_rows):
        yield from _records(rows, out)


def _records(rows: Rows, out: Outcome) -> Iterator[ClosedTrade]:
    n = rows.number
    efficiency = _efficiency(rows)
    quality = _labels(rows.text.get("Trade_Quality"), len(rows))
    x_status = _labels(rows.text.get("X_Status"), len(rows))
    for i in np.flatnonzero(out.closed).tolist():
        exit_day = int(rows.exit_day[i])
        held = out.holding_days[i]
        direction = int(rows.direction[i])
        uuid = rows.uuid[i]
        yield ClosedTrade(
            row=int(rows.rows[i]),
            position_uuid=None if pd.isna(uuid) else str(uuid).strip() or None,
            ticker=rows.tickers[rows.t_codes[i]],
            strategy=rows.strategies[rows.g_codes[i]],
            short_window=_value(n["Short_Window"], i),
            long_window=_value(n["Long_Window"], i),
            entry_date=day_from_epoch(int(rows.entry_day[i])),
            exit_date=None if exit_day == NO_DAY else day_from_epoch(exit_day),
            entry_price=_value(n["Avg_Entry_Price"], i),
            exit_price=_value(n["Avg_Exit_Price"], i),
            direction={LONG: "Long", SHORT: "Short"}.get(direction),
            position_size=_value(n["Position_Size"], i),
            pnl=_value(n["PnL"], i),
            return_=_value(n["Return"], i),
            duration_days=None if math.isnan(held) else int(held),
            mfe=_value(n["Max_Favourable_Excursion"], i),
            mae=_value(n["Max_Adverse_Excursion"], i),
            exit_efficiency=_value(efficiency, i),
            trade_quality=quality[i],
            x_status=x_status[i],
        )


def _value(values: FloatArray, i: int) -> float | None:
    value = float(values[i])
    return None if math.isnan(value) else value


def _efficiency(rows: Rows) -> FloatArray:
    """`Exit_Efficiency_Fixed` when the file has it, else `Exit_Efficiency` (NaN: not stated)."""
    for name in ("Exit_Efficiency_Fixed", "Exit_Efficiency"):
        if name in rows.number:
            return rows.number[name]
    return np.full(len(rows), np.nan)


def _labels(raw: ObjArray | None, length: int) -> list[str | None]:
    """A text column as trimmed labels; over-long values are not labels or ids: None."""
    if raw is None:
        return [None] * length
    out: list[str | None] = []
    for value in raw:
        text = None if pd.isna(value) else str(value).strip()
        out.append(text if text and len(text) <= MAX_RECORD_TEXT_CHARS else None)
    return out
