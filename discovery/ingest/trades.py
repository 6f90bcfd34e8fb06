"""Stage 1 — ingest: stream a trade-history CSV into a bounded `TradeBook`.

Why it is built this way:
- Real fills exports are large, so the file is read in chunks with explicit dtypes and only the
  columns we use; each chunk is aggregated with vectorized numpy/pandas operations and dropped.
  Memory is O(tickers + open positions), not O(rows).
- Text columns have few distinct values per chunk (tickers, statuses, dates), so they are
  factorized once and every per-value decision (normalize, validate, parse a date) is made on
  the distinct values only, then broadcast back through the codes.
- The file's sha256 is computed from the very bytes pandas parses, on a helper thread (hashlib
  releases the GIL), so it costs no extra pass.
- Bad input is one sentence naming file, row and column (`InputError`, exit 2); a row that is
  usable but inconsistent becomes a data-quality `Issue` with its row number. docs/ingest_rules.md
  lists which is which.

Row numbers are spreadsheet rows: the header is row 1, the first trade is row 2.
"""

from __future__ import annotations

import codecs
import csv
import functools
import hashlib
import io
import math
import queue
import re
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from discovery.errors import InputError
from discovery.ingest.models import (
    MAX_KEPT_ISSUES,
    ActivePosition,
    DataQuality,
    Issue,
    PerformanceMetrics,
    PortfolioSummary,
    TickerStats,
    TradeBook,
)
from discovery.tickers import is_valid_ticker, normalize_ticker

REQUIRED_COLUMNS: tuple[str, ...] = (
    "Position_UUID",
    "Ticker",
    "Strategy_Type",
    "Entry_Timestamp",
    "Status",
)
TEXT_COLUMNS: tuple[str, ...] = (
    "Position_UUID",
    "Ticker",
    "Strategy_Type",
    "Entry_Timestamp",
    "Exit_Timestamp",
    "Direction",
    "Status",
)
NUMBER_COLUMNS: tuple[str, ...] = (
    "Short_Window",
    "Long_Window",
    "Avg_Entry_Price",
    "Avg_Exit_Price",
    "Position_Size",
    "PnL",
    "Return",
    "Days_Since_Entry",
    "Current_Unrealized_PnL",
)
USED_COLUMNS: tuple[str, ...] = TEXT_COLUMNS + NUMBER_COLUMNS
# Columns read as pandas "category" (factorized inside the C parser) instead of object +
# pd.factorize. Measured on pandas 3.1: no faster, so none; kept as the switch to flip.
CATEGORY_COLUMNS: frozenset[str] = frozenset()
# X_Status (a 19-digit id) is deliberately not read: nothing in the report uses it, so it can
# never be turned into a float, and parsing 1M ids as text costs ~10 % of the ingest time.

PNL_TOLERANCE = 0.01
"""Breakeven band and PnL-check tolerance; compared with a 1e-9 float allowance."""
_TOL = PNL_TOLERANCE + 1e-9

ISSUE_KINDS: tuple[str, ...] = (
    "repeated_header",
    "missing_value",
    "unknown_status",
    "unknown_direction",
    "closed_without_exit",
    "open_with_exit",
    "missing_pnl",
    "pnl_mismatch",
    "uuid_mismatch",
)

_HINTED = frozenset({"Status", "Direction", "Strategy_Type"})
_MAX_HINTS = 6
_SNIFF_BYTES = 64 * 1024
_READ_BYTES = 256 * 1024
_BOM = codecs.BOM_UTF8
# Text columns: only an empty cell is missing ("NA" is a real ticker). Numbers: the usual spellings.
_TEXT_NA = [""]
_NUMBER_NA = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "#N/A"]
_NO_DAY = np.iinfo(np.int64).min
_DECIMAL_COMMA = re.compile(r"-?\d+,\d+")
_PARSER_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_PARSER_EOF = re.compile(r"EOF inside string starting at row (\d+)")
_STATUS_CLASSES = {"closed": 0, "open": 1, "active": 1}
_CLOSED, _OPEN, _UNKNOWN = 0, 1, 2
_LONG, _SHORT = 0, 1

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
ObjArray = npt.NDArray[np.object_]


# --------------------------------------------------------------------------------------------
# Dialect: delimiter, decimal mark and the header, decided from the first bytes of the file.


@dataclass(frozen=True)
class _Dialect:
    delimiter: str
    decimal: str
    header: tuple[str, ...]
    columns: MappingProxyType[str, str]  # canonical name -> name as written in the header


def _sniff(path: Path) -> _Dialect:
    """Read the file's head: refuse empty/binary/non-UTF-8 early; find delimiter and columns."""
    try:
        with path.open("rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror}).", path=path) from None
    if head.startswith(_BOM):
        head = head[len(_BOM) :]
    if not head.strip():
        raise InputError(f"{path}: the file is empty; expected a CSV header and trades.", path=path)
    if b"\x00" in head:
        nul_row = head[: head.index(b"\x00")].count(b"\n") + 1
        raise InputError(
            f"{path}: row {nul_row} contains binary data (NUL bytes); this is not a CSV text file.",
            path=path,
        )
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        text = decoder.decode(head, final=len(head) < _SNIFF_BYTES)
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, head[: exc.start].count(b"\n") + 1, None) from None
    header_line = text.split("\n", 1)[0].rstrip("\r")
    if not header_line.strip():
        raise InputError(f"{path}: row 1 is empty; expected the CSV header.", path=path, row=1)
    comma = next(csv.reader([header_line]))
    semi = next(csv.reader([header_line], delimiter=";"))
    delimiter = ";" if len(semi) > len(comma) else ","
    header = tuple(semi if delimiter == ";" else comma)
    decimal = "."
    if delimiter == ";":
        sample = text.split("\n")[1:21]
        cells = (c.strip() for row in csv.reader(sample, delimiter=";") for c in row)
        if any(_DECIMAL_COMMA.fullmatch(c) for c in cells):
            decimal = ","
    return _Dialect(delimiter, decimal, header, _map_columns(path, header))


