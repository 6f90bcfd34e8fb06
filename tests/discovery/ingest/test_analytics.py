"""Issue 14, ingest side: every new figure pinned against hand-computed expectations.

The portfolio below (rows 2-8) is small enough to do by hand; the comments show the arithmetic.
AAA and BBB trade in USD, CCC in AUD (the fold's currency map), DDD's currency is not known.
"""

from __future__ import annotations

import itertools
import random
from datetime import date
from pathlib import Path

import pytest

from discovery.errors import InputError
from discovery.ingest import drawdown as drawdown_module
from discovery.ingest.closed_trades import iter_closed_trades
from discovery.ingest.drawdown import realized_drawdowns
from discovery.ingest.models import TradeBook
from discovery.ingest.trades import ingest
from tests.discovery.ingest.test_trades import csv_text, open_trade, trade

CURRENCY = {"AAA": "USD", "BBB": "USD", "CCC": "AUD"}

ROWS = [
    # row 2: AAA SMA Long win: (110 − 100) × 1 = +10, 15 days, MFE 0.12 / MAE 0.02
    trade(),
    # row 3: BBB EMA Short win: (80 − 72) × 1 = +8 (Return 0.1), 28 days
    trade(
        Ticker="BBB", Strategy_Type="EMA", Direction="Short", Entry_Timestamp="2026-03-02",
        Exit_Timestamp="2026-03-30", Avg_Entry_Price=80.0, Avg_Exit_Price=72.0, PnL=8.0,
        Return=0.1, Duration_Days=28, Max_Favourable_Excursion=0.15, Max_Adverse_Excursion=0.01,
    ),
    # row 4: AAA SMA Long loss: (45 − 50) × 2 = −10 (Return −0.1), exits 2026-02-25, 23 days
    trade(
        Short_Window=10, Entry_Timestamp="2026-02-02", Exit_Timestamp="2026-02-25",
        Avg_Entry_Price=50.0, Avg_Exit_Price=45.0, Position_Size=2.0, PnL=-10.0, Return=-0.1,
        Duration_Days=23, Max_Favourable_Excursion=0.01, Max_Adverse_Excursion=0.11,
    ),
    # row 5: CCC SMA breakeven (|0.006| ≤ 0.01), no MFE/MAE at all, exits 2026-02-10, 9 days
    trade(
        Ticker="CCC", Entry_Timestamp="2026-02-01", Exit_Timestamp="2026-02-10",
        Avg_Entry_Price=20.0, Avg_Exit_Price=20.0, PnL=0.006, Return=0.0, Duration_Days=9,
        Max_Favourable_Excursion="", Max_Adverse_Excursion="",
    ),
    # row 6: CCC SMA win in AUD: (30 − 20) × 3 = +30 (Return 0.5), exits 2026-03-05, 32 days
    trade(
        Ticker="CCC", Short_Window=7, Entry_Timestamp="2026-02-01", Exit_Timestamp="2026-03-05",
        Avg_Entry_Price=20.0, Avg_Exit_Price=30.0, Position_Size=3.0, PnL=30.0, Return=0.5,
        Duration_Days=32, Max_Favourable_Excursion=0.6, Max_Adverse_Excursion=0.0,
    ),
    # row 7: DDD SMA loss, currency unknown: (9 − 10) × 1 = −1 (Return −0.1), 5 days
    trade(
        Ticker="DDD", Entry_Timestamp="2026-01-10", Exit_Timestamp="2026-01-15",
        Avg_Entry_Price=10.0, Avg_Exit_Price=9.0, PnL=-1.0, Return=-0.1, Duration_Days=5,
        Max_Favourable_Excursion=0.0, Max_Adverse_Excursion=0.2,
    ),
    # row 8: AAA SMA open position
    open_trade(Short_Window=3, Entry_Timestamp="2026-04-01"),
]  # fmt: skip


@pytest.fixture()
def book(tmp_path: Path) -> TradeBook:
    path = tmp_path / "a.csv"
    path.write_text(csv_text(ROWS), encoding="utf-8")
    return ingest(path, chunk_rows=2)  # aggregates cross chunk boundaries


