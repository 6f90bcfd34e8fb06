"""Dialect: delimiter, decimal mark and the header, decided from the first bytes of the file.

Only the head is read (64 KB): enough for the header and the first rows, whatever the file's
size. An empty, binary or non-UTF-8 head is refused here, before pandas sees the file.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType

from discovery.errors import InputError, echo
from discovery.ingest.columns import RECORD_COLUMNS, REQUIRED_COLUMNS
from discovery.ingest.lines import BOM, Fault, locate
from services.recordclass import record

_SNIFF_BYTES = 64 * 1024
_DECIMAL_COMMA = re.compile(r"-?\d+,\d+")
_BREAK = re.compile(r"\r\n|\r|\n")


@record
class Dialect:
    """How one file is written. `size` is the snapshot: no read ever goes past it, so a file
    that grows while it is read is read as it was when the read began."""

    delimiter: str
    decimal: str
    header: tuple[str, ...]
    columns: MappingProxyType[str, str]  # canonical name -> name as written in the header
    size: int


def bad_bytes_error(
    path: Path, *, delimiter: str, header: tuple[str, ...], size: int, fault: Fault
) -> InputError:
    """The sentence for a NUL or non-UTF-8 byte, naming its row and (when known) its column."""
    row, column = locate(path, size, delimiter, header, fault)
    where = f"row {row}" + (f", column {column}" if column else "")
    if fault == "nul":
        what = "contains binary data (NUL bytes); this is not a CSV text file"
    else:
        what = "contains bytes that are not UTF-8; re-export the file as UTF-8 CSV"
    return InputError(f"{path}: {where} {what}.", path=path, row=row, column=column)


def sniff(path: Path, size: int) -> Dialect:
    """Read the file's head: refuse empty/binary/non-UTF-8 early; find delimiter and columns."""
    try:
        with path.open("rb") as handle:
            head = handle.read(min(_SNIFF_BYTES, size))
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror}).", path=path) from None
    if head.startswith(BOM):
        head = head[len(BOM) :]
    if not head.strip():
        raise InputError(f"{path}: the file is empty; expected a CSV header and trades.", path=path)
    lossy = head.decode("utf-8", errors="replace")
    first = _BREAK.split(lossy, maxsplit=1)[0]
    if b"\x00" in head or not _is_utf8(head, final=len(head) >= size - len(BOM)):
        delimiter = ";" if first.count(";") > first.count(",") else ","
        try:
            header = tuple(next(csv.reader([first.replace("\x00", "")], delimiter=delimiter)))
        except (csv.Error, StopIteration):
            header = ()
        fault: Fault = "nul" if b"\x00" in head else "utf8"
        raise bad_bytes_error(path, delimiter=delimiter, header=header, size=size, fault=fault)
    text = head.decode("utf-8", errors="ignore")  # at most a cut character at the end
    lines = _BREAK.split(text, maxsplit=21)
    header_line = lines[0]
    if not header_line.strip():
        raise InputError(f"{path}: row 1 is empty; expected the CSV header.", path=path, row=1)
    try:
        comma = next(csv.reader([header_line]))
        semi = next(csv.reader([header_line], delimiter=";"))
    except csv.Error:
        raise InputError(
            f"{path}: the header (row 1) is not a CSV line of column names.", path=path, row=1
        ) from None
    delimiter = ";" if len(semi) > len(comma) else ","
    header = tuple(semi if delimiter == ";" else comma)
    decimal = "."
    if delimiter == ";":
        try:
            cells = [c.strip() for row in csv.reader(lines[1:21], delimiter=";") for c in row]
        except csv.Error:
            cells = []
        if any(_DECIMAL_COMMA.fullmatch(c) for c in cells):
            decimal = ","
    return Dialect(delimiter, decimal, header, map_columns(path, header), size)


def _is_utf8(data: bytes, *, final: bool) -> bool:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data, final=final)
    except UnicodeDecodeError:
        return False
    return True


def map_columns(path: Path, header: Sequence[str]) -> MappingProxyType[str, str]:
    """Match our column names to the header (trimmed, case-insensitive); refuse duplicates."""
    seen: dict[str, int] = {}
    for position, raw in enumerate(header, start=1):
        name = raw.strip().lower()
        if not name:
            continue
        if name in seen:
            raise InputError(
                f"{path}: the header (row 1) names column {echo(raw.strip())} twice "
                f"(columns {seen[name]} and {position}); remove the duplicate.",
                path=path,
                row=1,
                column=raw.strip()[:80],
            )
        seen[name] = position
    columns: dict[str, str] = {}
    for canonical in RECORD_COLUMNS:
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
