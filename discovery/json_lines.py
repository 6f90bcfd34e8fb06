"""Columns → JSON lines, with no Python work per value.

A million records as dicts cost seconds just to build; here each column becomes its JSON tokens
in C (`orjson` over a numpy array, or over all of a column's strings joined into one, then
split), or each distinct value is encoded once and broadcast through row codes. The tokens are
what `orjson.dumps` writes for the same Python values (floats as shortest round-trip, NaN as
null), so a line parses to the record a dict would give.

A chunk's lines are then the keys and each column's tokens interleaved, row by row. That step
is compiled (`discovery._interleave`, built by `setup.py`): in Python it means one str per token
(splitting each joined column, broadcasting each table) and one `str.join` over them all, which
was three quarters of the encoding's time; the extension copies the tokens straight out of each
column's UTF-8 bytes into one `bytes`, checking the token counts and the codes first. Where it
was not built, the same bytes come from `str.join` (`json_lines(..., compiled=False)`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson
import pandas as pd

from discovery.ingest.columns import FloatArray, IntArray
from services.recordclass import record

try:
    from discovery._interleave import interleave as _interleave
except ImportError:  # built where no C compiler was: the same bytes, interleaved in Python
    _interleave = None  # type: ignore[assignment]  # (mypy reads the stub either way)

COMPILED = _interleave is not None
"""Whether the compiled interleave is there (the test venv must have it)."""

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_SEP = "\x00"  # between tokens: a NUL is never in the file, and orjson escapes one in a string
_BSEP = b"\x00"
_ESCAPED_SEP = b"\\u0000"


@record
class Joined:
    """`size` JSON tokens as UTF-8, `sep` between each two (`sep` never inside a token). Bytes
    from orjson to the file: the compiled interleave copies them as they are."""

    data: bytes
    size: int
    sep: bytes = _BSEP

    def __post_init__(self) -> None:
        if len(self.sep) != 1 or not self.sep.isascii():
            raise ValueError(f"a token separator is one ASCII byte, not {self.sep!r}")

    def tokens(self) -> list[str]:
        return self.data.decode().split(self.sep.decode()) if self.size else []


@record
class Coded:
    """Row codes into a short table of JSON tokens (code −1: the table's last token)."""

    codes: IntArray
    table: list[str]

    @property
    def size(self) -> int:
        return len(self.codes)

    def keyed(self, prefix: str, suffix: str) -> list[str]:
        """Each row's token with `prefix` and `suffix` (the table's tokens built once)."""
        table = np.array([prefix + t + suffix for t in self.table], dtype=object)
        return list(table[self.codes].tolist())

    def tokens(self) -> list[str]:
        return self.keyed("", "")


Column = Joined | Coded


def tokens(column: Column) -> list[str]:
    """A column's tokens one by one (what a line holds after the key)."""
    return column.tokens()


def floats(values: FloatArray) -> Joined:
    """Floats as JSON (NaN: null; −0.0 written as 0.0, as `x + 0.0` gives). Refuses inf: the
    report never carries one."""
    if np.isinf(values).any():
        raise ValueError("a non-finite value reached the closed-trade records")
    plain = np.ascontiguousarray(values, dtype=np.float64) + 0.0
    return Joined(orjson.dumps(plain, option=_NUMPY)[1:-1], len(plain), b",")


def ints(values: IntArray) -> Joined:
    whole = np.ascontiguousarray(values, dtype=np.int64)
    return Joined(orjson.dumps(whole, option=_NUMPY)[1:-1], len(whole), b",")


def whole_or_floats(values: FloatArray) -> Coded:
    """Integer-valued floats as JSON integers, others as floats, NaN as null (a window of 20 is
    `20`, not `20.0`); each distinct value encoded once."""
    codes, uniques = pd.factorize(values)  # NaN: code -1
    uniques = np.asarray(uniques, dtype=np.float64)
    whole = np.isfinite(uniques) & (uniques == np.floor(uniques))
    table = np.array([*tokens(floats(uniques)), "null"], dtype=object)
    if whole.any():
        table[: len(uniques)][whole] = tokens(ints(uniques[whole].astype(np.int64)))
    return Coded(np.asarray(codes, dtype=np.int64), list(table.tolist()))


def texts(values: Sequence[str | None]) -> Joined:
    """Strings (None: null) as JSON strings."""
    if None not in values:
        return _quoted(values)  # type: ignore[arg-type]  # no None among them
    present = [v for v in values if v is not None]
    quoted = _quoted(present)
    table = np.full(len(values), "null", dtype=object)
    table[np.array([v is not None for v in values], dtype=bool)] = tokens(quoted)
    return Joined(_SEP.join(table.tolist()).encode(), len(values))


def _quoted(strings: Sequence[str]) -> Joined:
    joined = _SEP.join(strings)
    if joined.count(_SEP) != max(len(strings) - 1, 0):  # a NUL of its own: encoded alone
        return Joined(_BSEP.join(orjson.dumps(s) for s in strings), len(strings))
    return joined_texts(joined, len(strings))


def joined_texts(joined: str, size: int) -> Joined:
    """`size` strings joined by NUL (none holding one) as JSON strings, escaped by orjson in one
    call: encoded as one JSON string and cut where the NULs went (`\\u0000`, which nothing else
    encodes to while no string has a backslash; otherwise each string is encoded alone)."""
    if not size:
        return Joined(b"", 0)
    if joined.isascii():
        raw = joined.encode("ascii")
        if _verbatim(raw, size):
            return Joined(b'"' + raw.replace(_BSEP, b'"' + _BSEP + b'"') + b'"', size)
    if "\\" in joined:
        parts = joined.split(_SEP)
        return Joined(_BSEP.join(orjson.dumps(s) for s in parts), size)
    return Joined(orjson.dumps(joined).replace(_ESCAPED_SEP, b'"' + _BSEP + b'"'), size)


def _verbatim(raw: bytes, size: int) -> bool:
    """ASCII `raw` printable, without a quote or a backslash, apart from the `size - 1` NULs:
    each string is its own JSON text between quotes (what orjson would write, without the
    call)."""
    if b'"' in raw or b"\\" in raw or b"\x7f" in raw:
        return False
    codes = np.frombuffer(raw, dtype=np.uint8)
    return np.count_nonzero(codes < 0x20) == np.count_nonzero(codes == 0) == size - 1


def labels(codes: IntArray, table: Sequence[str | None]) -> Coded:
    """Row codes into a short table of labels (None: null): each label encoded once."""
    return Coded(codes, tokens(texts(table)))


def json_lines(columns: Mapping[str, Column], *, compiled: bool | None = None) -> bytes:
    """One JSON object per row, keys in column order, a newline after each.

    `compiled`: None interleaves in C when the extension is built, in Python when not; True
    or False asks for one (the tests compare them). Either refuses, with ValueError, a column
    whose token count is not the row count or whose codes are out of its table.
    """
    if not columns:
        return b""
    sizes = {c.size for c in columns.values()}
    if len(sizes) != 1:
        raise ValueError("the record columns differ in length")
    rows = sizes.pop()
    if not rows:
        return b""
    keys = [orjson.dumps(k).decode() + ":" for k in columns]
    between = ["{" + keys[0], *("," + k for k in keys[1:]), "}\n"]  # before each, and the end
    listed = list(columns.values())
    if compiled is None:
        compiled = COMPILED
    if not compiled:
        return _python_lines(rows, between, listed)
    if _interleave is None:
        raise RuntimeError("discovery._interleave is not built (pip install -e . builds it)")
    return _interleave(
        rows,
        [b.encode() for b in between],
        [
            (c.data, c.sep[0])
            if isinstance(c, Joined)
            else (np.ascontiguousarray(c.codes, dtype=np.int64), [t.encode() for t in c.table])
            for c in listed
        ],
    )


def _python_lines(rows: int, between: list[str], listed: list[Column]) -> bytes:
    """The interleave in Python: one join over interleaved slots. A coded column's tokens
    carry the text around them (its key, and the next key when the next column is split
    tokens), which costs nothing per row; split tokens get their key as a constant slot."""
    for i, column in enumerate(listed):
        if isinstance(column, Coded) and len(column.codes):
            low, high = int(column.codes.min()), int(column.codes.max())
            if low < -1 or high >= len(column.table):
                raise ValueError(
                    f"column {i}'s codes {low}..{high} are out of range for a table of "
                    f"{len(column.table)}"
                )
    slots: list[list[str] | str] = []
    lead = between[0]
    for i, column in enumerate(listed):
        after = between[i + 1]
        if isinstance(column, Coded):
            takes_after = i + 1 == len(listed) or isinstance(listed[i + 1], Joined)
            slots.append(column.keyed(lead, after if takes_after else ""))
            lead = "" if takes_after else after
        else:
            if lead:
                slots.append(lead)
            split = column.tokens()
            if len(split) != rows:
                raise ValueError(f"column {i} has {len(split)} tokens, not one per row ({rows})")
            slots.append(split)
            lead = after
    if lead:
        slots.append(lead)
    width = len(slots)
    parts: list[str] = [""] * (rows * width)
    for i, slot in enumerate(slots):
        parts[i::width] = [slot] * rows if isinstance(slot, str) else slot
    return "".join(parts).encode()


def records_of(lines: bytes) -> list[dict[str, Any]]:
    """The records the lines hold, parsed back (the inline form reads what the file would)."""
    return [orjson.loads(line) for line in lines.split(b"\n")[:-1]]
