"""The column-wise JSON-lines encoder against the straightforward one (a dict per row through
`orjson.dumps`): the same bytes, so the same records with the same types, on the values that
are easy to get wrong — NaN, −0.0, huge and near-half floats, integer-valued windows, strings
with quotes, commas, backslashes, NULs, control and non-ASCII characters — and the one-pass
trimming against `str.strip`. The compiled interleave (`discovery._interleave`) and the Python
one give the same bytes, and refuse the same bad columns."""

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
    COMPILED,
    Coded,
    Column,
    Joined,
    floats,
    ints,
    joined_texts,
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
    assert both(columns) == lines
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


# The two interleaves: every column order (a coded column first, last, next to another coded
# one), the edge rows, and the columns either refuses. Where the extension is not built only
# the Python interleave is tested, and the first test below fails.

needs_compiled = pytest.mark.skipif(not COMPILED, reason="discovery._interleave is not built")


def both(columns: dict[str, Column]) -> bytes:
    """The lines from each interleave, which must be the same bytes."""
    python = json_lines(columns, compiled=False)
    if COMPILED:
        assert json_lines(columns, compiled=True) == python
        assert json_lines(columns) == python
    return python


def test_the_compiled_interleave_is_loaded() -> None:
    """The test venv's editable install compiles it (`make venv`): without it every comparison
    here would only test the Python interleave."""
    import importlib.machinery

    assert COMPILED, "discovery._interleave is not built: `pip install -e .` compiles it"
    import discovery._interleave as compiled

    assert compiled.__file__ is not None
    assert compiled.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


KINDS = ("int", "float", "window", "text", "label", "nul_text")


def column_of(kind: str, rows: list[Any]) -> tuple[Column, list[Any]]:
    """A column of one kind from the rows' draws, and the values a dict per row would hold."""
    number = [r[0] for r in rows]
    text = [r[1] for r in rows]
    code = [r[2] for r in rows]
    table: list[str | None] = ["x", None, "caf\u00e9 \\u0000", '"q"']
    if kind == "int":
        return ints(np.arange(len(rows), dtype=np.int64) - 3), [i - 3 for i in range(len(rows))]
    if kind == "float":
        return floats(np.array(number, dtype=np.float64)), [plain(v) for v in number]
    if kind == "window":
        return whole_or_floats(np.array(number, dtype=np.float64)), [
            whole_or_float(v) for v in number
        ]
    if kind == "text":
        return texts(text), text
    if kind == "label":  # code -1: the table's last entry
        return labels(np.array(code, dtype=np.int64), table), [table[c] for c in code]
    plain_text = [f"é{i}\u2028{t or ''}".replace("\x00", "") for i, t in enumerate(text)]
    return joined_texts("\x00".join(plain_text), len(rows)), plain_text


@given(
    st.lists(st.tuples(FLOATS, TEXTS, st.integers(-1, 3)), max_size=12),
    st.permutations(KINDS),
    st.integers(1, len(KINDS)),
)
def test_any_column_order_gives_the_same_bytes(rows: list[Any], kinds: Any, width: int) -> None:
    built = {kind: column_of(kind, rows) for kind in kinds[:width]}
    columns = {kind: column for kind, (column, _) in built.items()}
    want = [{kind: values[i] for kind, (_, values) in built.items()} for i in range(len(rows))]
    assert both(columns) == reference(want)


def test_edge_rows_and_orders() -> None:
    one = {"a": labels(np.array([-1]), ["x", "y"]), "b": floats(np.array([1.5]))}
    assert both(one) == b'{"a":"y","b":1.5}\n'
    coded = {
        "a": labels(np.array([0, -1, 1]), ["x", None]),
        "b": Coded(np.array([2, 0, -1]), ["1", "2", "3"]),
        "c": Coded(np.array([0, 0, 0]), ["null"]),
    }
    assert both(coded) == (
        b'{"a":"x","b":3,"c":null}\n{"a":null,"b":1,"c":null}\n{"a":null,"b":3,"c":null}\n'
    )
    nasty = {"t": texts(NASTY), "n": ints(np.arange(len(NASTY), dtype=np.int64))}
    assert both(nasty) == reference([{"t": s, "n": i} for i, s in enumerate(NASTY)])
    assert both({"only": texts(["\U0001f600"])}) == '{"only":"\U0001f600"}\n'.encode()
    assert both({"a": floats(np.array([])), "b": labels(np.array([], dtype=np.int64), [])}) == b""
    assert json_lines({}, compiled=True) == json_lines({}, compiled=False) == b""


