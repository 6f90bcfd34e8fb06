"""The chunk stream: the bytes pandas parses, hashed as they pass, turned into typed chunks.

- The byte stream serves at most the snapshot length taken when the read began (a file that
  grows while it is read is read as it was), refuses NUL bytes as they pass, and hashes and
  UTF-8-checks every byte on a helper thread (hashlib releases the GIL; an ASCII block only
  needs `bytes.isascii()`). pandas decodes only the columns we read, so this is what catches a
  non-UTF-8 byte in a column we never look at.
- pandas' chunks are read with explicit dtypes and only the columns we use; every parser
  failure becomes one sentence naming the row (and the column where it can be known).
- Each chunk after the first is parsed on a worker thread while the caller decodes and checks
  the one before (`read_ahead`): pandas tokenizes and converts numbers without the GIL, and so
  does most of numpy, so on two cores the parse and the checks overlap. One more chunk in
  memory, whatever the file's size.
"""

from __future__ import annotations

import codecs
import functools
import hashlib
import io
import queue
import re
import threading
import warnings
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from discovery.errors import InputError
from discovery.ingest.columns import (
    LABEL_COLUMNS,
    NUMBER_COLUMNS,
    NUMBER_NA,
    RECORD_ID_COLUMNS,
    RECORD_LABEL_COLUMNS,
    RECORD_NUMBER_COLUMNS,
    TEXT_NA,
)
from discovery.ingest.dialect import Dialect, bad_bytes_error
from discovery.ingest.lines import BOM
from discovery.ingest.uuids import ids_dtype

_READ_BYTES = 256 * 1024
_PARSER_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_PARSER_EOF = re.compile(r"EOF inside string starting at row (\d+)")
_NUMBERS = frozenset(NUMBER_COLUMNS + RECORD_NUMBER_COLUMNS)
_LABELS = frozenset(LABEL_COLUMNS + RECORD_LABEL_COLUMNS)
_IDS = frozenset(("Position_UUID", *RECORD_ID_COLUMNS))
_END = object()
T = TypeVar("T")


class RetryTolerant(Exception):
    """A number did not parse (or is out of range) in the fast path: re-read with numbers as text
    to tell a repeated header line (skipped) from a bad value (refused with its row and text)."""


class _BinaryData(Exception):
    """Raised from inside pandas' read loop when a NUL byte shows up past the sniffed head."""


class HashingReader(io.RawIOBase):
    """A read-only binary stream over the first `limit` bytes of a file, hashed as it is served."""

    def __init__(self, raw: io.BufferedReader, limit: int) -> None:
        super().__init__()
        self._raw = raw
        self._left = limit
        self._sha = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=16)
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._first = True
        self.not_utf8 = False
        self.served = 0
        self._thread = threading.Thread(target=self._hash_loop, name="ingest-sha256", daemon=True)
        self._thread.start()
        self._done = False

    def _hash_loop(self) -> None:
        while (block := self._queue.get()) is not None:
            self._sha.update(block)
            first, self._first = self._first, False
            if self.not_utf8 or (block.isascii() and not self._decoder.getstate()[0]):
                continue
            try:
                self._decoder.decode(block[3:] if first and block[:3] == BOM else block)
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
        want = self._left if size is None or size < 0 else min(size, self._left)
        if want <= 0:
            return b""
        block = self._raw.read(want)
        if b"\x00" in block:
            raise _BinaryData
        if block:
            self._left -= len(block)
            self.served += len(block)
            self._queue.put(block)
        return block

    def readinto(self, buffer: Any) -> int:
        block = self.read(len(buffer))
        buffer[: len(block)] = block
        return len(block)

    def hexdigest(self) -> str:
        """Hash the rest of the snapshot (pandas may stop early); the snapshot's sha256."""
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


