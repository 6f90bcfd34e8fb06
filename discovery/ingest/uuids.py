"""Position_UUIDs of one chunk: read as fixed-width bytes, so no Python string is made per row.

Why: a file has one distinct id per row. As text, pandas builds one Python string per row while
it holds the GIL, and every check then works object by object (concatenate, compare, hash). As
`S{WIDTH}` bytes pandas copies them into one array without the GIL, and the checks are numpy
operations over the whole chunk: missing, equal to the id the row implies, and the 8-byte digest
of the duplicate check. Only the few ids a message or a record quotes become text.

An id of `WIDTH` bytes or more may have been cut, so such a file is read again with the ids as
text (`RetryTextIds`); `PositionIds` gives the same answers for both forms. pandas does not decode
bytes, so a chunk's ids are checked to be UTF-8 here (the same sentence as anywhere else).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from discovery.errors import InputError
from discovery.ingest.columns import BoolArray, IntArray
from discovery.ingest.trim import joined_plain
from services.recordclass import record

WIDTH = 64
"""Bytes per id in the fast form (real ids, `BRK-B_SMA_100_200_2015-01-02`, are ~30)."""
_LANES = WIDTH // 8
# Keys drawn once per process: which ids share a digest cannot be known from the file.
_KEYS = np.frombuffer(secrets.token_bytes(8 * (_LANES + 1)), dtype=np.uint64)
_MIX = (np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53))
_SHIFT = np.uint64(33)
_HIGH_BITS = np.uint64(0x8080808080808080)  # a byte of a non-ASCII character has its top bit set


class RetryTextIds(Exception):
    """An id filled the fixed width (it may have been cut): read the file again, ids as text."""


def empty_ids(values: npt.NDArray[Any]) -> BoolArray:
    """Which cells of an id column are empty: b"" in the bytes form (pandas reads an empty cell
    so, not as NA), NaN when read as text."""
    if values.dtype.kind == "S":
        return np.asarray(values == b"", dtype=bool)
    return np.asarray(pd.isna(values), dtype=bool)


def ids_dtype(as_text: bool) -> Any:
    """The dtype pandas reads the Position_UUID column with."""
    return object if as_text else f"S{WIDTH}"


@record
class PositionIds:
    """One chunk's ids: `values` is `S{WIDTH}` bytes (empty = missing) or, when read as text,
    objects (str, NaN = missing). `missing` is the shared empty-cell mask."""

    values: npt.NDArray[Any]
    missing: BoolArray

    @classmethod
    def of(cls, values: npt.NDArray[Any], *, utf8_error: Callable[[], InputError]) -> PositionIds:
        """The ids pandas read; raises `RetryTextIds` when one may be cut, `utf8_error()` when
        one is not UTF-8 (pandas checks text columns, not bytes)."""
        if values.dtype.kind != "S":
            return cls(values, empty_ids(values))
        values = np.ascontiguousarray(values)
        grid = values.view(np.uint8).reshape(len(values), WIDTH)
        if grid[:, -1].any():
            raise RetryTextIds
        lanes = values.view(np.uint64).reshape(len(values), _LANES)
        if np.bitwise_or.reduce(lanes, axis=None, initial=np.uint64(0)) & _HIGH_BITS:
            high = np.flatnonzero((np.bitwise_or.reduce(lanes, axis=1) & _HIGH_BITS) != 0)
            for i in high.tolist():  # rare: ids with non-ASCII characters
                try:
                    values[i].decode("utf-8")
                except UnicodeDecodeError:
                    raise utf8_error() from None
        return cls(values, grid[:, 0] == 0)

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, select: BoolArray | IntArray) -> PositionIds:
        return PositionIds(self.values[select], self.missing[select])

    @property
    def as_bytes(self) -> bool:
        return self.values.dtype.kind == "S"

    def written(self, i: int) -> str:
        """Row `i`'s id as written ('' when missing)."""
        value = self.values[i]
        if self.missing[i]:
            return ""
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)

    def position(self, i: int) -> str | None:
        """Row `i`'s id for the report: trimmed; None when missing or blank."""
        return self.written(i).strip() or None

    def positions(self, longest: int | None = None) -> list[str | None]:
        """Every row's id for the report, as `position` gives it (one list, no per-row lookup);
        one longer than `longest` once trimmed: None."""
        if self.as_bytes:  # tolist() drops the fixed width's trailing NULs
            ids = [b.decode("utf-8") for b in self.values.tolist()]
        else:
            ids = [str(v) for v in self.values.tolist()]
        trimmed = [
            None if m else i.strip() or None
            for i, m in zip(ids, self.missing.tolist(), strict=True)
        ]
        if longest is None:
            return trimmed
        return [None if i is None or len(i) > longest else i for i in trimmed]

    def joined(self, longest: int | None = None) -> str | None:
        """Every id NUL-joined, when each is stated and needs no trimming (the usual case, with
        no step per row) nor is longer than `longest`; otherwise None and `positions` says what
        each one is."""
        if self.missing.any():
            return None
        if self.as_bytes:
            text = _nul_joined(self.values).decode("utf-8")
        else:
            text = "\x00".join(str(v) for v in self.values.tolist())
        return text if joined_plain(text, len(self), longest) else None

    def is_header(self, name: str, among: BoolArray) -> BoolArray:
        """Rows of `among` whose id, trimmed, is `name` (the header's: a repeated header line)."""
        found = np.zeros(len(self), dtype=bool)
        for i in np.flatnonzero(among & ~self.missing).tolist():
            found[i] = self.written(i).strip() == name
        return found

    def equals_joined(self, parts: Sequence[tuple[Sequence[str], IntArray]]) -> BoolArray:
        """Per row, whether the id is the concatenation of `labels[codes[row]]` over `parts`
        (built per distinct label, joined per row by numpy's string add)."""
        joined: npt.NDArray[Any] | None = None
        for labels, codes in parts:
            if self.as_bytes:
                table = np.array([label.encode("utf-8") for label in labels] or [b""], dtype="S")
            else:
                table = np.array(list(labels) or [""], dtype=object)
            piece = table[codes]
            joined = piece if joined is None else joined + piece
        if joined is None:
            return np.zeros(len(self), dtype=bool)
        return np.asarray(joined == self.values, dtype=bool) & ~self.missing

    def digests(self) -> IntArray:
        """An 8-byte digest of each present id (in row order), as the duplicate check keeps."""
        present = self.values[~self.missing]
        if not self.as_bytes:
            return np.fromiter(map(hash, present), dtype=np.int64, count=len(present))
        return _mix(np.ascontiguousarray(present).view(np.uint64).reshape(len(present), _LANES))


