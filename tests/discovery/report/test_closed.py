"""Closed-trade records: the JSON-lines file beyond the inline limit holds exactly the records
the inline form would, one per line, in file order; rounding agrees with Python's `round`."""

from __future__ import annotations

import math
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from discovery.ingest.closed_trades import iter_closed_chunks, rounded
from discovery.json_lines import floats, tokens
from discovery.report.closed import closed_trade_records
from discovery.runs import discover
from tests.discovery.report.test_sections import book_of, spy

pytest_plugins = ["tests.discovery.report.test_sections"]


def test_beyond_the_inline_limit_the_records_are_json_lines(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = book_of(root)
    currencies = {"AAA": "USD", "BBB.AX": "AUD", "CCC": None}
    inline = discover.closed_trades_section(book, spy(), currencies, tmp_path / "x.jsonl", 2)
    assert isinstance(inline, list) and len(inline) == 5
    assert not (tmp_path / "x.jsonl").exists()

    monkeypatch.setattr(discover, "INLINE_LIMIT", 4)
    spill = tmp_path / "history" / "mix.closed_trades.jsonl"
    ref = discover.closed_trades_section(book, spy(), currencies, spill, 2)
    assert ref == {"path": "history/mix.closed_trades.jsonl", "count": 5}
    lines = spill.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 6  # one record per line, a newline after each
    assert [orjson.loads(line) for line in lines[:-1]] == inline
    assert [r["row"] for r in inline] == [2, 3, 4, 5, 6]
    # AAA 2026-01-05 → 01-15: SPY 404 → 410; the trade's Return 0.1 less that
    first = inline[0]
    assert first["benchmark_return"] == round(410 / 404 - 1, 6)
    assert first["excess_return"] == round(0.1 - (410 / 404 - 1), 6)
    assert (first["currency"], inline[3]["currency"]) == ("USD", None)
    book.exits.close()


def test_records_are_the_same_whatever_the_chunk_size(root: Path) -> None:
    book = book_of(root)
    by_chunk = {
        size: list(closed_trade_records(iter_closed_chunks(book, chunk_rows=size), spy(), {}))
        for size in (100, 2, 3)
    }
    assert by_chunk[2] == by_chunk[3] == by_chunk[100]
    book.exits.close()


@given(
    st.lists(
        st.floats(min_value=-1e15, max_value=1e15)
        | st.just(math.nan)
        | st.integers(-(10**9), 10**9).map(lambda n: (n + 0.5) / 100)
        | st.integers(-(10**9), 10**9).map(lambda n: (n + 0.5) / 1_000_000),
        max_size=50,
    ),
    st.sampled_from([2, 6]),
)
def test_rounding_is_pythons(values: list[float], places: int) -> None:
    import numpy as np

    got = orjson.loads("[" + ",".join(tokens(floats(rounded(np.array(values), places)))) + "]")
    want = [None if math.isnan(v) else round(v, places) + 0.0 for v in values]
    assert got == want


def test_an_infinite_value_is_refused() -> None:
    import numpy as np

    with pytest.raises(ValueError, match="non-finite"):
        rounded(np.array([1.0, math.inf]), 6)