def test_the_portfolio_is_clean(book: TradeBook) -> None:
    assert book.quality.issue_counts == {}


def test_strategy_performance(book: TradeBook) -> None:
    sma = book.strategy_performance(CURRENCY)["SMA"].to_json()
    # SMA closed: rows 2 (+10), 4 (−10), 5 (even), 6 (+30), 7 (−1); open: row 8
    assert (sma["closed_trades"], sma["wins"], sma["losses"], sma["breakevens"]) == (5, 2, 2, 1)
    assert sma["open_positions"] == 1
    assert sma["win_rate"] == 0.5
    assert sma["average_win_return"] == pytest.approx((0.1 + 0.5) / 2)
    assert sma["average_loss_return"] == pytest.approx((-0.1 - 0.1) / 2)
    assert sma["expectancy"] == pytest.approx(0.5 * 0.3 + 0.5 * -0.1)  # 0.1
    assert sma["average_holding_days"] == pytest.approx((15 + 23 + 9 + 32 + 5) / 5)  # 16.8
    usd, aud, unknown = (sma["by_currency"][c] for c in ("USD", "AUD", "unknown"))
    assert (usd["total_pnl"], usd["gross_profit"], usd["gross_loss"]) == (0.0, 10.0, 10.0)
    assert usd["profit_factor"] == 1.0 and usd["expectancy_pnl"] == 0.0  # (10 − 10) / 2
    assert (aud["total_pnl"], aud["breakevens"], aud["profit_factor"]) == (30.01, 1, None)
    assert aud["expectancy_pnl"] == 30.0  # one decisive trade
    assert (unknown["total_pnl"], unknown["losses"], unknown["profit_factor"]) == (-1.0, 1, 0.0)
    ema = book.strategy_performance(CURRENCY)["EMA"].to_json()
    # the Short win: counted as a win with its own sign
    assert (ema["closed_trades"], ema["wins"], ema["average_holding_days"]) == (1, 1, 28.0)
    assert ema["by_currency"] == {
        "USD": {
            "closed_trades": 1, "wins": 1, "losses": 0, "breakevens": 0, "total_pnl": 8.0,
            "gross_profit": 8.0, "gross_loss": 0.0, "profit_factor": None, "expectancy_pnl": 8.0,
        }
    }  # fmt: skip


def test_portfolio_money_is_never_added_across_currencies(book: TradeBook) -> None:
    money = {c: m.to_json() for c, m in book.money_by_currency(CURRENCY).items()}
    assert money["USD"]["total_pnl"] == 8.0  # 10 + 8 − 10
    assert money["USD"]["gross_profit"] == 18.0 and money["USD"]["gross_loss"] == 10.0
    assert money["USD"]["expectancy_pnl"] == pytest.approx((18 - 10) / 3, abs=0.005)
    assert money["AUD"]["total_pnl"] == 30.01 and money["unknown"]["total_pnl"] == -1.0
    # without a map everything is one "unknown" bucket, still exact
    assert book.money_by_currency()["unknown"].total_pnl == pytest.approx(37.006)
    # per ticker: each in its own currency
    assert book.ticker_money()["CCC"].total_pnl == pytest.approx(30.006)


def test_monthly_by_exit_month(book: TradeBook) -> None:
    months = {m: f.to_json() for m, f in book.monthly(CURRENCY).items()}
    assert list(months) == ["2026-01", "2026-02", "2026-03"]
    assert months["2026-01"] == {  # row 2 (+10 USD) and row 7 (−1 unknown)
        "closed_trades": 2, "wins": 1, "losses": 1,
        "realized_pnl": {"USD": 10.0, "unknown": -1.0},
    }  # fmt: skip
    assert months["2026-02"] == {  # row 4 (−10 USD), row 5 (0.006 AUD, breakeven)
        "closed_trades": 2, "wins": 0, "losses": 1,
        "realized_pnl": {"AUD": 0.01, "USD": -10.0},
    }  # fmt: skip
    assert months["2026-03"]["realized_pnl"] == {"AUD": 30.0, "USD": 8.0}