def _map_columns(path: Path, header: Sequence[str]) -> MappingProxyType[str, str]:
    """Match our column names to the header (trimmed, case-insensitive); refuse duplicates."""
    seen: dict[str, int] = {}
    for position, raw in enumerate(header, start=1):
        name = raw.strip().lower()
        if not name:
            continue
        if name in seen:
            raise InputError(
                f"{path}: the header (row 1) names column {raw.strip()!r} twice "
                f"(columns {seen[name]} and {position}); remove the duplicate.",
                path=path,
                row=1,
                column=raw.strip(),
            )
        seen[name] = position
    columns: dict[str, str] = {}
    for canonical in USED_COLUMNS:
        found = seen.get(canonical.lower())
        if found is not None:
            columns[canonical] = header[found - 1]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        delim_hint = "" if len(header) > 1 else " (is the file comma- or semicolon-delimited?)"
        raise InputError(
            f"{path}: required column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"missing from the header (row 1){delim_hint}.",
            path=path,
            row=1,
            column=missing[0],
        )
    return MappingProxyType(columns)


def _not_utf8(path: Path, row: int, column: str | None) -> InputError:
    where = f"row {row}" + (f", column {column}" if column else "")
    return InputError(
        f"{path}: {where} contains bytes that are not UTF-8; re-export the file as UTF-8 CSV.",
        path=path,
        row=row,
        column=column,
    )


# --------------------------------------------------------------------------------------------
# The byte stream pandas parses: hashed on a helper thread, NUL bytes refused as they pass.


class _BinaryData(Exception):
    """Raised from inside pandas' read loop when a NUL byte shows up past the sniffed head."""


class _HashingReader(io.RawIOBase):
    """A read-only binary stream that hashes (and UTF-8-checks) every byte it serves.

    The work runs on a helper thread: hashlib releases the GIL, and an ASCII block (the usual
    case) needs only `bytes.isascii()`. pandas decodes only the columns we read, so this is what
    catches a non-UTF-8 byte in a column we never look at.
    """

    def __init__(self, raw: io.BufferedReader) -> None:
        super().__init__()
        self._raw = raw
        self._sha = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=16)
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._offset = 0
        self.not_utf8 = False
        self._thread = threading.Thread(target=self._hash_loop, name="ingest-sha256", daemon=True)
        self._thread.start()
        self._done = False

    def _hash_loop(self) -> None:
        while (block := self._queue.get()) is not None:
            self._sha.update(block)
            first, self._offset = self._offset == 0, self._offset + len(block)
            if self.not_utf8 or (block.isascii() and not self._decoder.getstate()[0]):
                continue
            try:
                self._decoder.decode(block[3:] if first and block[:3] == _BOM else block)
            except UnicodeDecodeError:
                self.not_utf8 = True
        if not self.not_utf8:
            try:
                self._decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                self.not_utf8 = True

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        block = self._raw.read(-1 if size is None else size)
        if b"\x00" in block:
            raise _BinaryData
        if block:
            self._queue.put(block)
        return block

    def readinto(self, buffer: Any) -> int:
        block = self.read(len(buffer))
        buffer[: len(block)] = block
        return len(block)

    def hexdigest(self) -> str:
        """Hash the rest of the file (pandas may stop early) and return the whole file's sha256."""
        while self.read(_READ_BYTES):
            pass
        self._stop()
        return self._sha.hexdigest()

    def _stop(self) -> None:
        if not self._done:
            self._done = True
            self._queue.put(None)
            self._thread.join()

    def close(self) -> None:
        self._stop()
        super().close()


# --------------------------------------------------------------------------------------------
# Public entry point.


def ingest(path: Path, *, chunk_rows: int = 50_000, as_of: date | None = None) -> TradeBook:
    """Stream the trade-history CSV at `path` into a `TradeBook`.

    Pure apart from reading the file. `as_of` (optional) is the day `days_since_entry` of open
    positions is counted to; without it the CSV's own `Days_Since_Entry` is reported.
    Raises `InputError` (one sentence with file, row and column) for input that cannot be used.
    """
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such trade-history file.", path=path)
    dialect = _sniff(path)
    try:
        return _read(path, dialect, chunk_rows, as_of, tolerant=False)
    except _RetryTolerant:
        # A cell did not parse as a number: re-read with numbers as text to find out whether it
        # is a repeated header line (skipped, reported) or a bad value (refused with its row).
        return _read(path, dialect, chunk_rows, as_of, tolerant=True)


class _RetryTolerant(Exception):
    pass


