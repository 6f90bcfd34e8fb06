"""The HTML view, pure: coverage cells and gap marks, figures against hand-computed values,
sections left out (with a note) when the report lacks their data, nothing external."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from discovery.reading.closed_trades import TradeColumns, closed_trades
from discovery.view import series
from discovery.view.cache_page import cache_page
from discovery.view.coverage import COLUMNS, coverage_rows
from discovery.view.page import report_page
from tests.conftest import report_files


def offline_report(root: Path) -> tuple[dict[str, Any], Path]:
    path = report_files(root)[-1]
    return json.loads(path.read_text()), path


def trades(*rows: tuple[str, float, str | None]) -> TradeColumns:
    cols = TradeColumns()
    for day, pnl, cur in rows:
        cols.add({"exit_date": day, "pnl": pnl, **({"currency": cur} if cur else {})})
    return cols


def test_equity_drawdown_and_months_per_currency() -> None:
    cols = trades(
        ("2026-01-05", 10.0, "USD"),
        ("2026-01-03", -5.0, "USD"),
        ("2026-02-01", 3.0, "EUR"),
        ("2026-02-10", -20.0, "USD"),
    )
    curves = series.equity_curves(cols)
    assert curves["USD"] == [("2026-01-03", -5.0), ("2026-01-05", 5.0), ("2026-02-10", -15.0)]
    assert curves["EUR"] == [("2026-02-01", 3.0)]  # never added to the dollars
    assert series.drawdown(curves["USD"]) == [
        ("2026-01-03", -5.0),
        ("2026-01-05", 0.0),
        ("2026-02-10", -20.0),
    ]
    assert series.max_drawdown(curves["USD"]) == {
        "value": -20.0,
        "peak_date": "2026-01-05",
        "trough_date": "2026-02-10",
    }
    assert series.monthly_from_trades(cols) == {
        "USD": [("2026-01", 5.0), ("2026-02", -20.0)],
        "EUR": [("2026-02", 3.0)],
    }
    assert series.monthly_from_report(
        {"2026-02": {"realized_pnl": {"USD": -20.0, "EUR": 3.0}}, "2026-01": {"realized_pnl": 5}}
    ) == {"PnL": [("2026-01", 5.0)], "USD": [("2026-02", -20.0)], "EUR": [("2026-02", 3.0)]}


def test_records_without_exit_or_pnl_are_counted_not_guessed() -> None:
    cols = TradeColumns()
    for record in ({"exit_date": "2026-01-01", "pnl": 1}, {"pnl": 2}, {"exit_date": "x", "pnl": 1}):
        cols.add(record)
    cols.add({"exit_date": "2026-01-02", "pnl": True})
    assert cols.count == 1 and cols.skipped == 3


def test_closed_trades_file_must_sit_beside_the_report(tmp_path: Path) -> None:
    report_path = tmp_path / "r" / "demo_20260101.json"
    report_path.parent.mkdir()
    outside = tmp_path / "elsewhere.jsonl"
    outside.write_text('{"exit_date": "2026-01-01", "pnl": 1}\n')
    cols, why = closed_trades({"closed_trades": {"path": "../elsewhere.jsonl"}}, report_path)
    assert cols is None and "not beside the report" in why
    (report_path.parent / "demo.jsonl").write_text(
        '{"exit_date": "2026-01-01", "pnl": 1.5}\nnot json\n'
        '{"exit_date": "2026-01-02", "pnl": -1}\n'
    )
    cols, why = closed_trades({"closed_trades": {"path": "demo.jsonl", "count": 2}}, report_path)
    assert cols is not None and cols.count == 2 and "demo.jsonl" in why


def expected_gap_marks(report: dict[str, Any]) -> int:
    """Ticker cells without a value that have a gap for their dataset."""
    column_of = {
        "chart": "price_history",
        "profile": "profile",
        "overview": "profile",
        "simple_price": "profile",
        "submissions": "filings",
        "cik_map": "filings",
    }
    cells = set()
    for gap in report["gaps"]:
        column = column_of.get(gap["dataset"])
        ticker = gap["ticker"]
        if ticker and column and not report["ticker_data"][ticker].get(column):
            cells.add((ticker, column))
    return len(cells)


def test_offline_report_page(offline_report_root: Path) -> None:
    report, _ = offline_report(offline_report_root)
    rows = coverage_rows(report)
    assert len(rows) == 32 and all(len(cells) == len(COLUMNS) for _, cells in rows)
    html = report_page(
        report, trades=None, trades_source="this report has no closed_trades section", trend=None
    )
    assert html.count('<td class="cell ') == 32 * len(COLUMNS)
    assert html.count('class="gap-mark"') == expected_gap_marks(report) > 60
    assert 'data-reasons="offline"' in html
    assert "Not drawn: this report has no closed_trades section." in html
    assert "Strategy performance is not in this report" not in html
    for strategy in report["strategy_performance"]:
        assert f"<td>{strategy}</td>" in html or f">{strategy}<" in html
    assert "No run ledger" in html
    # self-contained: no URL to fetch anything from, no script
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    assert "<script" not in html and "url(" not in html


def test_sections_drawn_when_the_report_has_them(offline_report_root: Path) -> None:
    report, _ = offline_report(offline_report_root)
    report = {
        **report,
        "strategy_performance": {
            "SMA": {"closed_trades": 2, "win_rate": 0.5, "total_pnl": {"USD": 3.0}}
        },
        "period_performance": {
            "monthly": {"2026-01": {"realized_pnl": 5.0}, "2026-02": {"realized_pnl": -20.0}},
            "max_drawdown": {
                "value": -20.0,
                "peak_date": "2026-01-05",
                "trough_date": "2026-02-10",
            },
        },
    }
    cols = trades(
        ("2026-01-03", -5.0, None), ("2026-01-05", 10.0, None), ("2026-02-10", -20.0, None)
    )
    trend = [{"day": "2026-11-30", "hit_ratio": 0.0}, {"day": "2026-12-01", "hit_ratio": 1.0}]
    html = report_page(
        report, trades=cols, trades_source="from the report's closed_trades", trend=trend
    )
    assert "<th>win_rate</th>" in html and "USD 3.00" in html
    assert html.count("<polyline") == 2  # the equity curve and the hit-ratio trend
    assert html.count('class="under"') == 1
    assert (
        "max drawdown -20.00 from 2026-01-05 to 2026-02-10 (period_performance.max_drawdown)"
        in html
    )
    assert html.count('class="neg"') == 1 and html.count('class="pos"') == 1
    assert "Not drawn" not in html


def test_cache_page_lists_every_namespace() -> None:
    report = {
        "cache_root": "data/cache",
        "generated_at": "2026-12-01T00:00:00+00:00",
        "totals": {"entries": 3, "disk_bytes": 4096, "hit_ratio_lifetime": 0.5},
        "namespaces": {
            "fmp": {
                "entries": 2,
                "disk_bytes": 2048,
                "last_run": {"hit_ratio": 1.0},
                "reclaimable": {"bytes": 0},
            },
            "fred": {
                "entries": 1,
                "disk_bytes": 2048,
                "last_run": None,
                "reclaimable": {"bytes": 10},
            },
        },
        "recommendations": ["No action needed: nothing expired, over its limit, stray or corrupt."],
        "strays": [],
        "trend": [{"day": "2026-12-01", "hit_ratio": 0.5}],
    }
    html = cache_page(report)
    assert "<td>fmp</td>" in html and "<td>fred</td>" in html
    assert "No action needed" in html and html.count("<polyline") == 1


@pytest.mark.parametrize("bad", ["<script>alert(1)</script>", '"><img src=x>'])
def test_report_text_is_escaped(offline_report_root: Path, bad: str) -> None:
    report, _ = offline_report(offline_report_root)
    report = {**report, "portfolio": bad}
    html = report_page(report, trades=None, trades_source="none", trend=None)
    assert bad not in html and "<script" not in html