def test_max_drawdown_per_currency(book: TradeBook) -> None:
    found = {c: d.to_json() for c, d in realized_drawdowns(book, CURRENCY).items()}
    # USD in exit order: 01-20 +10 (peak 10), 02-25 −10 (0), 03-30 +8 → fall 10 from 01-20
    assert found["USD"] == {
        "value": 10.0, "peak_date": "2026-01-20", "trough_date": "2026-02-25", "trades": 3
    }  # fmt: skip
    assert found["AUD"] == {"value": 0.0, "peak_date": None, "trough_date": None, "trades": 2}
    # the curve starts at 0: a first trade that loses falls from the start (no peak date)
    assert found["unknown"] == {
        "value": 1.0, "peak_date": None, "trough_date": "2026-01-15", "trades": 1
    }  # fmt: skip


def brute_drawdown(pnls: list[tuple[str, int, float]]) -> tuple[float, str | None, str | None]:
    equity, peak, peak_day, best = 0.0, 0.0, None, (0.0, None, None)
    for day, _row, pnl in sorted(pnls, key=lambda p: (p[0], p[1])):
        equity += pnl
        if equity >= peak:
            peak, peak_day = equity, day
        elif peak - equity > best[0]:
            best = (peak - equity, peak_day, day)
    return best


def test_drawdown_through_sorted_runs_on_disk_matches_brute_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(drawdown_module, "RUN_TRADES", 37)  # many runs, spilled
    monkeypatch.setattr(drawdown_module, "_BLOCK", 5)  # many merge rounds
    rng = random.Random(7)
    rows, expected = [], []
    for i in range(600):
        day = date(2026, 1, 1).toordinal() + rng.randrange(200)
        stamp = date.fromordinal(day).isoformat()
        pnl = round(rng.uniform(-50, 50), 2)
        rows.append(
            trade(Short_Window=i + 1, Exit_Timestamp=stamp, Entry_Timestamp="2025-12-31",
                  Avg_Exit_Price="", PnL=pnl, Return="", Duration_Days="",
                  Max_Favourable_Excursion="", Max_Adverse_Excursion="")
        )  # fmt: skip
        expected.append((stamp, i + 2, pnl))
    path = tmp_path / "many.csv"
    path.write_text(csv_text(rows), encoding="utf-8")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    book = ingest(path, chunk_rows=64, scratch_dir=scratch)
    assert len(list(scratch.iterdir())) == 1  # the runs are on disk
    result = realized_drawdowns(book, {"AAA": "USD"})["USD"]
    assert realized_drawdowns(book, {"AAA": "USD"})["USD"] == result  # read again, same answer
    value, peak, trough = brute_drawdown(expected)
    assert result.value == pytest.approx(value, abs=1e-6)
    assert (str(result.peak_date) if result.peak_date else None, str(result.trough_date)) == (
        peak,
        trough,
    )
    assert result.trades == 600
    book.exits.close()
    assert list(scratch.iterdir()) == []  # the runs are removed


def test_closed_trade_records(book: TradeBook) -> None:
    records = list(iter_closed_trades(book, chunk_rows=3))
    assert [r["row"] for r in records] == [2, 3, 4, 5, 6, 7]  # the open row 8 is not one
    short = records[1]
    assert short == {
        "row": 3, "position_uuid": "BBB_EMA_5_20_2026-03-02", "ticker": "BBB", "strategy": "EMA",
        "short_window": 5, "long_window": 20, "entry_date": "2026-03-02",
        "exit_date": "2026-03-30", "entry_price": 80.0, "exit_price": 72.0,
        "direction": "Short", "position_size": 1.0, "pnl": 8.0, "return": 0.1,
        "duration_days": 28, "mfe": 0.15, "mae": 0.01, "mfe_mae_ratio": 15.0,
        "exit_efficiency": 0.8, "trade_quality": "Good", "x_status": "1000000000000000001",
    }  # fmt: skip
    no_excursions = records[3]
    assert (no_excursions["mfe"], no_excursions["mae"], no_excursions["mfe_mae_ratio"]) == (
        None,
        None,
        None,
    )
    assert records[4]["mfe_mae_ratio"] is None  # MAE 0: no ratio (never inf)
    assert isinstance(short["x_status"], str) and len(short["x_status"]) == 19