def _read(
    path: Path, dialect: _Dialect, chunk_rows: int, as_of: date | None, *, tolerant: bool
) -> TradeBook:
    book = _Accumulator(path, dialect, as_of)
    columns = dialect.columns
    number_type: Any = object if tolerant else np.float64
    dtypes: dict[str, Any] = {
        actual: (
            number_type
            if canonical in NUMBER_COLUMNS
            else "category"
            if canonical in CATEGORY_COLUMNS
            else object
        )
        for canonical, actual in columns.items()
    }
    na_values = {
        actual: (_NUMBER_NA if canonical in NUMBER_COLUMNS else _TEXT_NA)
        for canonical, actual in columns.items()
    }
    rename = {actual: canonical for canonical, actual in columns.items()}
    with path.open("rb") as raw:
        stream = _HashingReader(raw)
        try:
            reader = functools.partial(
                pd.read_csv,
                stream,
                sep=dialect.delimiter,
                decimal=dialect.decimal,
                usecols=list(columns.values()),
                dtype=dtypes,
                chunksize=chunk_rows,
                encoding="utf-8",
                engine="c",
                index_col=False,
                skip_blank_lines=False,
                keep_default_na=False,
                na_values=na_values,
            )
            for chunk in _chunks(path, dialect, reader, tolerant):
                book.add(chunk.rename(columns=rename), tolerant=tolerant)
            digest = stream.hexdigest()
        finally:
            stream.close()
    if stream.not_utf8:
        row, column = _locate(path, dialect, lambda line: not _is_utf8(line))
        raise _not_utf8(path, row, column)
    return book.finish(digest)


def _chunks(
    path: Path, dialect: _Dialect, open_reader: Callable[[], Any], tolerant: bool
) -> Iterator[pd.DataFrame]:
    """pandas' chunks, with every parser failure turned into one sentence (or a tolerant retry)."""
    iterator: Iterator[pd.DataFrame] | None = None
    while True:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", pd.errors.ParserWarning)
                if iterator is None:  # pandas reads the first block while opening
                    iterator = iter(open_reader())
                chunk = next(iterator)
        except StopIteration:
            return
        except pd.errors.EmptyDataError:
            raise InputError(
                f"{path}: the file is empty; expected a CSV header and trades.", path=path
            ) from None
        except UnicodeDecodeError:
            row, column = _locate(path, dialect, lambda line: not _is_utf8(line))
            raise _not_utf8(path, row, column) from None
        except _BinaryData:
            row, _ = _locate(path, dialect, lambda line: b"\x00" in line)
            raise InputError(
                f"{path}: row {row} contains binary data (NUL bytes); this is not a CSV text file.",
                path=path,
                row=row,
            ) from None
        except pd.errors.ParserWarning:
            raise InputError(
                f"{path}: the first trade rows have more fields than the header (row 1).",
                path=path,
                row=2,
            ) from None
        except pd.errors.ParserError as exc:
            raise _parser_error(path, dialect, str(exc)) from None
        except (ValueError, TypeError, OverflowError):
            if not tolerant:
                raise _RetryTolerant from None
            raise InputError(
                f"{path}: a value could not be read; check the numbers and quoting.", path=path
            ) from None
        yield chunk


def _parser_error(path: Path, dialect: _Dialect, message: str) -> InputError:
    if match := _PARSER_FIELDS.search(message):
        expected, line, saw = (int(g) for g in match.groups())
        return InputError(
            f"{path}: row {line} has {saw} fields but the header (row 1) has {expected}; "
            f"is a {dialect.delimiter!r} inside an unquoted value?",
            path=path,
            row=line,
        )
    if match := _PARSER_EOF.search(message):
        row = int(match.group(1)) + 1
        return InputError(
            f"{path}: the quoted value that starts at row {row} is never closed.",
            path=path,
            row=row,
        )
    return InputError(f"{path}: not a well-formed CSV file (quoting or delimiters).", path=path)


