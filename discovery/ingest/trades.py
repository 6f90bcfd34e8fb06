"""Stage 1 — ingest: stream a trade-history CSV into a bounded `TradeBook`.

Why it is built this way:
- Real fills exports are large, so the file is read in chunks with explicit dtypes and only the
  columns we use; each chunk is aggregated with vectorized numpy/pandas operations and dropped.
  Memory is O(tickers + open positions), not O(rows) (plus an 8-byte digest per Position_UUID
  for the duplicate check).
- The pieces, one concern each: `dialect` (delimiter, decimal mark, header, from the head),
  `stream` (the snapshot-bounded, hashed byte stream and pandas' chunks), `chunk` (one chunk
  decoded into typed arrays), `checks` (the data-quality checks), `accumulator` (what is kept
  between chunks), `analytics` (the foldable per-strategy / per-month sums).
- Bad input is one sentence naming file, row and column (`InputError`, exit 2); a row that is
  usable but inconsistent becomes a data-quality `Issue` with its row number. docs/ingest_rules.md
  lists which is which.

Row numbers are spreadsheet rows: the header is row 1, the first trade is row 2.
"""

from __future__ import annotations

import os
import time
from datetime import date
from pathlib import Path

from discovery.errors import InputError
from discovery.ingest import CHUNK_ROWS
from discovery.ingest.accumulator import Accumulator
from discovery.ingest.checks import ISSUE_KINDS, PNL_TOLERANCE
from discovery.ingest.closed_spill import ClosedSpill
from discovery.ingest.columns import RECORD_NUMBER_COLUMNS, REQUIRED_COLUMNS, USED_COLUMNS
from discovery.ingest.dialect import Dialect, sniff
from discovery.ingest.models import TradeBook
from discovery.ingest.stream import ChunkStream, RetryTolerant
from discovery.ingest.uuids import RetryTextIds

__all__ = [
    "ISSUE_KINDS",
    "PNL_TOLERANCE",
    "REQUIRED_COLUMNS",
    "USED_COLUMNS",
    "TradeBook",
    "ingest",
    "open_snapshot",
]


def open_snapshot(path: Path) -> Dialect:
    """The file's dialect and snapshot length; a missing or non-regular file is refused."""
    path = Path(path)
    try:
        info = os.stat(path)
    except OSError:
        raise InputError(f"{path}: no such trade-history file.", path=path) from None
    if not path.is_file():
        raise InputError(f"{path}: no such trade-history file (not a regular file).", path=path)
    return sniff(path, _whole_lines(path, info.st_size))


_TAIL_BYTES = 1 << 20
_SETTLE_SECONDS = 0.05


def _whole_lines(path: Path, size: int) -> int:
    """The snapshot length: the size at the start, cut back to the last line break when the
    file is still growing and the snapshot ends inside a line (a row being written)."""
    if size == 0:
        return size
    try:
        with path.open("rb") as handle:
            start = max(0, size - _TAIL_BYTES)
            handle.seek(start)
            tail = handle.read(size - start)
            if tail.endswith((b"\n", b"\r")):
                return size
            grown = os.fstat(handle.fileno()).st_size > size
            if not grown:  # a finished file without a final line break, or a writer pausing
                time.sleep(_SETTLE_SECONDS)
                grown = os.fstat(handle.fileno()).st_size > size
    except OSError:
        return size
    if not grown:
        return size
    cut = max(tail.rfind(b"\n"), tail.rfind(b"\r"))
    return start + cut + 1 if cut >= 0 else size


def ingest(
    path: Path,
    *,
    chunk_rows: int = CHUNK_ROWS,
    as_of: date | None = None,
    scratch_dir: Path | None = None,
    keep_records: bool = False,
) -> TradeBook:
    """Stream the trade-history CSV at `path` into a `TradeBook`.

    Pure apart from reading the file and, for files with more than 262,144 closed trades, the
    sorted runs of their exit order written to a temporary directory under `scratch_dir` (the
    system's by default; see `drawdown.ExitOrder`). `as_of` (optional) is the day
    `days_since_entry` of open positions is counted to; without it the CSV's own
    `Days_Since_Entry` is reported. `keep_records`: also read the record-only columns and
    keep every closed trade's record columns in a temporary file under `scratch_dir`
    (`book.closed`, see `closed_spill`), so the records need no second read of the file; close
    the book (`book.close()`) once done with it. Raises `InputError` (one sentence with file,
    row and column) for input that cannot be used.
    """
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    path = Path(path)
    dialect = open_snapshot(path)
    tolerant = ids_as_text = False
    while True:  # at most three reads: each retry switches one of the two flags on for good
        try:
            records = ClosedSpill(scratch_dir) if keep_records else None
            return _read(
                path, dialect, chunk_rows, as_of, scratch_dir, tolerant, ids_as_text, records
            )
        except RetryTolerant:
            # A cell did not parse as a number: re-read with numbers as text to find out whether
            # it is a repeated header line (skipped, reported) or a bad value (refused with its
            # row).
            tolerant = True
        except RetryTextIds:
            # A Position_UUID filled the fixed width of the fast form: re-read with ids as text.
            ids_as_text = True


def _read(
    path: Path,
    dialect: Dialect,
    chunk_rows: int,
    as_of: date | None,
    scratch: Path | None,
    tolerant: bool,
    ids_as_text: bool,
    records: ClosedSpill | None,
) -> TradeBook:
    book = Accumulator(path, dialect, as_of, scratch, records=records)
    stream = ChunkStream(
        path,
        dialect,
        book.columns,
        chunk_rows,
        tolerant=tolerant,
        ids_as_text=ids_as_text,
        # The optional numbers as numbers where the mark is a dot: one that is not a number
        # only sends the read to the tolerant path, where it becomes NaN (never a refusal).
        as_text=RECORD_NUMBER_COLUMNS if dialect.decimal != "." else (),
    )
    try:
        for chunk in stream:
            book.add(chunk, tolerant=tolerant)
        return book.finish(stream.sha256, tolerant=tolerant, ids_as_text=ids_as_text)
    except BaseException:
        book.exits.close()  # a refused or retried read leaves no spilled runs behind
        if records is not None:
            records.close()
        raise