def _nul_joined(values: npt.NDArray[Any]) -> bytes:
    """Fixed-width ids NUL-joined, their padding dropped, in one numpy gather (no bytes object
    per id). The padding is the only NUL in a cell: the stream refuses a file with one."""
    if not len(values):
        return b""
    width = values.dtype.itemsize
    grid = np.zeros((len(values), width + 1), dtype=np.uint8)
    grid[:, :width] = np.ascontiguousarray(values).view(np.uint8).reshape(len(values), width)
    keep = grid != 0
    keep[:-1, width] = True  # the separator after every id but the last
    return grid[keep].tobytes()


def _mix(lanes: npt.NDArray[np.uint64]) -> IntArray:
    """Each row's eight words folded through murmur3's 64-bit finalizer (a bijection), with a
    per-process key per word: rows that differ in one word never collide; others about 2⁻⁶⁴."""
    state = np.full(len(lanes), _KEYS[-1], dtype=np.uint64)
    word = np.empty_like(state)
    for j in range(_LANES):
        np.add(lanes[:, j], _KEYS[j], out=word)
        state ^= word
        for multiplier in _MIX:
            np.right_shift(state, _SHIFT, out=word)
            state ^= word
            state *= multiplier
        np.right_shift(state, _SHIFT, out=word)
        state ^= word
    return np.asarray(state.view(np.int64), dtype=np.int64)