def _is_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _locate(path: Path, dialect: _Dialect, bad: Any) -> tuple[int, str | None]:
    """Error path only: the first line (1-based) for which `bad(line)` holds, and its column."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            content = line[len(_BOM) :] if number == 1 and line.startswith(_BOM) else line
            if bad(content):
                text = content.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
                cells = next(csv.reader([text], delimiter=dialect.delimiter), [])
                for index, cell in enumerate(cells):
                    if "\ufffd" in cell and index < len(dialect.header):
                        return number, dialect.header[index].strip()
                return number, None
    return 1, None


# --------------------------------------------------------------------------------------------
# Per-chunk helpers: factorize a text column and decide things per distinct value.


def _factorize(
    values: pd.Series | None, length: int, hints: Sequence[str] = ()
) -> tuple[IntArray, list[str | None]]:
    """Codes and trimmed labels; a missing or blank cell gets the label None (never code -1).

    `hints` are the spellings expected for a column with very few values (`Closed`, `Open`):
    comparing against them is ~3x cheaper than hashing every cell; any other value falls back
    to a full factorize.
    """
    if values is None:
        return np.zeros(length, dtype=np.int64), [None]
    if hints and not isinstance(values.dtype, pd.CategoricalDtype):
        array = values.to_numpy(dtype=object)
        hinted = np.full(length, -1, dtype=np.int64)
        for code, hint in enumerate(hints):
            hinted[array == hint] = code
        if not (hinted < 0).any():
            return hinted, [*hints, None]
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = np.asarray(values.cat.codes.to_numpy(), dtype=np.int64)
        uniques: Sequence[Any] = list(values.cat.categories)
    else:
        raw_codes, raw_uniques = pd.factorize(values.to_numpy(dtype=object))
        codes, uniques = np.asarray(raw_codes, dtype=np.int64), list(raw_uniques)
    labels: list[str | None] = [str(u).strip() or None for u in uniques]
    if (codes < 0).any():
        codes = np.where(codes < 0, len(labels), codes)
    labels.append(None)
    return codes, labels


def _missing(codes: IntArray, labels: Sequence[str | None]) -> BoolArray:
    lut = np.array([label is None for label in labels], dtype=bool)
    return lut[codes]


def _parse_day_labels(labels: Sequence[str | None]) -> IntArray:
    """Dates as written → epoch days (`_NO_DAY` when missing or not a date).

    The calendar date as written counts (time and zone are dropped). ISO 8601 only
    (`2025-04-14`, `2025-04-14 00:00:00`, `2025-04-14T09:30:00Z`): `04/14/2025` could be read two
    ways, so it is refused rather than guessed.
    """
    text = pd.Index([label or "" for label in labels], dtype=object)
    try:
        stamps = pd.to_datetime(text, format="ISO8601", errors="coerce")
        if getattr(stamps, "tz", None) is not None:
            stamps = stamps.tz_localize(None)
        days = np.asarray(stamps.to_numpy().astype("datetime64[D]").astype(np.int64))
    except (ValueError, TypeError, OverflowError):
        # Mixed time zones (or other oddities) in one chunk: parse each distinct value.
        days = np.array(
            [_NO_DAY if (d := _parse_one_day(label)) is None else _epoch_day(d) for label in text],
            dtype=np.int64,
        )
    days[[label is None for label in labels]] = _NO_DAY
    return days


def _parse_one_day(label: str) -> date | None:
    if not label:
        return None
    try:
        return datetime.fromisoformat(label.replace("Z", "+00:00")).date()
    except ValueError:
        return None


def _window_label(value: float) -> str | None:
    if math.isnan(value):
        return None
    return str(int(value)) if value.is_integer() else repr(value)


def _epoch_day(day: date) -> int:
    return day.toordinal() - _EPOCH_ORDINAL


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _day_from_epoch(value: int) -> date:
    return date.fromordinal(value + _EPOCH_ORDINAL)


# --------------------------------------------------------------------------------------------
# The accumulator: everything kept between chunks (O(tickers + open positions + kept issues)).


@dataclass
class _Chunk:
    """One chunk's columns as numpy arrays, after blank and repeated-header rows are dropped."""

    rows: IntArray
    uuid: ObjArray
    number: dict[str, FloatArray]


