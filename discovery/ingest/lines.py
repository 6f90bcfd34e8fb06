"""Where in the file: the line (and column) of a bad byte, for the error path only.

pandas says that a chunk failed, not where; when it does, the file is scanned once more, line by
line, to name the row and the column in the sentence. Line breaks are `\\r\\n`, `\\n` or a
classic-Mac `\\r`, as pandas reads them. The scan never goes past the snapshot length the read
started with, and keeps at most `_KEEP_BYTES` of any line (a 1 GB single line is scanned, not
held), so locating an error is bounded in memory like the read itself.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Literal

BOM = codecs.BOM_UTF8
_BREAK = re.compile(rb"\r\n|\r|\n")
_READ_BYTES = 1 << 20
_KEEP_BYTES = 1 << 20

Fault = Literal["nul", "utf8"]


def _segments(handle: BinaryIO, limit: int) -> Iterator[tuple[bytes, bool]]:
    """(piece of a line, whether a line break ends it), over the first `limit` bytes."""
    carry = b""
    remaining = limit
    while remaining > 0:
        block = handle.read(min(_READ_BYTES, remaining))
        if not block:
            break
        remaining -= len(block)
        data = carry + block
        carry = b""
        if data.endswith(b"\r") and remaining > 0:
            data, carry = data[:-1], b"\r"  # the LF of a CRLF may start the next block
        start = 0
        for match in _BREAK.finditer(data):
            yield data[start : match.start()], True
            start = match.end()
        if start < len(data):
            yield data[start:], False
    if carry:
        yield b"", True


def _bad_lines(handle: BinaryIO, limit: int, fault: Fault) -> Iterator[tuple[int, bytes]]:
    """(line number, the line's first `_KEEP_BYTES`) of every line that has the fault."""
    number, kept, bad = 1, b"", False
    decoder = codecs.getincrementaldecoder("utf-8")()
    for piece, ends in _segments(handle, limit):
        if number == 1 and not kept and piece.startswith(BOM):
            piece = piece[len(BOM) :]
        if len(kept) < _KEEP_BYTES:
            kept += piece[: _KEEP_BYTES - len(kept)]
        if not bad:
            if fault == "nul":
                bad = b"\x00" in piece
            else:
                try:
                    decoder.decode(piece, final=ends)
                except UnicodeDecodeError:
                    bad = True
        if ends:
            if bad:
                yield number, kept
            number, kept, bad = number + 1, b"", False
            decoder.reset()
    if bad or (fault == "utf8" and kept and not _complete(decoder)):
        yield number, kept


def _complete(decoder: codecs.IncrementalDecoder) -> bool:
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _column_of(line: bytes, delimiter: str, header: tuple[str, ...]) -> str | None:
    """The header name of the first cell holding a bad byte (NUL or not UTF-8), if known."""
    text = line.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    try:
        cells = next(csv.reader([text], delimiter=delimiter), [])
    except csv.Error:  # e.g. a cell over csv's field limit: the row is still named
        return None
    for index, cell in enumerate(cells):
        if "\ufffd" in cell and index < len(header):
            return header[index].strip() or None
    return None


def locate(
    path: Path, limit: int, delimiter: str, header: tuple[str, ...], fault: Fault
) -> tuple[int, str | None]:
    """The first line (1-based) with the fault within the first `limit` bytes, and its column."""
    try:
        with path.open("rb") as handle:
            for number, line in _bad_lines(handle, limit, fault):
                return number, _column_of(line, delimiter, header)
    except OSError:
        pass
    return 1, None
