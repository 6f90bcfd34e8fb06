"""Stage 1 (ingest): input that cannot be used is refused with one sentence (file, row, column).

Every case asserts the `InputError` (exit 2) and that its message names the place, and that no
pandas/numpy wording leaks through.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from discovery.errors import InputError
from discovery.ingest.trades import ingest
from tests.discovery.ingest.test_trades import BASIC, HEADER, csv_text, open_trade, trade, write_csv

_LEAKS = ("Error tokenizing", "C error", "could not convert", "Traceback", "dtype", "codec")


def refused(path: Path, **kwargs: object) -> InputError:
    with pytest.raises(InputError) as caught:
        ingest(path, **kwargs)  # type: ignore[arg-type]
    error = caught.value
    message = str(error)
    assert str(path) in message
    assert message.endswith(".") and "\n" not in message
    assert not any(leak in message for leak in _LEAKS), message
    assert error.exit_code == 2
    return error


def test_missing_file(tmp_path: Path) -> None:
    refused(tmp_path / "nope.csv")


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    refused(tmp_path)


@pytest.mark.parametrize("content", [b"", b"   \n\n", b"\xef\xbb\xbf"], ids=["zero", "ws", "bom"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    assert "empty" in str(refused(path))


def test_header_only(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text(",".join(HEADER) + "\n", encoding="utf-8")
    assert "no trade rows" in str(refused(path))


def test_header_and_blank_lines_only(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text(",".join(HEADER) + "\n\n\n", encoding="utf-8")
    assert "no trade rows" in str(refused(path))


def test_blank_first_line(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_text("\n" + csv_text([trade()]), encoding="utf-8")
    error = refused(path)
    assert error.row == 1


@pytest.mark.parametrize(
    "column", ["Position_UUID", "Ticker", "Strategy_Type", "Entry_Timestamp", "Status"]
)
def test_missing_required_column(tmp_path: Path, column: str) -> None:
    header = [h for h in HEADER if h != column]
    error = refused(write_csv(tmp_path / "m.csv", [trade()], header))
    assert column in str(error) and "row 1" in str(error)
    assert (error.row, error.column) == (1, column)


def test_tab_separated_is_refused_with_a_hint(tmp_path: Path) -> None:
    error = refused(write_csv(tmp_path / "t.csv", [trade()], sep="\t"))
    assert "semicolon" in str(error)


def test_duplicate_column_names(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    lines = csv_text([trade()]).splitlines()
    path.write_text(lines[0] + ",Ticker\n" + lines[1] + ",AAA\n", encoding="utf-8")
    error = refused(path)
    assert "'Ticker' twice" in str(error)
    assert (error.row, error.column) == (1, "Ticker")


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("Entry_Timestamp", "2026-13-45"),
        ("Entry_Timestamp", "yesterday"),
        ("Entry_Timestamp", "04/14/2026"),
        ("Exit_Timestamp", "soon"),
    ],
)
def test_unparseable_date(tmp_path: Path, column: str, value: str) -> None:
    rows = [trade(), trade(), trade(**{column: value, "Position_UUID": "X_Y_1_2_2026-01-01"})]
    error = refused(write_csv(tmp_path / "d.csv", rows))
    assert (error.row, error.column) == (4, column)
    assert repr(value) in str(error)


def test_empty_entry_date(tmp_path: Path) -> None:
    rows = [trade(), trade(Entry_Timestamp="", Position_UUID="AAA_SMA_5_20_2026-01-05")]
    error = refused(write_csv(tmp_path / "d.csv", rows))
    assert (error.row, error.column) == (3, "Entry_Timestamp")


@pytest.mark.parametrize("column", ["PnL", "Avg_Entry_Price", "Return", "Short_Window"])
def test_unparseable_number(tmp_path: Path, column: str) -> None:
    rows = [trade(), trade(), trade(**{column: "12.3.4"}), trade()]
    error = refused(write_csv(tmp_path / "n.csv", rows))
    assert (error.row, error.column) == (4, column)
    assert "'12.3.4' is not a number" in str(error)


def test_unparseable_number_in_a_later_chunk(tmp_path: Path) -> None:
    rows = [trade() for _ in range(30)] + [trade(PnL="ten")]
    error = refused(write_csv(tmp_path / "n.csv", rows), chunk_rows=7)
    assert (error.row, error.column) == (32, "PnL")


def test_infinite_pnl_is_refused(tmp_path: Path) -> None:
    error = refused(write_csv(tmp_path / "i.csv", [trade(), trade(PnL="inf")]))
    assert (error.row, error.column) == (3, "PnL")
    assert "finite" in str(error)


def test_infinite_mfe_mae_ratio_is_fine(tmp_path: Path) -> None:
    book = ingest(write_csv(tmp_path / "i.csv", [trade(MFE_MAE_Ratio="inf")]))
    assert book.rows_read == 1


@pytest.mark.parametrize("ticker", ["../etc", "AA PL", "A/B", "..", "$$$"])
def test_implausible_ticker(tmp_path: Path, ticker: str) -> None:
    rows = [trade(), trade(Ticker=ticker, Position_UUID="X_SMA_5_20_2026-01-05")]
    error = refused(write_csv(tmp_path / "t.csv", rows))
    assert (error.row, error.column) == (3, "Ticker")
    assert repr(ticker) in str(error)


def test_empty_ticker(tmp_path: Path) -> None:
    rows = [trade(), trade(), trade(Ticker="", Position_UUID="X_SMA_5_20_2026-01-05")]
    error = refused(write_csv(tmp_path / "t.csv", rows))
    assert (error.row, error.column) == (4, "Ticker")


def test_not_utf8_in_the_head(tmp_path: Path) -> None:
    text = csv_text([trade(), trade(Trade_Quality="Tres bien")])
    path = tmp_path / "latin1.csv"
    path.write_bytes(text.replace("Tres", "Tr\u00e8s").encode("latin-1"))
    error = refused(path)
    assert error.row == 3
    assert "not UTF-8" in str(error)


def test_not_utf8_past_the_head(tmp_path: Path) -> None:
    rows = [trade() for _ in range(800)] + [trade(Trade_Quality="Tres bien")]
    text = csv_text(rows)
    assert len(text) > 128 * 1024
    path = tmp_path / "late.csv"
    path.write_bytes(text.replace("Tres", "Tr\u00e8s").encode("latin-1"))
    error = refused(path, chunk_rows=100)
    assert (error.row, error.column) == (802, "Trade_Quality")


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "bin.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    assert "binary" in str(refused(path))


def test_binary_bytes_past_the_head(tmp_path: Path) -> None:
    text = csv_text([trade() for _ in range(800)])
    assert len(text) > 128 * 1024
    path = tmp_path / "nul.csv"
    path.write_bytes(text.encode() + b"AAA_SMA\x00\x00\x00,AAA\n")
    error = refused(path)
    assert "binary" in str(error) and error.row == 802


def test_unquoted_comma_that_shifts_a_number_is_refused(tmp_path: Path) -> None:
    """An unquoted delimiter inside a value shifts later cells: the shifted cell fails to parse."""
    lines = csv_text([trade(), trade(), trade()]).splitlines()
    lines[3] = lines[3].replace(",SMA,", ",SMA,Cross,", 1)
    path = tmp_path / "f.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    error = refused(path)
    assert (error.row, error.column) == (4, "Short_Window")
    assert "'Cross' is not a number" in str(error)


def test_unclosed_quote(tmp_path: Path) -> None:
    lines = csv_text([trade(), trade(), trade()]).splitlines()
    lines[2] = lines[2].replace(",Good,", ',"Good,')
    path = tmp_path / "q.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    error = refused(path)
    assert error.row == 3
    assert "never closed" in str(error)


def test_input_error_is_raised_before_anything_else_happens(tmp_path: Path) -> None:
    """A bad row late in the file still refuses the whole file (nothing partial comes back)."""
    rows = [trade()] * 5 + [open_trade(Ticker="A B", Position_UUID="x")]
    refused(write_csv(tmp_path / "late.csv", rows), chunk_rows=2)


def test_good_fixture_is_not_refused() -> None:
    assert ingest(BASIC).rows_read == 9