class _Accumulator:
    def __init__(self, path: Path, dialect: _Dialect, as_of: date | None) -> None:
        self.path = path
        self.dialect = dialect
        self.as_of = as_of
        self.has = frozenset(dialect.columns)
        self.ticker_ids: dict[str, int] = {}
        self.hints: dict[str, tuple[str, ...]] = {
            "Status": ("Closed", "Open"),
            "Direction": ("Long", "Short"),
        }
        self.total = np.zeros(0, dtype=np.int64)
        self.closed = np.zeros(0, dtype=np.int64)
        self.active = np.zeros(0, dtype=np.int64)
        self.wins = np.zeros(0, dtype=np.int64)
        self.losses = np.zeros(0, dtype=np.int64)
        self.breakevens = np.zeros(0, dtype=np.int64)
        self.pnl = np.zeros(0, dtype=np.float64)
        self.ret = np.zeros(0, dtype=np.float64)
        self.first_entry = np.zeros(0, dtype=np.int64)
        self.last_exit = np.zeros(0, dtype=np.int64)
        self.open_uuids: dict[int, list[str]] = {}
        self.strategies: Counter[str] = Counter()
        self.gross_profit = 0.0
        self.gross_loss = 0.0
        self.win_return = [0.0, 0]
        self.loss_return = [0.0, 0]
        self.active_positions: list[ActivePosition] = []
        self.issues: list[Issue] = []
        self.issue_counts: Counter[str] = Counter()
        self.rows_read = 0
        self.rows_with_issues = 0
        self.skipped_rows = 0

    # -- small helpers ------------------------------------------------------------------------

    def _fail(self, row: int, column: str, what: str) -> InputError:
        return InputError(
            f"{self.path}: row {row}, column {column}: {what}.",
            path=self.path,
            row=row,
            column=column,
        )

    def _codes(self, frame: pd.DataFrame, column: str) -> tuple[IntArray, list[str | None]]:
        values = frame[column] if column in self.has else None
        hints = self.hints.get(column, ())
        codes, labels = _factorize(values, len(frame), hints)
        if column in _HINTED and labels[:-1] != list(hints) and len(labels) <= _MAX_HINTS:
            # Learn this file's spellings (e.g. its strategy names) for the next chunks.
            self.hints[column] = tuple(label for label in labels if label is not None)
        return codes, labels

    def _text(self, frame: pd.DataFrame, column: str) -> ObjArray:
        if column in self.has:
            return np.asarray(frame[column].to_numpy(), dtype=object)
        return np.full(len(frame), np.nan, dtype=object)

    def _ticker_id(self, ticker: str) -> int:
        found = self.ticker_ids.get(ticker)
        if found is None:
            found = self.ticker_ids[ticker] = len(self.ticker_ids)
        return found

    def _grow(self) -> None:
        size = len(self.ticker_ids)
        extra = size - len(self.total)
        if extra <= 0:
            return
        for name in ("total", "closed", "active", "wins", "losses", "breakevens"):
            setattr(self, name, np.concatenate([getattr(self, name), np.zeros(extra, np.int64)]))
        self.pnl = np.concatenate([self.pnl, np.zeros(extra)])
        self.ret = np.concatenate([self.ret, np.zeros(extra)])
        self.first_entry = np.concatenate(
            [self.first_entry, np.full(extra, np.iinfo(np.int64).max, np.int64)]
        )
        self.last_exit = np.concatenate([self.last_exit, np.full(extra, _NO_DAY, np.int64)])

    # -- one chunk ----------------------------------------------------------------------------

    def add(self, frame: pd.DataFrame, *, tolerant: bool, screened: bool = False) -> None:
        if frame.empty:
            return
        uuid = self._text(frame, "Position_UUID")
        uuid_missing = np.asarray(pd.isna(uuid), dtype=bool)
        t_codes, t_labels = self._codes(frame, "Ticker")
        if not screened:
            skipped = self._skipped(frame, uuid, uuid_missing, t_codes, t_labels)
            if skipped.any():
                self.add(frame[~skipped], tolerant=tolerant, screened=True)
                return
        n = len(frame)
        rows = np.asarray(frame.index.to_numpy(), dtype=np.int64) + 2
        numbers = self._numbers(frame, rows, tolerant=tolerant)
        tickers = self._tickers(t_codes, t_labels, rows)
        gid_lut = np.array([self._ticker_id(t) if t else -1 for t in tickers], dtype=np.int64)
        self._grow()
        gid = gid_lut[t_codes]

        s_codes, s_labels = self._codes(frame, "Status")
        status_lut = np.array(
            [_STATUS_CLASSES.get((s or "").lower(), _UNKNOWN) for s in s_labels], dtype=np.int64
        )
        status = status_lut[s_codes]
        closed = status == _CLOSED
        opened = status == _OPEN

        g_codes, g_labels = self._codes(frame, "Strategy_Type")
        strategies = [None if s is None else s.upper() for s in g_labels]
        for label, used in zip(
            strategies, np.bincount(g_codes, minlength=len(strategies)), strict=True
        ):
            if label is not None and used:
                self.strategies[label] += int(used)

        e_codes, e_labels = self._codes(frame, "Entry_Timestamp")
        entry_days_lut = self._days(e_codes, e_labels, rows, "Entry_Timestamp", required=True)
        entry_day = entry_days_lut[e_codes]
        x_codes, x_labels = self._codes(frame, "Exit_Timestamp")
        exit_day = self._days(x_codes, x_labels, rows, "Exit_Timestamp", required=False)[x_codes]
        has_exit_day = exit_day != _NO_DAY

        d_codes, d_labels = self._codes(frame, "Direction")
        direction_lut = np.array(
            [{"long": _LONG, "short": _SHORT}.get((d or "").lower(), _UNKNOWN) for d in d_labels],
            dtype=np.int64,
        )
        direction = direction_lut[d_codes]

        pnl, ret = numbers["PnL"], numbers["Return"]
        entry_px, exit_px = numbers["Avg_Entry_Price"], numbers["Avg_Exit_Price"]
        size = numbers["Position_Size"]
        has_pnl = closed & ~np.isnan(pnl)
        win = has_pnl & (pnl > _TOL)
        loss = has_pnl & (pnl < -_TOL)
        even = has_pnl & ~win & ~loss

        # -- per-ticker aggregates (vectorized over the chunk) --------------------------------
        width = len(self.ticker_ids)

        def count(mask: BoolArray) -> IntArray:
            return np.bincount(gid[mask], minlength=width).astype(np.int64)

        self.total += np.bincount(gid, minlength=width).astype(np.int64)
        self.closed += count(closed)
        self.active += count(opened)
        self.wins += count(win)
        self.losses += count(loss)
        self.breakevens += count(even)
        self.pnl += np.bincount(gid, weights=np.where(has_pnl, pnl, 0.0), minlength=width)
        closed_ret = closed & ~np.isnan(ret)
        self.ret += np.bincount(gid, weights=np.where(closed_ret, ret, 0.0), minlength=width)
        np.minimum.at(self.first_entry, gid, entry_day)
        exited = closed & has_exit_day
        np.maximum.at(self.last_exit, gid[exited], exit_day[exited])
        self.gross_profit += float(pnl[win].sum())
        self.gross_loss += float(-pnl[loss].sum())
        win_ret = win & ~np.isnan(ret)
        loss_ret = loss & ~np.isnan(ret)
        self.win_return[0] += float(ret[win_ret].sum())
        self.win_return[1] += int(win_ret.sum())
        self.loss_return[0] += float(ret[loss_ret].sum())
        self.loss_return[1] += int(loss_ret.sum())
        self.rows_read += n

        # -- data-quality checks --------------------------------------------------------------
        checks: list[tuple[str, str, BoolArray, Any]] = []
        checks.append(
            ("missing_value", "Position_UUID", uuid_missing, lambda i: "Position_UUID is empty")
        )
        s_missing = _missing(g_codes, g_labels)
        checks.append(
            ("missing_value", "Strategy_Type", s_missing, lambda i: "Strategy_Type is empty")
        )
        status_raw = [s_labels[c] for c in range(len(s_labels))]
        checks.append(
            (
                "unknown_status",
                "Status",
                status == _UNKNOWN,
                lambda i: (
                    "Status is empty; the trade counts in total_trades only"
                    if status_raw[s_codes[i]] is None
                    else f"Status {status_raw[s_codes[i]]!r} is not Closed, Open or Active; "
                    "the trade counts in total_trades only"
                ),
            )
        )
        if "Direction" in self.has:
            checks.append(
                (
                    "unknown_direction",
                    "Direction",
                    direction == _UNKNOWN,
                    lambda i: (
                        "Direction is empty"
                        if d_labels[d_codes[i]] is None
                        else f"Direction {d_labels[d_codes[i]]!r} is neither Long nor Short"
                    ),
                )
            )
        no_exit_px = np.isnan(exit_px) if "Avg_Exit_Price" in self.has else np.zeros(n, bool)
        has_exit_px = ~np.isnan(exit_px)
        checks.append(
            (
                "closed_without_exit",
                "Exit_Timestamp",
                closed & ~has_exit_day,
                lambda i: "closed trade without an Exit_Timestamp",
            )
        )
        checks.append(
            (
                "closed_without_exit",
                "Avg_Exit_Price",
                closed & has_exit_day & no_exit_px,
                lambda i: "closed trade without an Avg_Exit_Price",
            )
        )
        checks.append(
            (
                "open_with_exit",
                "Exit_Timestamp",
                opened & (has_exit_day | has_exit_px),
                lambda i: "open trade has exit values (Exit_Timestamp or Avg_Exit_Price)",
            )
        )
        if "PnL" in self.has:
            checks.append(
                (
                    "missing_pnl",
                    "PnL",
                    closed & np.isnan(pnl),
                    lambda i: "closed trade without a PnL; left out of the performance metrics",
                )
            )
        sign = np.where(direction == _SHORT, -1.0, 1.0)
        with np.errstate(invalid="ignore"):
            expected = (exit_px - entry_px) * size * sign
            mismatch = (
                has_pnl
                & (direction != _UNKNOWN)
                & ~np.isnan(expected)
                & (np.abs(pnl - expected) > _TOL)
            )
        checks.append(
            (
                "pnl_mismatch",
                "PnL",
                mismatch,
                lambda i: (
                    f"PnL {pnl[i]:g} differs from (exit − entry) × size"
                    f"{' × −1 (Short)' if direction[i] == _SHORT else ''} = {expected[i]:.4f} "
                    f"by more than {PNL_TOLERANCE}"
                ),
            )
        )
        uuid_bad, uuid_messages = self._uuid_check(
            uuid,
            ~uuid_missing,
            tickers,
            t_codes,
            strategies,
            g_codes,
            numbers["Short_Window"],
            numbers["Long_Window"],
            entry_days_lut,
            e_codes,
        )
        checks.append(("uuid_mismatch", "Position_UUID", uuid_bad, uuid_messages.__getitem__))
        self._record(rows, uuid, checks)

        # -- open positions (few: a per-row loop only over them) -------------------------------
        for i in np.flatnonzero(opened):
            self._open_position(
                int(i), rows, gid, tickers[t_codes[i]], uuid, strategies[g_codes[i]],
                int(entry_day[i]), d_labels[d_codes[i]], direction[i], numbers,
            )  # fmt: skip

    def _skipped(
        self,
        frame: pd.DataFrame,
        uuid: ObjArray,
        uuid_missing: BoolArray,
        t_codes: IntArray,
        t_labels: list[str | None],
    ) -> BoolArray:
        """Blank lines (skipped silently) and repeated header lines (skipped, reported)."""
        blank = uuid_missing & _missing(t_codes, t_labels)
        if blank.any():
            blank = blank & frame.isna().all(axis=1).to_numpy()
        header_ticker = self.dialect.columns["Ticker"].strip()
        header_uuid = self.dialect.columns["Position_UUID"].strip()
        repeated = np.zeros(len(frame), dtype=bool)
        if header_ticker in t_labels:
            repeated = t_codes == t_labels.index(header_ticker)
            repeated &= np.array([str(u).strip() == header_uuid for u in uuid], dtype=bool)
        index = np.asarray(frame.index.to_numpy(), dtype=np.int64)
        for i in np.flatnonzero(repeated):
            self._count_issue(
                Issue(
                    int(index[i]) + 2,
                    None,
                    "Ticker",
                    "repeated_header",
                    "repeated header line skipped",
                )
            )
        self.skipped_rows += int(blank.sum() + repeated.sum())
        return blank | repeated

    def _count_issue(self, issue: Issue) -> None:
        self.issue_counts[issue.kind] += 1
        if len(self.issues) < MAX_KEPT_ISSUES:
            self.issues.append(issue)

    def _numbers(self, frame: pd.DataFrame, rows: IntArray, *, tolerant: bool) -> dict[str, Any]:
        out: dict[str, FloatArray] = {}
        for column in NUMBER_COLUMNS:
            if column not in self.has:
                out[column] = np.full(len(frame), np.nan)
                continue
            if tolerant:
                raw = frame[column]
                text = raw.astype(object).where(raw.notna(), None)
                cleaned = text.map(lambda v: None if v is None else str(v).strip() or None)
                if self.dialect.decimal == ",":
                    cleaned = cleaned.map(lambda v: None if v is None else v.replace(",", "."))
                values = pd.to_numeric(cleaned, errors="coerce").to_numpy(dtype=np.float64)
                bad = np.isnan(values) & cleaned.notna().to_numpy()
                if bad.any():
                    i = int(np.flatnonzero(bad)[0])
                    raise self._fail(int(rows[i]), column, f"{raw.iloc[i]!r} is not a number")
            else:
                values = np.asarray(frame[column].to_numpy(), dtype=np.float64)
            infinite = np.isinf(values)
            if infinite.any():
                i = int(np.flatnonzero(infinite)[0])
                raise self._fail(int(rows[i]), column, f"{values[i]!r} is not a finite number")
            out[column] = values
        return out

    def _tickers(self, codes: IntArray, labels: list[str | None], rows: IntArray) -> list[str]:
        normalized: list[str] = []
        for code, label in enumerate(labels):
            if label is None:
                if (codes == code).any():
                    row = int(rows[np.flatnonzero(codes == code)[0]])
                    raise self._fail(row, "Ticker", "the ticker is empty")
                normalized.append("")
                continue
            ticker = normalize_ticker(label)
            if not is_valid_ticker(ticker):
                row = int(rows[np.flatnonzero(codes == code)[0]])
                raise self._fail(row, "Ticker", f"{label!r} is not a plausible ticker symbol")
            normalized.append(ticker)
        return normalized

    def _days(
        self,
        codes: IntArray,
        labels: list[str | None],
        rows: IntArray,
        column: str,
        *,
        required: bool,
    ) -> IntArray:
        """Epoch days per label (missing → _NO_DAY); a malformed date refuses the file."""
        lut = _parse_day_labels(labels)
        for code in np.flatnonzero(lut == _NO_DAY):
            used = np.flatnonzero(codes == code)
            if not len(used):
                continue
            row = int(rows[used[0]])
            label = labels[code]
            if label is None and required:
                raise self._fail(row, column, "the date is empty")
            if label is not None:
                raise self._fail(
                    row, column, f"{label!r} is not a date (expected YYYY-MM-DD[ HH:MM:SS])"
                )
        return lut

    def _uuid_check(
        self,
        uuid: ObjArray,
        present: BoolArray,
        tickers: list[str],
        t_codes: IntArray,
        strategies: list[str | None],
        g_codes: IntArray,
        short: FloatArray,
        long_: FloatArray,
        entry_lut: IntArray,
        e_codes: IntArray,
    ) -> tuple[BoolArray, dict[int, str]]:
        """Rows whose Position_UUID disagrees with `{TICKER}_{STRATEGY}_{SHORT}_{LONG}_{DATE}`.

        Fast path: build the expected UUID from per-value lookup tables (two string
        concatenations per row) and compare; only rows that differ are examined one by one,
        case-insensitively and number-aware, to say which part disagrees.
        """
        n = len(uuid)
        day_labels = np.datetime_as_string(entry_lut.astype("datetime64[D]")).astype(object)
        windows_ok = ~(np.isnan(short) | np.isnan(long_))
        strategy_missing = np.array([s is None for s in strategies], dtype=bool)[g_codes]
        full = present & windows_ok & ~strategy_missing
        candidates = present.copy()
        if full.any():
            pair = t_codes * len(strategies) + g_codes
            p_codes, p_uniques = pd.factorize(pair)
            prefix = np.array(
                [
                    f"{tickers[int(p) // len(strategies)]}_{strategies[int(p) % len(strategies)]}_"
                    for p in p_uniques
                ],
                dtype=object,
            )
            s_codes, s_uniques = pd.factorize(short)
            l_codes, l_uniques = pd.factorize(long_)
            width = len(l_uniques) + 1
            w_codes, w_uniques = pd.factorize(s_codes * width + l_codes)
            s_text = np.array([f"{_window_label(float(v))}_" for v in s_uniques], dtype=object)
            l_text = np.array([f"{_window_label(float(v))}_" for v in l_uniques], dtype=object)
            w_uniques = np.asarray(w_uniques, dtype=np.int64)
            middle = s_text[w_uniques // width] + l_text[w_uniques % width]
            expected = prefix[p_codes] + middle[w_codes] + day_labels[e_codes]
            candidates = present & ~(full & (expected == uuid))
        messages: dict[int, str] = {}
        bad = np.zeros(n, dtype=bool)
        for i in np.flatnonzero(candidates):
            disagreement = _uuid_disagreement(
                str(uuid[i]),
                tickers[t_codes[i]],
                strategies[g_codes[i]],
                None if np.isnan(short[i]) else float(short[i]),
                None if np.isnan(long_[i]) else float(long_[i]),
                day_labels[e_codes[i]],
            )
            if disagreement:
                bad[i] = True
                messages[int(i)] = disagreement
        return bad, messages

    def _record(
        self, rows: IntArray, uuid: ObjArray, checks: list[tuple[str, str, BoolArray, Any]]
    ) -> None:
        """Count every flagged row; keep the earliest rows' issues up to MAX_KEPT_ISSUES."""
        any_issue = np.zeros(len(rows), dtype=bool)
        room = MAX_KEPT_ISSUES - len(self.issues)
        kept: list[Issue] = []
        for kind, column, mask, message in checks:
            flagged = np.flatnonzero(mask)
            if not len(flagged):
                continue
            any_issue |= mask
            self.issue_counts[kind] += len(flagged)
            for i in flagged[:room]:
                position = None if pd.isna(uuid[i]) else str(uuid[i]).strip() or None
                kept.append(Issue(int(rows[i]), position, column, kind, message(int(i))))
        if kept:
            kept.sort(key=lambda issue: issue.row)
            self.issues.extend(kept[: max(room, 0)])
        self.rows_with_issues += int(any_issue.sum())

    def _open_position(
        self,
        i: int,
        rows: IntArray,
        gid: IntArray,
        ticker: str,
        uuid: ObjArray,
        strategy: str | None,
        entry_day: int,
        direction_label: str | None,
        direction: int,
        numbers: dict[str, FloatArray],
    ) -> None:
        def number(column: str) -> float | None:
            value = float(numbers[column][i])
            return None if math.isnan(value) else value

        entry = _day_from_epoch(entry_day)
        csv_days = number("Days_Since_Entry")
        if self.as_of is not None:
            days: int | None = (self.as_of - entry).days
        else:
            days = None if csv_days is None else int(csv_days)
        position = None if pd.isna(uuid[i]) else str(uuid[i]).strip() or None
        self.active_positions.append(
            ActivePosition(
                row=int(rows[i]),
                ticker=ticker,
                position_uuid=position,
                strategy=strategy,
                entry_date=entry,
                entry_price=number("Avg_Entry_Price"),
                position_size=number("Position_Size"),
                direction={_LONG: "Long", _SHORT: "Short"}.get(direction, direction_label),
                days_since_entry=days,
                current_unrealized_pnl=number("Current_Unrealized_PnL"),
            )
        )
        if position is not None:
            self.open_uuids.setdefault(int(gid[i]), []).append(position)

    # -- the result ---------------------------------------------------------------------------

    def finish(self, digest: str) -> TradeBook:
        if self.rows_read == 0:
            raise InputError(f"{self.path}: has a header but no trade rows.", path=self.path, row=2)
        stats: dict[str, TickerStats] = {}
        for ticker, k in sorted(self.ticker_ids.items()):
            first = int(self.first_entry[k])
            last = int(self.last_exit[k])
            stats[ticker] = TickerStats(
                ticker=ticker,
                total_trades=int(self.total[k]),
                closed_trades=int(self.closed[k]),
                active_trades=int(self.active[k]),
                total_pnl=float(self.pnl[k]),
                total_return=float(self.ret[k]),
                wins=int(self.wins[k]),
                losses=int(self.losses[k]),
                breakevens=int(self.breakevens[k]),
                first_entry=_day_from_epoch(first),
                last_exit=None if last == _NO_DAY else _day_from_epoch(last),
                open_positions=tuple(self.open_uuids.get(k, ())),
            )
        exits = [s.last_exit for s in stats.values() if s.last_exit is not None]
        summary = PortfolioSummary(
            total_trades=self.rows_read,
            closed_trades=int(self.closed.sum()),
            active_trades=int(self.active.sum()),
            unique_tickers=len(stats),
            first_entry_date=min(
                (s.first_entry for s in stats.values() if s.first_entry), default=None
            ),
            last_exit_date=max(exits, default=None),
        )
        metrics = PerformanceMetrics(
            total_wins=int(self.wins.sum()),
            total_losses=int(self.losses.sum()),
            total_breakevens=int(self.breakevens.sum()),
            total_pnl=float(self.pnl.sum()),
            gross_profit=self.gross_profit,
            gross_loss=self.gross_loss,
            average_win_return=_mean(self.win_return),
            average_loss_return=_mean(self.loss_return),
        )
        quality = DataQuality(
            rows_read=self.rows_read,
            rows_with_issues=self.rows_with_issues,
            skipped_rows=self.skipped_rows,
            issue_counts=MappingProxyType(dict(self.issue_counts)),
            issues=tuple(self.issues),
        )
        distribution = dict(sorted(self.strategies.items(), key=lambda kv: (-kv[1], kv[0])))
        positions = sorted(self.active_positions, key=lambda p: (p.entry_date, p.ticker, p.row))
        return TradeBook(
            source_path=self.path,
            sha256=digest,
            delimiter=self.dialect.delimiter,
            rows_read=self.rows_read,
            summary=summary,
            strategy_distribution=MappingProxyType(distribution),
            tickers=MappingProxyType(stats),
            metrics=metrics,
            active_positions=tuple(positions),
            quality=quality,
        )


def _mean(pair: list[float]) -> float | None:
    total, count = pair
    return None if count == 0 else total / count


def _same_number(text: str, value: float) -> bool:
    try:
        return float(text) == value
    except ValueError:
        return False


def _uuid_disagreement(
    uuid: str,
    ticker: str,
    strategy: str | None,
    short: float | None,
    long_: float | None,
    day: str | None,
) -> str:
    """Which parts of `{TICKER}_{STRATEGY}_{SHORT}_{LONG}_{YYYY-MM-DD}` disagree ('' if none)."""
    parts = uuid.strip().split("_")
    if len(parts) < 5:
        return f"Position_UUID {uuid!r} is not in the form TICKER_STRATEGY_SHORT_LONG_YYYY-MM-DD"
    u_ticker, u_strategy = parts[0], "_".join(parts[1:-3])
    u_short, u_long, u_day = parts[-3:]
    differences: list[str] = []
    if u_ticker.upper() != ticker:
        differences.append(f"Ticker {ticker!r} (UUID says {u_ticker!r})")
    if strategy is not None and u_strategy.upper() != strategy:
        differences.append(f"Strategy_Type {strategy!r} (UUID says {u_strategy!r})")
    if short is not None and not _same_number(u_short, short):
        differences.append(f"Short_Window {_window_label(short)} (UUID says {u_short!r})")
    if long_ is not None and not _same_number(u_long, long_):
        differences.append(f"Long_Window {_window_label(long_)} (UUID says {u_long!r})")
    if day is not None and u_day != day:
        differences.append(f"Entry_Timestamp date {day} (UUID says {u_day!r})")
    if not differences:
        return ""
    return f"Position_UUID {uuid!r} disagrees with the row: " + "; ".join(differences)
