"""The per-trade pass: the CSV streamed a second time, one record per closed trade.

The TradeBook keeps nothing per row, so whatever needs the rows themselves (the closed-trade
records, the realized equity curve) reads the file again — the same snapshot length, the same
dialect, the same decoding rules — and checks that the bytes still hash to the TradeBook's
sha256. A file that changed in between is refused rather than described twice differently.
Memory stays one chunk.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from discovery.errors import InputError
from discovery.ingest import CHUNK_ROWS
from discovery.ingest.checks import Outcome, outcome
from discovery.ingest.chunk import (
    LONG,
    NO_DAY,
    SHORT,
    Decoder,
    Labels,
    Rows,
    day_from_epoch,
)
from discovery.ingest.columns import (
    MAX_RECORD_TEXT_CHARS,
    RECORD_COLUMNS,
    RECORD_NUMBER_COLUMNS,
    RECORD_TEXT_COLUMNS,
    USED_COLUMNS,
    FloatArray,
    IntArray,
)
from discovery.ingest.dialect import Dialect, sniff
from discovery.ingest.figures import MONEY_PLACES, RATIO_PLACES
from discovery.ingest.models import TradeBook
from discovery.ingest.stream import ChunkStream, RetryTolerant
from discovery.ingest.uuids import PositionIds, RetryTextIds
from discovery.json_lines import (
    Coded,
    Column,
    floats,
    ints,
    joined_texts,
    json_lines,
    labels,
    records_of,
    texts,
    whole_or_floats,
)
from services.recordclass import record


def second_pass(
    book: TradeBook, columns: Sequence[str], *, chunk_rows: int = CHUNK_ROWS
) -> Iterator[tuple[Rows, Outcome]]:
    """The book's file again, chunk by chunk, as decoded rows (same rules as the first pass).

    The optional number columns (`RECORD_NUMBER_COLUMNS`) are first parsed as numbers by
    pandas, with no Python object per cell. A value there that is not a number makes the pass
    start again with them as text (where it becomes NaN) and skip the chunks already handed
    out: they are the same chunks, with the same values, as pandas reads a number that parses
    the way `pd.to_numeric` reads its text.
    """
    path = book.source_path
    dialect = sniff(path, book.source_bytes)
    wanted = tuple(c for c in record_columns(dialect.columns) if c in columns and c not in _UNUSED)
    extras_as_text = book.numbers_as_text or dialect.decimal != "."
    ids_as_text = book.ids_as_text
    handed = 0
    while True:  # each retry switches one flag on for good: at most three reads
        try:
            decoded = _decoded(book, dialect, wanted, chunk_rows, extras_as_text, ids_as_text)
            for i, chunk in enumerate(decoded):
                if i == handed:
                    handed += 1
                    yield chunk
            return
        except _ExtrasAreText:
            extras_as_text = True
        except _IdsAreText:
            ids_as_text = True


def record_columns(available: Iterable[str]) -> tuple[str, ...]:
    """The columns a closed-trade record reads, of those the file has: `Exit_Efficiency` only
    when there is no `Exit_Efficiency_Fixed` (the one `_efficiency` takes)."""
    has = frozenset(available)
    wanted = tuple(c for c in RECORD_COLUMNS if c in has)
    if "Exit_Efficiency_Fixed" in has:
        wanted = tuple(c for c in wanted if c != "Exit_Efficiency")
    return wanted


def record_extras(available: Iterable[str]) -> tuple[str, ...]:
    """The record-only columns the file has (what the first pass reads besides its own when it
    keeps the records)."""
    return tuple(c for c in record_columns(available) if c not in USED_COLUMNS)


class _ExtrasAreText(Exception):
    """An optional number column holds text: read it as text."""


class _IdsAreText(Exception):
    """An id filled the fixed width (an X_Status the first pass did not read): read ids as text."""


def _decoded(
    book: TradeBook,
    dialect: Dialect,
    wanted: tuple[str, ...],
    chunk_rows: int,
    as_text: bool,
    ids_as_text: bool,
) -> Iterator[tuple[Rows, Outcome]]:
    path = book.source_path
    decoder = Decoder(path, dialect, wanted)
    texts = tuple(c for c in RECORD_TEXT_COLUMNS if c in decoder.has)
    numbers = tuple(c for c in RECORD_NUMBER_COLUMNS if c in decoder.has)
    stream = ChunkStream(
        path,
        dialect,
        wanted,
        chunk_rows,
        tolerant=book.numbers_as_text,
        ids_as_text=ids_as_text,
        as_text=RECORD_NUMBER_COLUMNS if as_text else (),
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
    except RetryTolerant:
        if not as_text:
            raise _ExtrasAreText from None
        # The first pass read these bytes without needing a retry: they are not the same bytes.
        raise _changed(path) from None
    except RetryTextIds:
        # Read as text, the ids give the same chunks; a changed file shows in its digest.
        raise _IdsAreText from None
    if stream.sha256 != book.sha256:
        raise _changed(path)


_UNUSED = ("Duration_Days", "Days_Since_Entry", "Current_Unrealized_PnL")
"""First-pass columns no record field reads (duration_days comes from the dates): not parsed
again. The bytes are hashed all the same."""


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


@record
class ClosedChunk:
    """One chunk's closed trades as columns of JSON tokens keyed by `RECORD_KEYS`, plus the raw
    arrays the benchmark comparison needs. Tokens, not one object per trade: a million trades
    are a million JSON lines, and per-field Python work per row is what made them slow."""

    columns: dict[str, Column]
    ticker_codes: IntArray  # into `tickers`
    tickers: list[str]
    entry_ordinal: IntArray
    exit_ordinal: IntArray  # NO_DAY where the trade has no exit date
    returns: FloatArray  # the CSV's Return, unrounded (NaN: not stated)

    def __len__(self) -> int:
        return len(self.ticker_codes)

    def records(self) -> list[dict[str, Any]]:
        return records_of(json_lines(self.columns))


def iter_closed_chunks(book: TradeBook, *, chunk_rows: int = CHUNK_ROWS) -> Iterator[ClosedChunk]:
    """Every closed trade of the book's file, in file order, a chunk at a time: the chunks the
    first pass kept (`ingest(keep_records=True)`: the first pass's chunk size), else a second
    streaming pass of `chunk_rows`. Memory stays one chunk either way.

    Raises `InputError` if a second pass finds the file changed since it was read.
    """
    if book.closed is not None:
        yield from book.closed.chunks()
        return
    for rows, out in second_pass(book, RECORD_COLUMNS, chunk_rows=chunk_rows):
        yield from closed_chunks(rows, out)


def iter_closed_trades(
    book: TradeBook, *, chunk_rows: int = CHUNK_ROWS
) -> Iterator[dict[str, Any]]:
    """Every closed trade as one record (`RECORD_KEYS`), in file order."""
    for chunk in iter_closed_chunks(book, chunk_rows=chunk_rows):
        yield from chunk.records()


_EPOCH_ORDINAL = day_from_epoch(0).toordinal()
_DIRECTION_NAMES = ["Long", "Short", None]


RECORD_CHUNK_ROWS = 10_000
"""Closed trades per `ClosedChunk`: the records are encoded a chunk at a time (tokens, then
one bytes block), and a chunk this size keeps those to tens of MB while the per-chunk costs
(numpy calls, table lookups) stay small."""


def closed_chunks(rows: Rows, out: Outcome) -> Iterator[ClosedChunk]:
    """The chunk's closed trades as record columns, in pieces of at most `RECORD_CHUNK_ROWS`
    (both passes build them here; none for a chunk without closed trades)."""
    at = np.flatnonzero(out.closed)
    for start in range(0, len(at), RECORD_CHUNK_ROWS):
        yield _closed_at(rows, at[start : start + RECORD_CHUNK_ROWS], out.holding_days)


def _closed_at(rows: Rows, at: IntArray, holding_days: FloatArray) -> ClosedChunk:
    n = rows.number
    ticker_codes = rows.t_codes[at]
    mfe, mae = n["Max_Favourable_Excursion"][at], n["Max_Adverse_Excursion"][at]
    with np.errstate(divide="ignore", invalid="ignore"):
        mfe_mae = np.where(mae > 0, mfe / mae, np.nan)
    exit_day = rows.exit_day[at]
    direction = rows.direction[at]
    known = (direction == LONG) | (direction == SHORT)
    columns: dict[str, Column] = {
        "row": ints(rows.rows[at]),
        "position_uuid": _positions(rows.uuid[at]),
        "ticker": labels(ticker_codes, rows.tickers),
        "strategy": labels(rows.g_codes[at], rows.strategies),
        "short_window": whole_or_floats(n["Short_Window"][at]),
        "long_window": whole_or_floats(n["Long_Window"][at]),
        "entry_date": labels(rows.e_codes[at], _iso_days(rows.entry_lut)),
        "exit_date": labels(rows.x_codes[at], _iso_days(rows.exit_lut)),
        "entry_price": floats(n["Avg_Entry_Price"][at]),
        "exit_price": floats(n["Avg_Exit_Price"][at]),
        "direction": labels(np.where(known, direction, 2), _DIRECTION_NAMES),
        "position_size": floats(n["Position_Size"][at]),
        "pnl": floats(rounded(n["PnL"][at], MONEY_PLACES)),
        "return": floats(rounded(n["Return"][at], RATIO_PLACES)),
        "duration_days": whole_or_floats(holding_days[at]),
        "mfe": floats(rounded(mfe, RATIO_PLACES)),
        "mae": floats(rounded(mae, RATIO_PLACES)),
        "mfe_mae_ratio": floats(rounded(mfe_mae, RATIO_PLACES)),
        "exit_efficiency": floats(rounded(_efficiency(rows)[at], RATIO_PLACES)),
        "trade_quality": _labels(rows.record_labels.get("Trade_Quality"), at),
        "x_status": _ids(rows.record_ids.get("X_Status"), at),
    }
    return ClosedChunk(
        columns=columns,
        ticker_codes=ticker_codes,
        tickers=rows.tickers,
        entry_ordinal=rows.entry_day[at] + _EPOCH_ORDINAL,
        exit_ordinal=np.where(exit_day == NO_DAY, NO_DAY, exit_day + _EPOCH_ORDINAL),
        returns=n["Return"][at],
    )


def rounded(values: FloatArray, places: int) -> FloatArray:
    """`values` rounded to `places` exactly as Python's `round` does (NaN stays NaN), so the
    records agree with every other rounded figure of the report. `np.round` scales, rounds
    and divides, which can land on the other side of a near-half; those few values, and values
    too large for the scaling to be exact, are redone with `round`. Refuses inf loudly, as
    `finite` does: the report never carries one."""
    if np.isinf(values).any():
        raise ValueError("a non-finite value reached the closed-trade records")
    out = np.round(values, places)
    scaled = np.abs(values) * 10.0**places
    with np.errstate(invalid="ignore"):  # NaN compares False: kept as NaN, written as null
        redo = (np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6) | (scaled >= 2.0**52)
    for i in np.flatnonzero(redo).tolist():
        out[i] = round(float(values[i]), places)
    return out


def _iso_days(days: IntArray) -> list[str | None]:
    """Epoch days as ISO dates (NO_DAY: None): a chunk's short table of distinct dates."""
    return [None if d == NO_DAY else day_from_epoch(d).isoformat() for d in days.tolist()]


def _efficiency(rows: Rows) -> FloatArray:
    """`Exit_Efficiency_Fixed` when the file has it, else `Exit_Efficiency` (NaN: not stated)."""
    for name in ("Exit_Efficiency_Fixed", "Exit_Efficiency"):
        if name in rows.number:
            return rows.number[name]
    return np.full(len(rows), np.nan)


def _labels(coded: tuple[IntArray, Labels] | None, at: IntArray) -> Column:
    """A text column of few distinct values (codes into the chunk's trimmed labels, as pandas'
    categories give them) as labels, each encoded once; over-long values are not labels: null."""
    if coded is None:
        return Coded(np.zeros(len(at), dtype=np.int64), ["null"])
    codes, table = coded
    fitting = [v if v is None or len(v) <= MAX_RECORD_TEXT_CHARS else None for v in table]
    return labels(codes[at], fitting)


def _ids(ids: PositionIds | None, at: IntArray) -> Column:
    """A text column of ids (nearly every value distinct), trimmed as `_labels` trims: each
    value is its own label, so there is nothing to share."""
    if ids is None:
        return Coded(np.zeros(len(at), dtype=np.int64), ["null"])
    return _positions(ids[at], MAX_RECORD_TEXT_CHARS)


def _positions(ids: PositionIds, longest: int | None = None) -> Column:
    joined = ids.joined(longest)
    if joined is None:
        return texts(ids.positions(longest))
    return joined_texts(joined, len(ids))