def test_the_per_trade_pass_refuses_a_file_that_changed(book: TradeBook) -> None:
    data = book.source_path.read_bytes()
    book.source_path.write_bytes(data.replace(b"AAA_SMA_5_20", b"AAA_SMA_5_21", 1))
    with pytest.raises(InputError, match="changed since it was first read"):
        list(itertools.islice(iter_closed_trades(book), 10))


def test_the_per_trade_pass_reads_the_snapshot_even_if_the_file_grew(book: TradeBook) -> None:
    with book.source_path.open("a", encoding="utf-8") as out:
        out.write(csv_text([trade(Ticker="ZZZ")]).split("\n", 1)[1])
    assert [r["ticker"] for r in iter_closed_trades(book)].count("ZZZ") == 0


# --- the new data-quality checks ----------------------------------------------------------------


def _kinds(tmp_path: Path, rows: list[dict[str, str]]) -> list[tuple[int, str]]:
    path = tmp_path / "q.csv"
    path.write_text(csv_text(rows), encoding="utf-8")
    return [(i.row, i.kind) for i in ingest(path).quality.issues]


def test_duration_mismatch_beyond_one_day(tmp_path: Path) -> None:
    # the dates say 15 days: 16 is within a day, 17 is not
    rows = [trade(Duration_Days=16), trade(Short_Window=6, Duration_Days=17)]
    assert _kinds(tmp_path, rows) == [(3, "duration_mismatch")]


def test_return_mismatch_beyond_0_001(tmp_path: Path) -> None:
    # PnL 10 ÷ (100 × 1) = 0.1: 0.1009 is within 0.001, 0.1011 is not
    rows = [trade(Return=0.1009), trade(Short_Window=6, Return=0.1011)]
    assert _kinds(tmp_path, rows) == [(3, "return_mismatch")]


def test_excursions_out_of_their_range(tmp_path: Path) -> None:
    rows = [
        trade(Max_Favourable_Excursion=-0.01),  # negative
        trade(Short_Window=6, Max_Favourable_Excursion=0.05),  # below the trade's own +0.1
        trade(Short_Window=7, Max_Adverse_Excursion=-0.5),  # negative
        trade(Short_Window=8, Avg_Exit_Price=90.0, PnL=-10.0, Return=-0.1,
              Max_Adverse_Excursion=0.05, Max_Favourable_Excursion=0.0),  # loss 0.1 > MAE 0.05
    ]  # fmt: skip
    assert _kinds(tmp_path, rows) == [
        (2, "mfe_out_of_range"),
        (3, "mfe_out_of_range"),
        (4, "mae_out_of_range"),
        (5, "mae_out_of_range"),
    ]


def test_duplicate_position_uuids_across_chunks(tmp_path: Path) -> None:
    rows = [trade(Short_Window=i) for i in range(1, 40)] + [trade(Short_Window=3)] * 2
    path = tmp_path / "d.csv"
    path.write_text(csv_text(rows), encoding="utf-8")
    book = ingest(path, chunk_rows=4)
    dups = [i for i in book.quality.issues if i.kind == "duplicate_uuid"]
    assert [i.row for i in dups] == [41, 42]  # row 4 holds the first AAA_SMA_3_20
    assert "AAA_SMA_3_20_2026-01-05" in dups[0].message


def test_an_empty_window_beside_a_full_one_in_one_chunk(tmp_path: Path) -> None:
    # found by the fuzz test: the UUID fast path indexed its window table with NaN's -1 code
    rows = [trade(Long_Window=""), trade(Short_Window=2)]
    assert _kinds(tmp_path, rows) == []
