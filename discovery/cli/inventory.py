"""`tradescout inventory`: stages 0–1 only, local coverage per ticker (no network)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from discovery.cli.common import (
    ConfigOption,
    DataRootOption,
    JsonOption,
    PortfolioArg,
    guarded,
    print_json,
    settings_from,
    stdout,
    today,
)


def inventory(
    portfolio: PortfolioArg,
    data_root: DataRootOption = None,
    config: ConfigOption = None,
    json_out: JsonOption = False,
) -> None:
    """Stages 0–1 only: local coverage per ticker and what is missing (no network)."""
    from discovery.runs.discover import load_local

    settings = settings_from(data_root, config)
    _, book, inv, _ = guarded(lambda: load_local(settings, portfolio, today().date()))
    rows = inventory_rows(book, inv)
    section = inv.to_report_section()["fundamental_analysis"]
    coverage = section.get("coverage", {})
    if json_out:
        print_json({"portfolio": portfolio, "coverage": coverage, "tickers": rows})
        return
    table = Table(title=f"Local inventory · {portfolio}", show_lines=False)
    for col in ("ticker", "trades", "open", "local file", "date", "age", "stale", "rec", "sector"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["ticker"],
            str(r["trades"]),
            str(r["open"]),
            r["file"] or "—",
            r["date"] or "",
            "" if r["age_days"] is None else str(r["age_days"]),
            "yes" if r["stale"] else "",
            r["recommendation"] or "",
            r["sector"] or "",
        )
    stdout.print(table)
    ratio = coverage.get("ratio")
    stdout.print(
        f"Coverage: {coverage.get('with_analysis', 0)}/{coverage.get('total', 0)} tickers"
        + (f" ({ratio * 100:.1f}%)" if ratio is not None else ""),
        markup=False,
    )


def inventory_rows(book: object, inv: object) -> list[dict[str, Any]]:
    from discovery.ingest.trades import TradeBook
    from discovery.local.inventory import Inventory

    assert isinstance(book, TradeBook) and isinstance(inv, Inventory)
    perf = book.to_report_sections()["ticker_performance"]
    entries = inv.entries()
    rows: list[dict[str, Any]] = []
    for ticker in book.ticker_symbols:
        e = entries.get(ticker)
        p = perf.get(ticker, {})
        rows.append(
            {
                "ticker": ticker,
                "trades": p.get("total_trades", 0),
                "open": p.get("active_trades", 0),
                "file": e.file if e else None,
                "date": e.date.isoformat() if e else None,
                "age_days": e.age_days if e else None,
                "stale": e.stale if e else None,
                "recommendation": e.recommendation if e else None,
                "sector": e.sector if e else None,
            }
        )
    return rows
