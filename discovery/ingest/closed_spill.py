"""The first pass's closed trades, kept for the records: their columns spilled to a temporary file.

A report with closed-trade records needs every closed trade once more after the fetch (the
benchmark's closes and the currencies come from it). Reading the CSV a second time cost more than
the whole first pass on a 1M-trade file (pandas parses every column again, the chunks are decoded
again), so `ingest(keep_records=True)` builds each chunk's record columns while the chunk is in
hand (`closed_trades.closed_chunks`, the same function the second pass runs) and appends
them here.

Up to `HELD_TRADES` closed trades are simply held in memory (a small file leaves no trace
on disk); past that, everything goes to an unnamed temporary file (`tempfile.TemporaryFile`:
on Linux it has no name at all) under the data root's scratch folder, so a killed run leaves
nothing behind. Each chunk is one blob: an orjson header (the code tables, the arrays' dtypes
and lengths, the joined columns' byte counts) and then those bytes as they are. No pickle:
what is read back is data, whatever the file holds. Memory stays one chunk; the file holds
about 200 bytes per closed trade.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from discovery.errors import StorageError, storage_sentence
from discovery.ingest.closed_trades import ClosedChunk
from discovery.json_lines import Coded, Column, Joined

_LENGTH = 8  # the header's length, little-endian, before each blob's header
HELD_TRADES = 5_000
"""Closed trades kept in memory before the spill file is opened (a few MB of tokens)."""


class ClosedSpill:
    """Closed-trade chunks appended while the CSV is read, read back in order (`chunks`).

    `close()` drops the file (and what is held).
    """

    def __init__(self, scratch: Path | None = None) -> None:
        self.scratch = scratch
        self._file: IO[bytes] | None = None
        self._held: list[ClosedChunk] = []
        self._closed = False
        self._blobs: list[tuple[int, int]] = []  # (offset, size)
        self._end = 0
        self.count = 0

    def add(self, chunk: ClosedChunk) -> None:
        if not len(chunk):
            return
        self.count += len(chunk)
        if self._file is None and self.count <= HELD_TRADES:
            self._held.append(chunk)
            return
        held, self._held = self._held, []
        for each in (*held, chunk):
            self._write(each)

    def _write(self, chunk: ClosedChunk) -> None:
        header, payload = _encode(chunk)
        parts = [len(header).to_bytes(_LENGTH, "little"), header, *payload]
        size = sum(len(p) for p in parts)
        try:
            handle = self._open()
            handle.seek(self._end)
            handle.writelines(parts)
            handle.flush()
        except OSError as exc:
            raise self._storage_error(exc) from None
        self._blobs.append((self._end, size))
        self._end += size

    def chunks(self) -> Iterator[ClosedChunk]:
        """Every chunk added, in order. Reads by offset: two readers do not disturb each other.
        Refused once closed (what it held is gone: never an empty answer)."""
        if self._closed:
            raise ValueError("the kept closed trades were read after the book was closed")
        if self._file is None:
            yield from self._held
            return
        fd = self._file.fileno()
        for offset, size in self._blobs:
            try:
                blob = os.pread(fd, size, offset)
            except OSError as exc:
                raise self._storage_error(exc) from None
            if len(blob) != size:
                raise StorageError("the closed-trade spill file was cut short while it was read.")
            yield _decode(blob)

    def close(self) -> None:
        self._held, self._closed = [], True
        if self._file is not None:
            self._file.close()
            self._file = None

    def _open(self) -> IO[bytes]:
        if self._file is None:
            if self.scratch is not None:
                self.scratch.mkdir(parents=True, exist_ok=True)
            # closed by close(); unnamed, so even a killed run leaves no file behind
            self._file = tempfile.TemporaryFile(  # noqa: SIM115
                prefix="tradescout-closed-", dir=self.scratch
            )
        return self._file

    def _storage_error(self, exc: OSError) -> Exception:
        where = self.scratch if self.scratch is not None else Path(tempfile.gettempdir())
        return storage_sentence(where, exc, "the closed trades' temporary file") or exc


def _encode(chunk: ClosedChunk) -> tuple[bytes, list[bytes]]:
    """The header and the payload after it: each array's bytes and each joined column's
    tokens, in the order the header lists them."""
    payload: list[bytes] = []

    def array(values: np.ndarray[Any, Any]) -> list[Any]:
        small = _narrowed(values)
        payload.append(small.tobytes())
        return [small.dtype.str, len(small)]

    columns: list[list[Any]] = []
    for key, column in chunk.columns.items():
        if isinstance(column, Joined):
            payload.append(column.data)
            columns.append([key, "J", len(column.data), column.size, column.sep[0]])
        else:
            columns.append([key, "C", array(column.codes), column.table])
    header = {
        "columns": columns,
        "tickers": chunk.tickers,
        "ticker_codes": array(chunk.ticker_codes),
        "entry_ordinal": array(chunk.entry_ordinal),
        "exit_ordinal": array(chunk.exit_ordinal),
        "returns": array(chunk.returns),
    }
    return orjson.dumps(header), payload


def _narrowed(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Codes into short tables fit in fewer bytes than int64: a quarter of the file."""
    if values.dtype == np.int64 and len(values):
        low, high = int(values.min()), int(values.max())
        for small in (np.int16, np.int32):
            if np.iinfo(small).min <= low and high <= np.iinfo(small).max:
                return values.astype(small)
    return np.ascontiguousarray(values)


def _decode(blob: bytes) -> ClosedChunk:
    length = int.from_bytes(blob[:_LENGTH], "little")
    header = orjson.loads(blob[_LENGTH : _LENGTH + length])
    at = _LENGTH + length

    def array(spec: list[Any], dtype: type[Any]) -> np.ndarray[Any, Any]:
        nonlocal at
        kind, size = np.dtype(spec[0]), int(spec[1])
        values = np.frombuffer(blob, dtype=kind, count=size, offset=at)
        at += kind.itemsize * size
        return values.astype(dtype)  # a writable copy in the width the encoder expects

    columns: dict[str, Column] = {}
    for entry in header["columns"]:
        if entry[1] == "J":
            key, _, nbytes, size, sep = entry
            columns[key] = Joined(blob[at : at + nbytes], size, bytes([sep]))
            at += nbytes
        else:
            key, _, codes, table = entry
            columns[key] = Coded(array(codes, np.int64), table)
    ticker_codes = array(header["ticker_codes"], np.int64)  # read in the order written
    entry_ordinal = array(header["entry_ordinal"], np.int64)
    exit_ordinal = array(header["exit_ordinal"], np.int64)
    returns = array(header["returns"], np.float64)
    return ClosedChunk(
        columns, ticker_codes, header["tickers"], entry_ordinal, exit_ordinal, returns
    )