class ChunkStream:
    """pandas' chunks of one file (canonical column names), then its sha256 and size checks.

    Iterate once; afterwards `sha256` is the snapshot's digest. Raises `InputError` for anything
    pandas cannot parse, `RetryTolerant` when a number needs a second, text-typed look. Number
    columns named in `as_text` are always read as text (the per-trade pass's optional extras,
    which must never refuse a file the first pass accepted). Position_UUIDs and X_Status ids are
    read as fixed-width bytes unless `ids_as_text` (see `uuids`).
    """

    def __init__(
        self,
        path: Path,
        dialect: Dialect,
        columns: tuple[str, ...],
        chunk_rows: int,
        *,
        tolerant: bool,
        ids_as_text: bool = False,
        as_text: tuple[str, ...] = (),
    ) -> None:
        self.path = path
        self.dialect = dialect
        self.tolerant = tolerant
        self.ids_as_text = ids_as_text
        self.as_text = frozenset(as_text)
        self.chunk_rows = chunk_rows
        self.used = {c: a for c, a in dialect.columns.items() if c in columns}
        self.sha256 = ""

    def _reader(self, stream: HashingReader) -> Any:
        number_type: Any = object if self.tolerant else np.float64
        dtypes = {
            a: number_type if c in _NUMBERS and c not in self.as_text else object
            for c, a in self.used.items()
        }
        for c, a in self.used.items():
            if c in _LABELS:
                dtypes[a] = "category"
            elif c in _IDS:
                dtypes[a] = ids_dtype(self.ids_as_text)
        na_values = {a: NUMBER_NA if c in _NUMBERS else TEXT_NA for c, a in self.used.items()}
        return functools.partial(
            pd.read_csv,
            stream,
            sep=self.dialect.delimiter,
            decimal=self.dialect.decimal,
            usecols=list(self.used.values()),
            dtype=dtypes,
            chunksize=self.chunk_rows,
            encoding="utf-8",
            encoding_errors="strict",
            engine="c",
            index_col=False,
            skip_blank_lines=False,
            keep_default_na=False,
            na_values=na_values,
        )

    def __iter__(self) -> Iterator[pd.DataFrame]:
        rename = {a: c for c, a in self.used.items()}
        with self.path.open("rb") as raw:
            stream = HashingReader(raw, self.dialect.size)
            try:
                for chunk in read_ahead(self._chunks(self._reader(stream))):
                    yield chunk.rename(columns=rename)
                self.sha256 = stream.hexdigest()
            except _BinaryData:
                raise self._bad_bytes("nul") from None
            finally:
                stream.close()
        if stream.not_utf8:
            raise self._bad_bytes("utf8")
        if stream.served != self.dialect.size:
            raise InputError(
                f"{self.path}: the file became shorter while it was read "
                f"({stream.served:,} of {self.dialect.size:,} bytes); read it again once it is "
                "no longer being written.",
                path=self.path,
            )

    def _bad_bytes(self, fault: Any) -> InputError:
        d = self.dialect
        return bad_bytes_error(
            self.path, delimiter=d.delimiter, header=d.header, size=d.size, fault=fault
        )

    def _chunks(self, open_reader: Any) -> Generator[pd.DataFrame, None, None]:
        """pandas' chunks, with every parser failure turned into one sentence (or a retry)."""
        path = self.path
        iterator: Iterator[pd.DataFrame] | None = None
        while True:
            try:
                if iterator is None:  # pandas reads the header and the first block here
                    # In the calling thread (see `read_ahead`), before any worker runs: the
                    # warnings filter is process-wide. pandas compares a row's field count with
                    # the header's while it opens the file and reads the first rows.
                    with warnings.catch_warnings():
                        warnings.simplefilter("error", pd.errors.ParserWarning)
                        iterator = iter(open_reader())
                        chunk = next(iterator)
                else:
                    chunk = next(iterator)
            except StopIteration:
                return
            except pd.errors.EmptyDataError:
                raise InputError(
                    f"{path}: the file is empty; expected a CSV header and trades.", path=path
                ) from None
            except UnicodeDecodeError:
                raise self._bad_bytes("utf8") from None
            except pd.errors.ParserWarning:
                raise InputError(
                    f"{path}: the first trade rows have more fields than the header (row 1).",
                    path=path,
                    row=2,
                ) from None
            except pd.errors.ParserError as exc:
                raise _parser_error(path, self.dialect, str(exc)) from None
            except (ValueError, TypeError, OverflowError):
                if not self.tolerant:
                    raise RetryTolerant from None
                raise InputError(
                    f"{path}: a value could not be read; check the numbers and quoting.", path=path
                ) from None
            yield chunk


def read_ahead(items: Generator[T, None, None]) -> Iterator[T]:
    """`items` in order, each next one produced on a worker thread while the caller works on
    the one before. The first is produced here, in the calling thread.

    An error from `items` is raised in the caller at the item it replaces; when the caller
    stops early, the worker finishes the item it is on before `items` is closed.
    """
    item: Any = next(items, _END)
    if item is _END:
        return
    with ThreadPoolExecutor(1, thread_name_prefix="ingest-parse") as worker:
        try:
            while item is not _END:
                ahead = worker.submit(next, items, _END)
                yield item
                item = None  # the caller's reference is the only one while the next is parsed
                item = ahead.result()
        finally:
            worker.shutdown(wait=True)
            items.close()


def _parser_error(path: Path, dialect: Dialect, message: str) -> InputError:
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
