"""The column-wise JSON-lines encoder against the straightforward one (a dict per row through
`orjson.dumps`): the same bytes, so the same records with the same types, on the values that
are easy to get wrong — NaN, −0.0, huge and near-half floats, integer-valued windows, strings
with quotes, commas, backslashes, NULs, control and non-ASCII characters — and the one-pass
trimming against `str.strip`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from discovery.ingest.closed_trades import rounded
from discovery.ingest.trim import ASCII_SPACE, join_plain, trimmed
from discovery.json_lines import (
    floats,
    ints,
    json_lines,
    labels,
    records_of,
    texts,
    tokens,
    whole_or_floats,
)

NASTY = [
    "",
    " ",
    'a "quoted" word',
    "a,b",
    '","',
    ',"',
    "back\\slash",
    "\\u0000",
    "\\",
    "nul\x00inside",
    "line\nbreak",
    "tab\t",
    "\x01\x1f\x7f",
    "caf\u00e9",
    "\u2028\u2029",
    "\U0001f600",
    "null",
    "Poor Setup - High Risk, Low Reward",
]
FLOATS = st.floats(min_value=-1e15, max_value=1e15) | st.sampled_from(
    [math.nan, -0.0, 0.0, 0.5, 2.5, 1e-7, 5e-324, 123456789012345.67, 0.1 + 0.2, 1e15 - 1]
)
TEXTS = st.one_of(st.none(), st.text(max_size=12), st.sampled_from(NASTY))


def plain(value: float) -> float | None:
    """The reference's float: None for NaN, −0.0 as 0.0."""
    return None if math.isnan(value) else value + 0.0


def whole_or_float(value: float) -> int | float | None:
    v = plain(value)
    return None if v is None else int(v) if v.is_integer() else v


def strict(value: Any) -> Any:
    """A parsed JSON value with each number's type kept (1 == 1.0 in Python)."""
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strict(v) for v in value]
    return (type(value).__name__, value)


def reference(records: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in records)


@given(
    st.lists(st.tuples(FLOATS, FLOATS, TEXTS, st.integers(0, 3), TEXTS), max_size=40),
    st.sampled_from([2, 6]),
)
def test_lines_are_the_straightforward_encoders(rows: list[Any], places: int) -> None:
    table: list[str | None] = ["SMA", None, 'E"MA', "caf\u00e9"]
    price = np.array([r[0] for r in rows], dtype=np.float64)
    window = np.array([r[1] for r in rows], dtype=np.float64)
    text = [r[2] for r in rows]
    codes = np.array([r[3] for r in rows], dtype=np.int64)
    ident = [r[4] for r in rows]
    columns = {
        "row": ints(np.arange(2, len(rows) + 2, dtype=np.int64)),
        "price": floats(price),
        "pnl": floats(rounded(price, places)),
        "window": whole_or_floats(window),
        "text": texts(text),
        "strategy": labels(codes, table),
        "id": texts(ident),
    }
    want = [
        {
            "row": i + 2,
            "price": plain(r[0]),
            "pnl": plain(round(r[0], places)),
            "window": whole_or_float(r[1]),
            "text": r[2],
            "strategy": table[r[3]],
            "id": r[4],
        }
        for i, r in enumerate(rows)
    ]
    lines = json_lines(columns)
    assert lines == reference(want)
    assert [strict(r) for r in records_of(lines)] == [strict(r) for r in want]


def test_each_tricky_value_alone() -> None:
    values = [math.nan, -0.0, 0.0, 1e15 - 0.5, -1e15 + 0.5, 5e-324, 2.675, 1.005, 20.0, -3.0]
    assert tokens(floats(np.array(values))) == [orjson.dumps(plain(v)).decode() for v in values]
    assert tokens(floats(np.array([-0.0]))) == ["0.0"]
    assert tokens(whole_or_floats(np.array([20.0, -0.0, 20.5, math.nan, 1e15 - 1]))) == [
        "20",
        "0",
        "20.5",
        "null",
        "999999999999999",
    ]
    assert tokens(texts(NASTY)) == [orjson.dumps(s).decode() for s in NASTY]
    assert tokens(texts([None, "a", None])) == ["null", '"a"', "null"]
    assert tokens(labels(np.array([2, 0, -1]), ["x", None, 'y"'])) == ['"y\\""', '"x"', '"y\\""']


def test_an_infinite_value_is_refused() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        floats(np.array([1.0, math.inf]))


def test_no_rows_and_unequal_columns() -> None:
    assert json_lines({"a": floats(np.array([])), "b": texts([])}) == b""
    with pytest.raises(ValueError, match="differ in length"):
        json_lines({"a": floats(np.array([1.0])), "b": texts([])})


def test_the_ascii_space_is_strs() -> None:
    assert set(ASCII_SPACE) == {chr(c) for c in range(128) if chr(c).isspace()}


STRIPPABLE = st.text(
    alphabet=st.sampled_from([*ASCII_SPACE, "\u00a0", "\u3000", "\x85", "a", "b", ",", '"', "é"]),
    max_size=8,
)


@given(st.lists(STRIPPABLE | st.sampled_from(NASTY), max_size=30), st.sampled_from([None, 3, 64]))
def test_trimming_is_strs(strings: list[str], longest: int | None) -> None:
    def one(s: str) -> str | None:
        t = s.strip()
        return t if t and (longest is None or len(t) <= longest) else None

    want = [one(s) for s in strings]
    assert trimmed(strings, longest) == want
    joined = join_plain(strings, longest)
    if joined is not None:  # only ever when nothing needs trimming
        assert want == strings and joined.split("\x00") == strings
    assert join_plain(["ab", math.nan]) is None  # a missing cell
