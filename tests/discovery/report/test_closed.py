"""Closed-trade records: the JSON-lines file beyond the inline limit holds exactly the records
the inline form would, one per line, in file order; rounding agrees with Python's `round`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from discovery.ingest.closed_trades import RECORD_KEYS, iter_closed_chunks, rounded
from discovery.json_lines import floats, tokens
from discovery.report.closed import closed_trade_records
from discovery.runs import discover
from tests.discovery.report.test_sections import book_of, spy
from tests.discovery.test_json_lines import strict

pytest_plugins = ["tests.discovery.report.test_sections"]


def test_beyond_the_inline_limit_the_records_are_json_lines(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = book_of(root)
    currencies = {"AAA": "USD", "BBB.AX": "AUD", "CCC": None}
    inline = discover.closed_trades_section(book, spy(), currencies, tmp_path / "x.jsonl", 2, "mix")
    assert isinstance(inline, list) and len(inline) == 5
    assert not (tmp_path / "x.jsonl").exists()

    monkeypatch.setattr(discover, "INLINE_LIMIT", 4)
    spill = tmp_path / "history" / "mix.closed_trades.jsonl"
    ref = discover.closed_trades_section(book, spy(), currencies, spill, 2, "mix")
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


TRICKY_HEADER = (
    "Position_UUID,Ticker,Strategy_Type,Short_Window,Long_Window,Entry_Timestamp,Exit_Timestamp,"
    "Avg_Entry_Price,Avg_Exit_Price,Position_Size,Direction,PnL,Return,Status,"
    "Max_Favourable_Excursion,Max_Adverse_Excursion,Exit_Efficiency,Trade_Quality,X_Status"
)
TRICKY_ROWS = [
    # padded id, a fractional window, -0.0 PnL, a quoted label with a comma, a 19-digit id
    "  AAA_1  ,AAA,sma,10,20.5,2026-01-05,2026-01-15,100.125,110,2,Long,-0.0,0.1,Closed,"
    '0.12,0.02,0.5,"Poor Setup - High Risk, Low Reward",1769731445675839191',
    # quotes, a backslash and non-ASCII text; no MFE/MAE; an unreadable efficiency
    "BBB_2,BBB,EMA,5,10,2026-01-06,2026-01-20,50,45,10,Short,50.005,0.1,Closed,,,n/a,"
    '"say ""hi"" \\ café",id\u00e9',
    # blank labels, an id longer than a label may be, a near-half Return
    "CCC_3,CCC,SMA,10,20,2026-02-03,2026-02-13,30,30,1,Long,0,0.0000005,Closed,0.1,0,,  ,"
    + "9" * 70,
    # an open position: no record
    "AAA_4,AAA,SMA,10,20,2026-03-10,,100,,3,Long,,,Open,,,,,",
]


def tricky_book(tmp_path: Path, header: str, rows: list[str], *, keep: bool = False) -> Any:
    from discovery.ingest.trades import ingest

    csv = tmp_path / "tricky.csv"
    csv.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return ingest(csv, keep_records=keep, chunk_rows=2)


@pytest.mark.parametrize("keep", [False, True], ids=["second-pass", "kept-by-first-pass"])
def test_tricky_values_give_the_records_written_out_by_hand(tmp_path: Path, keep: bool) -> None:
    """Both ways to the records (a second read of the file, or the first pass's kept chunks)
    give the same; the 70-digit X_Status does not fit the fixed-width bytes, so either read
    switches the ids to text, and the record says null."""
    book = tricky_book(tmp_path, TRICKY_HEADER, TRICKY_ROWS, keep=keep)
    assert (book.closed is not None) is keep
    assert book.ids_as_text is keep  # only the first pass that reads X_Status had to switch
    got = list(closed_trade_records(iter_closed_chunks(book, chunk_rows=2), None, {"AAA": "USD"}))
    base = {"benchmark_return": None, "excess_return": None}
    want = [
        {
            "row": 2, "position_uuid": "AAA_1", "ticker": "AAA", "strategy": "SMA",
            "short_window": 10, "long_window": 20.5, "entry_date": "2026-01-05",
            "exit_date": "2026-01-15", "entry_price": 100.125, "exit_price": 110.0,
            "direction": "Long", "position_size": 2.0, "pnl": 0.0, "return": 0.1,
            "duration_days": 10, "mfe": 0.12, "mae": 0.02, "mfe_mae_ratio": 6.0,
            "exit_efficiency": 0.5, "trade_quality": "Poor Setup - High Risk, Low Reward",
            "x_status": "1769731445675839191", "currency": "USD", **base,
        },
        {
            "row": 3, "position_uuid": "BBB_2", "ticker": "BBB", "strategy": "EMA",
            "short_window": 5, "long_window": 10, "entry_date": "2026-01-06",
            "exit_date": "2026-01-20", "entry_price": 50.0, "exit_price": 45.0,
            "direction": "Short", "position_size": 10.0, "pnl": round(50.005, 2), "return": 0.1,
            "duration_days": 14, "mfe": None, "mae": None, "mfe_mae_ratio": None,
            "exit_efficiency": None, "trade_quality": 'say "hi" \\ café', "x_status": "idé",
            "currency": None, **base,
        },
        {
            "row": 4, "position_uuid": "CCC_3", "ticker": "CCC", "strategy": "SMA",
            "short_window": 10, "long_window": 20, "entry_date": "2026-02-03",
            "exit_date": "2026-02-13", "entry_price": 30.0, "exit_price": 30.0,
            "direction": "Long", "position_size": 1.0, "pnl": 0.0, "return": round(5e-7, 6),
            "duration_days": 10, "mfe": 0.1, "mae": 0.0, "mfe_mae_ratio": None,
            "exit_efficiency": None, "trade_quality": None, "x_status": None,
            "currency": None, **base,
        },
    ]  # fmt: skip
    assert [strict(r) for r in got] == [strict(r) for r in want]
    assert orjson.dumps(got[0]["pnl"]) == b"0.0"  # -0.0 written as 0.0
    book.close()


def test_x_status_ids_read_as_bytes_are_trimmed_and_kept_up_to_their_width(
    tmp_path: Path,
) -> None:
    """Ids that fit the fixed width stay bytes (no re-read): padded ones are trimmed, blank
    ones and missing ones are null, a 63-byte one is whole, and a non-ASCII one is text."""
    row = (
        "T{i},AAA,SMA,10,20,2026-01-05,2026-01-15,100,110,2,Long,20,0.1,Closed,0.12,0.02,0.5,G,{x}"
    )
    statuses = ["  42  ", "", "   ", "7" * 63, "id\u00e9", "1769731445675839191"]
    rows = [row.format(i=i, x=x) for i, x in enumerate(statuses)]
    for keep in (False, True):
        book = tricky_book(tmp_path, TRICKY_HEADER, rows, keep=keep)
        got = list(closed_trade_records(iter_closed_chunks(book, chunk_rows=4), None, {}))
        assert not book.ids_as_text
        assert [r["x_status"] for r in got] == [
            "42",
            None,
            None,
            "7" * 63,
            "id\u00e9",
            "1769731445675839191",
        ]
        book.close()


@pytest.mark.parametrize("keep", [False, True], ids=["second-pass", "kept-by-first-pass"])
def test_blank_lines_are_skipped_where_x_status_is_read_as_bytes(
    tmp_path: Path, keep: bool
) -> None:
    """A blank line, and one of empty cells, is skipped: its empty X_Status is b"" in the
    bytes form, not NA, and still counts as empty (it once made the line a trade without a
    ticker, refused)."""
    row = (
        "T{i},AAA,SMA,10,20,2026-01-05,2026-01-15,100,110,2,Long,20,0.1,Closed,0.12,0.02,0.5,G,{i}"
    )
    rows = [row.format(i=1), "", "," * TRICKY_HEADER.count(","), row.format(i=2)]
    book = tricky_book(tmp_path, TRICKY_HEADER, rows, keep=keep)
    got = list(closed_trade_records(iter_closed_chunks(book, chunk_rows=2), None, {}))
    assert [(r["row"], r["x_status"]) for r in got] == [(2, "1"), (5, "2")]
    assert book.summary.closed_trades == 2
    book.close()


def test_a_file_without_the_optional_columns_gives_nulls(tmp_path: Path) -> None:
    header = TRICKY_HEADER.rsplit(",Exit_Efficiency", 1)[0]
    rows = [",".join(r.split(",")[:16]) for r in TRICKY_ROWS[2:]]
    book = tricky_book(tmp_path, header, rows)
    (record,) = closed_trade_records(iter_closed_chunks(book), None, {})
    assert (record["exit_efficiency"], record["trade_quality"], record["x_status"]) == (
        None,
        None,
        None,
    )
    assert list(record) == [*RECORD_KEYS, "currency", "benchmark_return", "excess_return"]
    book.exits.close()


def test_text_among_the_efficiencies_later_in_the_file_gives_null_once(tmp_path: Path) -> None:
    """The optional numbers are parsed as numbers first; text in a later chunk starts the pass
    again with them as text, without handing out the earlier chunks twice."""
    row = (
        "T{i},AAA,SMA,10,20,2026-01-05,2026-01-15,100,110,2,Long,20,0.1,Closed,0.12,0.02,{e},G,{i}"
    )
    efficiencies = ["0.5", "", "1e3", "-0.25", "abc", "0.75", "2"]
    rows = [row.format(i=i, e=e) for i, e in enumerate(efficiencies)]
    book = tricky_book(tmp_path, TRICKY_HEADER, rows)
    for size in (2, 3, 100):
        got = list(closed_trade_records(iter_closed_chunks(book, chunk_rows=size), None, {}))
        assert [r["row"] for r in got] == list(range(2, 9))
        assert [r["exit_efficiency"] for r in got] == [0.5, None, 1000.0, -0.25, None, 0.75, 2.0]
    book.exits.close()


RUN_A, RUN_B, RUN_C = (
    "20261201T010000Z-aaaaaaaa",
    "20261202T010000Z-bbbbbbbb",
    "20261203T010000Z-cccccccc",
)


def test_a_rerun_on_the_same_inputs_links_the_earlier_file(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same CSV, currencies and benchmark closes (up to the last exit): the earlier run's
    file, linked under the new run's name, not encoded again; anything different: a new one."""
    book = book_of(root)
    currencies = {"AAA": "USD", "BBB.AX": "AUD", "CCC": None}
    monkeypatch.setattr(discover, "INLINE_LIMIT", 4)
    history = tmp_path / "history"

    def section(run: str, bench: Any, cur: dict[str, str | None]) -> Any:
        spill = history / f"mix_{run}.closed_trades.jsonl"
        return discover.closed_trades_section(book, bench, cur, spill, 2, "mix"), spill

    first, a = section(RUN_A, spy(), currencies)
    assert first["count"] == 5

    def no_encoding(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("encoded again")

    with monkeypatch.context() as patch:
        patch.setattr(discover, "closed_trade_lines", no_encoding)
        later = spy()
        later.days.append(later.days[-1] + 400)  # a close after the last exit changes nothing
        later.prices.append(999.0)
        second, b = section(RUN_B, later, currencies)
    assert second == {"path": f"history/{b.name}", "count": 5}
    assert b.read_bytes() == a.read_bytes() and b.stat().st_ino == a.stat().st_ino

    # Another currency for one ticker: other records, written anew.
    third, c = section(RUN_C, spy(), {**currencies, "CCC": "USD"})
    assert third["count"] == 5 and c.stat().st_ino != a.stat().st_ino
    assert b'"currency":"USD"' in c.read_bytes().split(b"\n")[-2]


def test_a_file_changed_since_its_note_is_not_reused(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = book_of(root)
    currencies = {"AAA": "USD", "BBB.AX": "AUD", "CCC": None}
    monkeypatch.setattr(discover, "INLINE_LIMIT", 4)
    history = tmp_path / "history"
    a = history / f"mix_{RUN_A}.closed_trades.jsonl"
    discover.closed_trades_section(book, spy(), currencies, a, 2, "mix")
    original = a.read_bytes()
    a.write_bytes(original + b"{}\n")  # edited after it was noted
    b = history / f"mix_{RUN_B}.closed_trades.jsonl"
    assert discover.closed_trades_section(book, spy(), currencies, b, 2, "mix")["count"] == 5
    assert b.read_bytes() == original and b.stat().st_ino != a.stat().st_ino
