"""The report's combined sections pinned against hand-computed figures: money per currency and
converted, strategy and monthly results, drawdowns, marks (a Short included), closed trades
with their benchmark returns (a breakeven with no MFE/MAE included), exposure, analysis
overtaken by a filing and current at entry.

The book: AAA (USD) and CCC (USD), BBB.AX (AUD), SPY closes and AUDUSD = 0.5 set by hand.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from discovery.ingest.closed_trades import iter_closed_chunks
from discovery.ingest.trades import TradeBook, ingest
from discovery.layout import DataLayout
from discovery.local.inventory import Inventory, build_inventory
from discovery.report.assemble import (
    AssembleInputs,
    Sections,
    assemble_report,
    empty_sections,
    missing_rate_gaps,
)
from discovery.report.closed import closed_trade_records
from discovery.report.facts import Close, Closes, Rate, Sourced
from discovery.report.money import conversion, performance_metrics
from discovery.report.schema import validate_report
from services.records import Filing

TODAY = date(2026, 3, 31)
HEADER = (
    "Position_UUID,Ticker,Strategy_Type,Short_Window,Long_Window,Entry_Timestamp,Exit_Timestamp,"
    "Avg_Entry_Price,Avg_Exit_Price,Position_Size,Direction,PnL,Return,Duration_Days,Status,"
    "Max_Favourable_Excursion,Max_Adverse_Excursion,Days_Since_Entry,Current_Unrealized_PnL"
)
ROWS = [
    # closed: a Long win, a Short win and a Short loss (AUD), a breakeven without MFE/MAE, a loss
    "AAA_SMA_10_20_2026-01-05,AAA,SMA,10,20,2026-01-05,2026-01-15,100,110,2,Long,20,0.1,10,"
    "Closed,0.12,0.02,,",
    "BBB.AX_EMA_5_10_2026-01-06,BBB.AX,EMA,5,10,2026-01-06,2026-01-20,50,45,10,Short,50,0.1,14,"
    "Closed,0.15,0.01,,",
    "BBB.AX_EMA_5_10_2026-02-02,BBB.AX,EMA,5,10,2026-02-02,2026-02-10,40,44,10,Short,-40,-0.1,8,"
    "Closed,0.02,0.12,,",
    "CCC_SMA_10_20_2026-02-03,CCC,SMA,10,20,2026-02-03,2026-02-13,30,30,1,Long,0,0,10,Closed,,,,",
    "AAA_SMA_10_20_2026-02-16,AAA,SMA,10,20,2026-02-16,2026-03-02,120,114,1,Long,-6,-0.05,14,"
    "Closed,0.01,0.06,,",
    # open: a Long and a Short, with the CSV's own unrealized return as of its export
    "AAA_SMA_10_20_2026-03-10,AAA,SMA,10,20,2026-03-10,,100,,3,Long,,,,Open,,,20,0.05",
    "BBB.AX_EMA_5_10_2026-03-12,BBB.AX,EMA,5,10,2026-03-12,,40,,5,Short,,,,Open,,,18,-0.02",
]
SPY = {  # trading days only: an entry on a day without a bar takes the close before it
    date(2026, 1, 2): 400.0,
    date(2026, 1, 5): 404.0,
    date(2026, 1, 15): 410.0,
    date(2026, 1, 20): 396.0,
    date(2026, 1, 30): 400.0,
    date(2026, 2, 10): 420.0,
    date(2026, 3, 2): 378.0,
}
AUD = Rate("AUD", "USD", "AUDUSD=X", 0.5, date(2026, 3, 30), "yahoo_finance", True)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    csv = root / "raw" / "trade_history" / "mix.csv"
    csv.parent.mkdir(parents=True)
    csv.write_text("\n".join([HEADER, *ROWS]) + "\n", encoding="utf-8")
    fundamentals = root / "outputs" / "fundamental_analysis"
    fundamentals.mkdir(parents=True)
    for day in ("20260101", "20260301"):
        (fundamentals / f"AAA_{day}.md").write_text(
            "# AAA\n\n**Primary Sector**: Technology\n**Recommendation**: BUY\n", encoding="utf-8"
        )
    sectors = root / "outputs" / "sector_analysis"
    sectors.mkdir(parents=True)
    (sectors / "Technology_20260301.md").write_text("# Technology\n", encoding="utf-8")
    return root


def book_of(root: Path) -> TradeBook:
    return ingest(root / "raw" / "trade_history" / "mix.csv", as_of=TODAY)


def inventory_of(root: Path, book: TradeBook) -> Inventory:
    return build_inventory(DataLayout(root), book.ticker_symbols, today=TODAY, max_age_days=60)


def spy() -> Closes:
    closes = Closes("SPY", "yahoo_finance", True)
    for day, price in SPY.items():
        closes.days.append(day.toordinal())
        closes.prices.append(price)
    return closes


def learned_sections(book: TradeBook, *, rates: bool = True) -> Sections:
    sections = empty_sections(book.ticker_symbols)
    learned = sections.learned
    for ticker, code in (("AAA", "USD"), ("BBB.AX", "AUD"), ("CCC", "USD")):
        learned.chart_currency[ticker] = Sourced(code, "yahoo_finance")
    learned.last_close["AAA"] = Close(110.0, date(2026, 3, 30), "yahoo_finance", True)
    learned.last_close["BBB.AX"] = Close(42.0, date(2026, 3, 30), "yahoo_finance", True)
    learned.profile_sector["AAA"] = Sourced("financials", "fmp", "Financial Services")
    learned.profile_sector["BBB.AX"] = Sourced("financials", "fmp", "Financial Services")
    learned.benchmark = spy()
    learned.filings(
        "AAA",
        [
            Filing("10-K", date(2026, 3, 20), None, "0000000001-26-000003", None),
            Filing("8-K", date(2026, 3, 5), None, "0000000001-26-000002", None),
            Filing("10-Q", date(2026, 2, 15), None, "0000000001-26-000001", None),
        ],
        date(2026, 3, 1),
    )
    sections.filings_known.add("AAA")
    if rates:
        learned.rates["AUD"] = AUD
        sections.fx_asked.add("AUDUSD=X")
    return sections


def report_of(root: Path, sections: Sections | None = None) -> dict[str, Any]:
    book = book_of(root)
    sections = sections or learned_sections(book)
    currencies = sections.learned.currencies(book.ticker_symbols)
    closed = list(closed_trade_records(iter_closed_chunks(book), spy(), currencies))
    inputs = AssembleInputs(
        portfolio="mix",
        run_id="20260331T120000Z-abcdef12",
        started_at=datetime(2026, 3, 31, 12, tzinfo=UTC),
        tool_version="test",
        upstream="sandbox",
        data_source="raw/trade_history/mix.csv",
        book=book,
        inventory=inventory_of(root, book),
        needs=(),
        outcomes={},
        usage={},
        cache_inventory={},
        today=TODAY,
        timeframe="all",
        report_path="outputs/trade_history/discovery/history/mix.json",
        closed_trades=closed,
    )
    report, _ = assemble_report(inputs, sections)
    report["discovery_metadata"]["stage_timings_ms"] = {"ingest": 1.0, "inventory": 1.0}
    validate_report(report)
    book.exits.close()
    return report


def test_money_per_currency_and_converted_at_the_rate_used(root: Path) -> None:
    pm = report_of(root)["performance_metrics"]
    assert pm["by_currency"] == {
        "AUD": {
            "closed_trades": 2, "wins": 1, "losses": 1, "breakevens": 0,
            "total_pnl": 10.0, "gross_profit": 50.0, "gross_loss": 40.0,
            "profit_factor": 1.25, "expectancy_pnl": 5.0,
        },
        "USD": {
            "closed_trades": 3, "wins": 1, "losses": 1, "breakevens": 1,
            "total_pnl": 14.0, "gross_profit": 20.0, "gross_loss": 6.0,
            "profit_factor": 3.333333, "expectancy_pnl": 7.0,
        },
    }  # fmt: skip
    # 14 USD + 10 AUD × 0.5; gross 20 + 25 and 6 + 20; expectancy (45 − 26) / 4 decisive trades
    assert pm["converted"] == {
        "currency": "USD",
        "total_pnl": 19.0,
        "gross_profit": 45.0,
        "gross_loss": 26.0,
        "profit_factor": 1.730769,
        "expectancy_pnl": 4.75,
        "rates": {"AUD": AUD.to_json()},
    }
    # never a sum across currencies at the top level
    assert pm["total_pnl"] is None and pm["profit_factor"] is None and pm["currency"] is None
    assert pm["not_converted"] == [] and pm["currency_unknown"] == []
    assert pm["win_rate"] == 0.5 and pm["total_breakevens"] == 1


def test_no_rate_means_no_converted_total_and_a_gap(root: Path) -> None:
    book = book_of(root)
    sections = learned_sections(book, rates=False)
    report = report_of(root, sections)
    pm = report["performance_metrics"]
    assert pm["converted"] is None and pm["not_converted"] == ["AUD"]
    [gap] = [g for g in report["gaps"] if g["slot"] == "fx"]
    assert gap["reason"] == "fx_unavailable" and gap["subject"] == "AUDUSD=X"
    assert missing_rate_gaps(sections, ["USD", "AUD", "unknown"], "USD")[0].subject == "AUDUSD=X"
    book.exits.close()


def test_unknown_currency_is_counted_apart_and_never_converted(root: Path) -> None:
    book = book_of(root)
    currencies = {"AAA": "USD", "BBB.AX": "AUD", "CCC": None}
    pm = performance_metrics(book, currencies, {"AUD": AUD}, "USD")
    assert pm["by_currency"]["unknown"]["closed_trades"] == 1  # CCC's breakeven
    assert pm["by_currency"]["USD"]["total_pnl"] == 14.0
    assert pm["converted"] is None and pm["not_converted"] == ["unknown"]
    assert pm["currency_unknown"] == ["CCC"]
    single = performance_metrics(book, dict.fromkeys(book.ticker_symbols, "USD"), {}, "USD")
    assert single["currency"] == "USD" and single["total_pnl"] == 24.0  # one currency: given
    assert single["converted"]["total_pnl"] == 24.0 and single["converted"]["rates"] == {}
    book.exits.close()


def test_minor_units_convert_through_their_major_currency() -> None:
    gbp = Rate("GBP", "USD", "GBPUSD=X", 1.25, date(2026, 3, 30), "yahoo_finance", False)
    conv = conversion(["GBp", "GBP", "USD"], {"GBP": gbp}, "USD")
    assert conv.factors == {"GBP": 1.25, "GBp": 0.0125, "USD": 1.0} and conv.possible
    assert conversion(["GBp"], {}, "USD").missing == ("GBp",)


def test_strategy_and_period_performance(root: Path) -> None:
    report = report_of(root)
    sma, ema = report["strategy_performance"]["SMA"], report["strategy_performance"]["EMA"]
    assert (sma["closed_trades"], sma["wins"], sma["losses"], sma["breakevens"]) == (3, 1, 1, 1)
    assert sma["win_rate"] == 0.5 and sma["open_positions"] == 1
    assert sma["average_holding_days"] == round((10 + 10 + 14) / 3, 6)
    assert list(sma["by_currency"]) == ["USD"] and sma["by_currency"]["USD"]["total_pnl"] == 14.0
    assert ema["average_holding_days"] == 11.0 and ema["open_positions"] == 1
    assert ema["by_currency"]["AUD"]["profit_factor"] == 1.25
    period = report["period_performance"]
    assert period["monthly"] == {
        "2026-01": {"closed_trades": 2, "wins": 2, "losses": 0,
                    "realized_pnl": {"AUD": 50.0, "USD": 20.0}},
        "2026-02": {"closed_trades": 2, "wins": 0, "losses": 1,
                    "realized_pnl": {"AUD": -40.0, "USD": 0.0}},
        "2026-03": {"closed_trades": 1, "wins": 0, "losses": 1, "realized_pnl": {"USD": -6.0}},
    }  # fmt: skip
    # USD curve 20, 20, 14 (a tie moves the peak to the later trade); AUD 50, 10
    assert period["max_drawdown"] == {
        "AUD": {"value": 40.0, "peak_date": "2026-01-20", "trough_date": "2026-02-10", "trades": 2},
        "USD": {"value": 6.0, "peak_date": "2026-02-13", "trough_date": "2026-03-02", "trades": 3},
    }


def test_marks_flip_the_sign_for_a_short_and_keep_the_csv_value_dated(root: Path) -> None:
    long, short = report_of(root)["active_positions"]
    assert long["mark"] == {
        "price": 110.0, "as_of": "2026-03-30", "source": "yahoo_finance", "synthetic": True,
        "currency": "USD", "unrealized_return": 0.1, "unrealized_pnl": 30.0,
    }  # fmt: skip
    assert short["mark"]["unrealized_return"] == -0.05  # −(42 / 40 − 1)
    assert short["mark"]["unrealized_pnl"] == -10.0  # −(42 − 40) × 5, in AUD
    assert short["mark"]["currency"] == short["currency"] == "AUD"
    assert long["csv_unrealized_return"] == 0.05 and long["csv_as_of"] == "2026-03-30"
    assert short["csv_as_of"] == "2026-03-30" and long["days_since_entry"] == 21
    assert long["analysis_at_entry"] == {
        "file": "outputs/fundamental_analysis/AAA_20260301.md",
        "date": "2026-03-01",
    }
    assert short["analysis_at_entry"] is None


def test_no_fetched_close_means_no_mark(root: Path) -> None:
    book = book_of(root)
    sections = learned_sections(book)
    del sections.learned.last_close["BBB.AX"]
    positions = report_of(root, sections)["active_positions"]
    assert positions[0]["mark"] is not None and positions[1]["mark"] is None
    book.exits.close()


def test_closed_trades_carry_the_benchmark_over_their_own_window(root: Path) -> None:
    trades = report_of(root)["closed_trades"]
    assert [t["row"] for t in trades] == [2, 3, 4, 5, 6]
    bench = [t["benchmark_return"] for t in trades]
    # 410/404, 396/404 (entry on a day without a bar), 420/400 (Friday's close), 420/400, 378/420
    assert bench == [0.014851, -0.019802, 0.05, 0.05, -0.1]
    assert [t["excess_return"] for t in trades] == [0.085149, 0.119802, -0.15, -0.05, 0.05]
    first, _, short_loss, breakeven, _ = trades
    assert first["mfe_mae_ratio"] == 6.0 and first["currency"] == "USD"
    assert short_loss["direction"] == "Short" and short_loss["pnl"] == -40.0
    assert short_loss["currency"] == "AUD" and short_loss["duration_days"] == 8
    assert breakeven["pnl"] == 0.0 and breakeven["mfe"] is None and breakeven["mae"] is None
    assert breakeven["mfe_mae_ratio"] is None


def test_benchmark_return_needs_a_close_on_or_before_the_entry() -> None:
    closes = spy()
    assert closes.return_between(date(2025, 12, 31), date(2026, 1, 15)) is None
    assert closes.return_between(date(2026, 1, 3), date(2026, 1, 4)) == 0.0  # both Friday's
    assert closes.on_or_before(date(2026, 3, 31)) == 378.0


def test_exposure_and_analysis_overtaken_by_a_filing(root: Path) -> None:
    report = report_of(root)
    by_ticker = report["exposure"]["by_ticker"]
    assert by_ticker["AAA"] == {
        "sector": "technology",
        "source": "local_analysis",
        "conflicts": [{"source": "fmp", "sector": "financials", "reported": "Financial Services"}],
        "asset_class": "security",
    }
    assert by_ticker["BBB.AX"]["sector"] == "financials" and by_ticker["BBB.AX"]["source"] == "fmp"
    assert by_ticker["CCC"]["sector"] is None and by_ticker["CCC"]["conflicts"] == []
    assert report["exposure"]["by_sector"] == {
        "financials": {"positions": 1, "tickers": ["BBB.AX"], "marked_value": {"AUD": -210.0},
                       "unmarked_positions": 0},
        "technology": {"positions": 1, "tickers": ["AAA"], "marked_value": {"USD": 330.0},
                       "unmarked_positions": 0},
    }  # fmt: skip
    aaa = report["local_data_integration"]["fundamental_analysis"]["tickers"]["AAA"]
    assert aaa["outdated_by"] == {  # the first filing after the file's date, not the latest
        "form": "8-K",
        "filing_date": "2026-03-05",
        "accession_number": "0000000001-26-000002",
    }
    assert aaa["checked_against_filings"] is True
    hand_off = report["next_phase_inputs"]
    assert hand_off["analysis_predates_filing"] == ["AAA"]
    assert hand_off["sectors_without_analysis"] == ["financials"]
    assert hand_off["currencies"] == ["AUD", "USD"] and hand_off["converted_totals"] is True
    assert report["ticker_performance"]["BBB.AX"]["currency"] == "AUD"
