"""One chunk of rows, decoded: every column typed, every per-value decision made once.

Text columns have few distinct values per chunk (tickers, statuses, dates): pandas reads them as
categories, so each decision (normalize, validate, parse a date) is made on the distinct values
only, then broadcast back through the codes. A value that cannot be used refuses the file here
(`InputError`: file, row, column, at most ~80 characters of the value); blank lines and repeated
header lines are screened out first. The decoder keeps only what must carry across chunks: the
ticker and strategy ids.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from discovery.errors import InputError, echo
from discovery.ingest.columns import (
    MAX_MAGNITUDE,
    MAX_STRATEGIES,
    MAX_STRATEGY_CHARS,
    NUMBER_COLUMNS,
    RECORD_ID_COLUMNS,
    BoolArray,
    FloatArray,
    IntArray,
)
from discovery.ingest.dialect import Dialect, bad_bytes_error
from discovery.ingest.stream import RetryTolerant
from discovery.ingest.uuids import PositionIds, empty_ids
from discovery.tickers import is_valid_ticker, normalize_ticker
from services.recordclass import record

NO_DAY = np.iinfo(np.int64).min
CLOSED, OPEN, UNKNOWN = 0, 1, 2
LONG, SHORT = 0, 1
_STATUS_CLASSES = {"closed": CLOSED, "open": OPEN, "active": OPEN}
_DIRECTIONS = {"long": LONG, "short": SHORT}
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

Labels = list[str | None]


@record(frozen=False)
class Rows:
    """One chunk's trade rows as arrays (blank and repeated-header lines already dropped).

    `*_codes` index the matching label lists; `gid` / `sid` are file-wide ticker / strategy ids
    (-1: strategy missing). Days are epoch days (`NO_DAY` when absent).
    """

    rows: IntArray
    uuid: PositionIds
    t_codes: IntArray
    tickers: list[str]
    gid: IntArray
    status: IntArray
    s_codes: IntArray
    s_labels: Labels
    g_codes: IntArray
    strategies: Labels
    sid: IntArray
    e_codes: IntArray
    entry_lut: IntArray
    entry_day: IntArray
    exit_lut: IntArray
    exit_day: IntArray
    exit_stamp: IntArray  # ns since the epoch as written (NO_DAY when absent): the exit order
    x_codes: IntArray
    x_labels: Labels
    direction: IntArray
    d_codes: IntArray
    d_labels: Labels
    number: dict[str, FloatArray]
    record_labels: dict[str, tuple[IntArray, Labels]]  # Trade_Quality: codes, trimmed labels
    record_ids: dict[str, PositionIds]  # X_Status

    def __len__(self) -> int:
        return len(self.rows)


class Decoder:
    """Turns pandas chunks (canonical column names) into `Rows`; state carried across chunks."""

    def __init__(self, path: Path, dialect: Dialect, columns: Sequence[str]) -> None:
        self.path = path
        self.dialect = dialect
        self.has = frozenset(c for c in dialect.columns if c in columns)
        self.ticker_ids: dict[str, int] = {}
        self.strategy_ids: dict[str, int] = {}
        self.skipped_rows = 0

    # -- errors -----------------------------------------------------------------------------

    def fail(self, row: int, column: str, what: str) -> InputError:
        return InputError(
            f"{self.path}: row {row}, column {column}: {what}.",
            path=self.path,
            row=row,
            column=column,
        )

    # -- one chunk --------------------------------------------------------------------------

    def decode(
        self,
        frame: pd.DataFrame,
        *,
        tolerant: bool,
        on_repeated_header: Callable[[int], None],
        text_columns: Sequence[str] = (),
        lenient_numbers: Sequence[str] = (),
    ) -> Rows | None:
        """The chunk's trade rows, or None when it holds none (only blank / header lines).

        `text_columns` are handed on as labels (codes into trimmed labels) or, the id columns
        (`RECORD_ID_COLUMNS`), as `PositionIds`; `lenient_numbers` (read as text) as numbers
        where they are numbers and NaN elsewhere.
        """
        if frame.empty:
            return None
        uuid = PositionIds.of(self._ids(frame), utf8_error=self._not_utf8)
        t_codes, t_labels = self._codes(frame, "Ticker")
        skipped = self._skipped(frame, uuid, t_codes, t_labels, on_repeated_header)
        if skipped is not None:
            frame = frame[~skipped]
            if frame.empty:
                return None
            uuid = uuid[~skipped]
            t_codes, t_labels = self._codes(frame, "Ticker")
        rows = np.asarray(frame.index.to_numpy(), dtype=np.int64) + 2
        number = self._numbers(frame, rows, tolerant=tolerant)
        tickers = self._tickers(t_codes, t_labels, rows)
        gid_lut = np.array([self._id(self.ticker_ids, t) if t else -1 for t in tickers], np.int64)

        s_codes, s_labels = self._codes(frame, "Status")
        status_lut = np.array(
            [_STATUS_CLASSES.get((s or "").lower(), UNKNOWN) for s in s_labels], dtype=np.int64
        )
        g_codes, g_labels = self._codes(frame, "Strategy_Type")
        strategies = [None if s is None else s.upper() for s in g_labels]
        sid_lut = self._strategy_ids(strategies, g_codes, rows)
        e_codes, e_labels = self._codes(frame, "Entry_Timestamp")
        entry_lut, _ = self._stamps(e_codes, e_labels, rows, "Entry_Timestamp", required=True)
        x_codes, x_labels = self._codes(frame, "Exit_Timestamp")
        exit_lut, exit_ns = self._stamps(x_codes, x_labels, rows, "Exit_Timestamp", required=False)
        d_codes, d_labels = self._codes(frame, "Direction")
        direction_lut = np.array(
            [_DIRECTIONS.get((d or "").lower(), UNKNOWN) for d in d_labels], dtype=np.int64
        )
        return Rows(
            rows=rows,
            uuid=uuid,
            t_codes=t_codes,
            tickers=tickers,
            gid=gid_lut[t_codes],
            status=status_lut[s_codes],
            s_codes=s_codes,
            s_labels=s_labels,
            g_codes=g_codes,
            strategies=strategies,
            sid=sid_lut[g_codes],
            e_codes=e_codes,
            entry_lut=entry_lut,
            entry_day=entry_lut[e_codes],
            exit_lut=exit_lut,
            exit_day=exit_lut[x_codes],
            exit_stamp=exit_ns[x_codes],
            x_codes=x_codes,
            x_labels=x_labels,
            direction=direction_lut[d_codes],
            d_codes=d_codes,
            d_labels=d_labels,
            number={**number, **{c: self._lenient(frame, c) for c in lenient_numbers}},
            record_labels={
                c: self._codes(frame, c) for c in text_columns if c not in RECORD_ID_COLUMNS
            },
            record_ids={
                c: PositionIds.of(self._ids(frame, c), utf8_error=self._not_utf8)
                for c in text_columns
                if c in RECORD_ID_COLUMNS
            },
        )

    def _lenient(self, frame: pd.DataFrame, column: str) -> FloatArray:
        """An optional number column (read as text, or as numbers when every value is one): what
        is not a finite, plausible number is missing (NaN), never a refusal (the first pass did
        not read it)."""
        if column not in self.has:
            return np.full(len(frame), np.nan)
        if frame[column].dtype == np.float64:  # parsed as numbers already (the same numbers)
            values = frame[column].to_numpy(dtype=np.float64, copy=True)
        else:
            values = self._numbers_of_text(frame[column])
        with np.errstate(invalid="ignore"):
            values[~(np.abs(values) < MAX_MAGNITUDE)] = np.nan
        return values

    def _numbers_of_text(self, column: pd.Series) -> FloatArray:
        text = column.astype(object)
        if self.dialect.decimal == ",":
            text = text.map(lambda v: v.replace(",", ".") if isinstance(v, str) else v)
        return np.array(pd.to_numeric(text, errors="coerce"), dtype=np.float64)

    # -- steps ------------------------------------------------------------------------------

    def _codes(self, frame: pd.DataFrame, column: str) -> tuple[IntArray, Labels]:
        return factorize(frame[column] if column in self.has else None, len(frame))

    def _ids(self, frame: pd.DataFrame, column: str = "Position_UUID") -> npt.NDArray[Any]:
        if column in self.has:
            return np.asarray(frame[column].to_numpy())
        return np.full(len(frame), np.nan, dtype=object)

    def _not_utf8(self) -> InputError:
        d = self.dialect
        return bad_bytes_error(
            self.path, delimiter=d.delimiter, header=d.header, size=d.size, fault="utf8"
        )

    @staticmethod
    def _id(ids: dict[str, int], key: str) -> int:
        found = ids.get(key)
        if found is None:
            found = ids[key] = len(ids)
        return found

    def _skipped(
        self,
        frame: pd.DataFrame,
        uuid: PositionIds,
        t_codes: IntArray,
        t_labels: Labels,
        on_repeated_header: Callable[[int], None],
    ) -> BoolArray | None:
        """Blank lines (skipped silently) and repeated header lines (skipped, reported)."""
        blank = uuid.missing & missing(t_codes, t_labels)
        if blank.any():  # an empty id is b"" in the bytes form, not NA: the rest decides
            ids = [c for c in ("Position_UUID", *RECORD_ID_COLUMNS) if c in frame.columns]
            blank = blank & frame.drop(columns=ids).isna().all(axis=1).to_numpy()
            for column in ids[1:]:
                blank = blank & empty_ids(frame[column].to_numpy())
        header_ticker = self.dialect.columns["Ticker"].strip()
        header_uuid = self.dialect.columns["Position_UUID"].strip()
        repeated = np.zeros(len(frame), dtype=bool)
        if header_ticker in t_labels:
            repeated = uuid.is_header(header_uuid, t_codes == t_labels.index(header_ticker))
        if not blank.any() and not repeated.any():
            return None
        index = np.asarray(frame.index.to_numpy(), dtype=np.int64)
        for i in np.flatnonzero(repeated):
            on_repeated_header(int(index[i]) + 2)
        self.skipped_rows += int(blank.sum() + repeated.sum())
        return np.asarray(blank | repeated, dtype=bool)

    def _numbers(self, frame: pd.DataFrame, rows: IntArray, *, tolerant: bool) -> dict[str, Any]:
        out: dict[str, FloatArray] = {}
        n = len(frame)
        for column in NUMBER_COLUMNS:
            if column not in self.has:
                out[column] = np.full(n, np.nan)
                continue
            out[column] = self.number(frame, column, rows, tolerant=tolerant)
        return out

    def number(
        self, frame: pd.DataFrame, column: str, rows: IntArray, *, tolerant: bool
    ) -> FloatArray:
        """A number column as float64; a value that is not a finite, plausible number refuses
        the file (in the fast path it asks for the text-typed re-read that can quote it)."""
        if not tolerant:
            values = np.asarray(frame[column].to_numpy(), dtype=np.float64)
            with np.errstate(invalid="ignore"):
                if (np.abs(values) >= MAX_MAGNITUDE).any():
                    raise RetryTolerant
            return values
        raw = frame[column]
        text = raw.astype(object).where(raw.notna(), None)
        cleaned = text.map(lambda v: None if v is None else str(v).strip() or None)
        if self.dialect.decimal == ",":
            cleaned = cleaned.map(lambda v: None if v is None else v.replace(",", "."))
        values = pd.to_numeric(cleaned, errors="coerce").to_numpy(dtype=np.float64)
        bad = np.isnan(values) & cleaned.notna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise self.fail(int(rows[i]), column, f"{echo(raw.iloc[i])} is not a number")
        with np.errstate(invalid="ignore"):
            huge = np.abs(values) >= MAX_MAGNITUDE
        if huge.any():
            i = int(np.flatnonzero(huge)[0])
            what = (
                "is too large to be a finite number"
                if np.isinf(values[i])
                else f"is too large to be a real amount (the limit is {MAX_MAGNITUDE:.0e})"
            )
            raise self.fail(int(rows[i]), column, f"{echo(raw.iloc[i])} {what}")
        return values

    def _tickers(self, codes: IntArray, labels: Labels, rows: IntArray) -> list[str]:
        normalized: list[str] = []
        for code, label in enumerate(labels):
            if label is None:
                if (codes == code).any():
                    row = int(rows[np.flatnonzero(codes == code)[0]])
                    raise self.fail(row, "Ticker", "the ticker is empty")
                normalized.append("")
                continue
            ticker = normalize_ticker(label)
            if not is_valid_ticker(ticker):
                row = int(rows[np.flatnonzero(codes == code)[0]])
                raise self.fail(row, "Ticker", f"{echo(label)} is not a plausible ticker symbol")
            normalized.append(ticker)
        return normalized

    def _strategy_ids(self, strategies: Labels, codes: IntArray, rows: IntArray) -> IntArray:
        lut = np.full(len(strategies), -1, dtype=np.int64)
        for code, label in enumerate(strategies):
            if label is None:
                continue
            if label not in self.strategy_ids:
                used = np.flatnonzero(codes == code)
                if not len(used):
                    continue
                row = int(rows[used[0]])
                if len(label) > MAX_STRATEGY_CHARS:
                    raise self.fail(
                        row,
                        "Strategy_Type",
                        f"{echo(label)} is not a strategy name (longer than "
                        f"{MAX_STRATEGY_CHARS} characters)",
                    )
                if len(self.strategy_ids) >= MAX_STRATEGIES:
                    raise self.fail(
                        row,
                        "Strategy_Type",
                        f"more than {MAX_STRATEGIES:,} different strategies; is a column shifted?",
                    )
            lut[code] = self._id(self.strategy_ids, label)
        return lut

    def _stamps(
        self, codes: IntArray, labels: Labels, rows: IntArray, column: str, *, required: bool
    ) -> tuple[IntArray, IntArray]:
        """Epoch days and ns per label (missing → NO_DAY); a malformed date refuses the file."""
        stamps = parse_stamp_labels(labels)
        lut = _days_of(stamps)
        ns = np.asarray(stamps.astype(np.int64), dtype=np.int64)  # NaT is NO_DAY too
        for code in np.flatnonzero(lut == NO_DAY):
            used = np.flatnonzero(codes == code)
            if not len(used):
                continue
            row = int(rows[used[0]])
            label = labels[code]
            if label is None and required:
                raise self.fail(row, column, "the date is empty")
            if label is not None:
                raise self.fail(
                    row, column, f"{echo(label)} is not a date (expected YYYY-MM-DD[ HH:MM:SS])"
                )
        return lut, ns


# --------------------------------------------------------------------------------------------
# Per-value helpers.


def factorize(values: pd.Series | None, length: int) -> tuple[IntArray, Labels]:
    """Codes and trimmed labels, in order of first appearance; a missing or blank cell gets the
    label None (never code -1), and the last label is always None.

    A category column (as pandas reads the label columns) is factorized through its small
    integer codes, so only the categories the chunk uses become labels (a chunk cut down to its
    trade rows no longer has the header's "Ticker", say).
    """
    if values is None:
        return np.zeros(length, dtype=np.int64), [None]
    if isinstance(values.dtype, pd.CategoricalDtype):
        raw_codes, used = pd.factorize(np.asarray(values.cat.codes.to_numpy(), dtype=np.int64))
        used = np.asarray(used, dtype=np.int64)
        # One gather over the chunk's categories, not one Index lookup per label.
        table = np.append(np.asarray(values.cat.categories, dtype=object), np.nan)
        uniques: list[object] = table[used].tolist()  # code -1 (missing) takes the trailing NaN
    else:
        raw_codes, found = pd.factorize(values.to_numpy(dtype=object))
        uniques = list(found)
    codes = np.asarray(raw_codes, dtype=np.int64)
    present = [not _is_na(u) for u in uniques]
    labels: Labels = [str(u).strip() or None for u, p in zip(uniques, present, strict=True) if p]
    if not all(present):  # renumber so that the missing cells share the trailing None
        remap = np.cumsum(present, dtype=np.int64) - 1
        remap[~np.asarray(present, dtype=bool)] = len(labels)
        codes = remap[codes]
    if (codes < 0).any():
        codes = np.where(codes < 0, len(labels), codes)
    labels.append(None)
    return codes, labels


def _is_na(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def missing(codes: IntArray, labels: Sequence[str | None]) -> BoolArray:
    lut = np.array([label is None for label in labels], dtype=bool)
    return np.asarray(lut[codes], dtype=bool)


def parse_stamp_labels(labels: Sequence[str | None]) -> npt.NDArray[np.datetime64]:
    """Timestamps as written → datetime64[ns] (NaT when missing or not ISO 8601).

    The time as written counts (a zone, if any, is dropped): ISO 8601 only (`2025-04-14`,
    `2025-04-14 00:00:00`, `2025-04-14T09:30:00Z`); `04/14/2025` could be read two ways, so it is
    refused rather than guessed.
    """
    text = pd.Index([label or "" for label in labels], dtype=object)
    try:
        stamps = pd.to_datetime(text, format="ISO8601", errors="coerce")
        if getattr(stamps, "tz", None) is not None:
            stamps = stamps.tz_localize(None)
        out = np.asarray(stamps.to_numpy(), dtype="datetime64[ns]")
    except (ValueError, TypeError, OverflowError):
        # Mixed time zones (or other oddities) in one chunk: parse each distinct value.
        out = np.array([_parse_one(label) for label in text], dtype="datetime64[ns]")
    out[[label is None for label in labels]] = np.datetime64("NaT")
    return out


def _days_of(stamps: npt.NDArray[np.datetime64]) -> IntArray:
    days = np.asarray(stamps.astype("datetime64[D]").astype(np.int64), dtype=np.int64)
    days[np.isnat(stamps)] = NO_DAY
    return days


def _parse_one(label: str) -> np.datetime64:
    if not label:
        return np.datetime64("NaT")
    try:
        moment = datetime.fromisoformat(label.replace("Z", "+00:00")).replace(tzinfo=None)
    except ValueError:
        return np.datetime64("NaT")
    try:
        return np.datetime64(moment, "ns")
    except (ValueError, OverflowError):
        return np.datetime64("NaT")


def window_label(value: float) -> str | None:
    if math.isnan(value):
        return None
    return str(int(value)) if value.is_integer() else repr(value)


def epoch_day(day: date) -> int:
    return day.toordinal() - _EPOCH_ORDINAL


def day_from_epoch(value: int) -> date:
    return date.fromordinal(value + _EPOCH_ORDINAL)