@pytest.mark.parametrize("compiled", [pytest.param(True, marks=needs_compiled), False])
@pytest.mark.parametrize(
    "bad",
    [
        Joined(b"1,2", 3, b","),  # too few tokens
        Joined(b"1,2,3,4", 3, b","),  # too many
        Joined(b'"a"\x00"b"', 3),
        Coded(np.array([0, 1, 2]), ["a", "b"]),  # past the table
        Coded(np.array([0, -2, 0]), ["a", "b"]),  # below −1 (numpy would wrap it)
        Coded(np.array([0, 0, 0]), []),
    ],
)
def test_a_bad_column_is_refused_by_both(bad: Column, compiled: bool) -> None:
    columns = {"n": ints(np.arange(3, dtype=np.int64)), "bad": bad}
    with pytest.raises(ValueError, match=r"tokens|out of range"):
        json_lines(columns, compiled=compiled)


def test_a_separator_is_one_ascii_byte() -> None:
    for sep in (b"", b",,", "\u00e9".encode()):
        with pytest.raises(ValueError, match="one ASCII byte"):
            Joined(b"1", 1, sep)


def test_codes_of_any_int_dtype_or_layout_are_taken() -> None:
    codes = np.array([1, 0, 1, -1, 0, 0], dtype=np.int32)[::2]  # not int64, not contiguous
    want = b'{"k":"b"}\n{"k":"b"}\n{"k":"a"}\n'
    assert both({"k": labels(codes, ["a", "b"])}) == want


def interleave_raises(match: str, *args: Any) -> None:
    from discovery._interleave import interleave

    with pytest.raises(ValueError, match=match):
        interleave(*args)


@needs_compiled
def test_the_compiled_interleave_refuses_what_it_cannot_read() -> None:
    """What `json_lines` never passes, the extension refuses before writing a byte."""
    from discovery._interleave import interleave

    codes = np.array([0, -1], dtype=np.int64)
    table = [b'"a"', b'"b"']
    between = [b"{", b",", b"}\n"]
    good: list[Any] = [(b"1,2", ord(",")), (codes, table)]
    assert interleave(2, between, good) == b'{1,"a"}\n{2,"b"}\n'
    assert interleave(2, between, [(bytearray(b"1\x002"), 0), (memoryview(codes), table)]) == (
        b'{1,"a"}\n{2,"b"}\n'
    )
    assert interleave(0, [b"{", b"}\n"], [(b"", 44)]) == b""
    assert interleave(3, [b"x\n"], []) == b"x\nx\nx\n"
    interleave_raises("negative", -1, between, good)
    interleave_raises("need 3 between texts", 2, between[:2], good)
    interleave_raises(r"between\[1\] is not bytes", 2, [b"{", ",", b"}\n"], good)
    interleave_raises("not a .* pair", 2, between, [(b"1,2", 44, 0), good[1]])
    interleave_raises("not a .* pair", 2, between, [b"1,2", good[1]])
    interleave_raises("not a contiguous bytes buffer", 2, between, [("1,2", 44), good[1]])
    interleave_raises("not one ASCII byte", 2, between, [(b"1,2", 200), good[1]])
    interleave_raises("not one ASCII byte", 2, between, [(b"1,2", -1), good[1]])
    interleave_raises("has 1 tokens", 2, between, [(b"12", 44), good[1]])
    interleave_raises("more than 2 tokens", 2, between, [(b"1,2,", 44), good[1]])
    interleave_raises("3 bytes of tokens for 0 rows", 0, between, [(b"1,2", 44), good[1]])
    for wrong in (
        codes.astype(np.int32),
        codes.astype(np.float64),
        codes.astype(np.uint64),
        codes.astype(">i8"),
        np.array([[0, 1]], dtype=np.int64),
    ):
        interleave_raises("not a 1-d int64 buffer", 2, between, [good[0], (wrong, table)])
    strided = np.array([0, 9, 1, 9], dtype=np.int64)[::2]
    interleave_raises("not a C-contiguous buffer", 2, between, [good[0], (strided, table)])
    interleave_raises("not a C-contiguous buffer", 2, between, [good[0], ([0, 1], table)])
    interleave_raises("has 3 codes", 2, between, [good[0], (np.zeros(3, np.int64), table)])
    interleave_raises("code 2 at row 1", 2, between, [good[0], (np.array([0, 2]), table)])
    interleave_raises("code -2 at row 0", 2, between, [good[0], (np.array([-2, 0]), table)])
    interleave_raises("out of range for a table of 0", 2, between, [good[0], (codes, [])])
    interleave_raises("entry 1 is not bytes", 2, between, [good[0], (codes, [b"a", "b"])])
    interleave_raises("table is not a sequence", 2, between, [good[0], (codes, None)])
