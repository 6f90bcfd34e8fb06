"""The report page (pure: report JSON in, one HTML string out).

Every figure on the page is read from the report, or computed from its own records (the
equity curve from `closed_trades`); a section whose data the report does not have is left out
with a one-line note saying so, never drawn from anything else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from discovery.reading.closed_trades import TradeColumns
from discovery.view import series, svg
from discovery.view.coverage import COLUMNS, coverage_rows, market_gaps

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;
max-width:1100px;padding:0 16px;color:#111827;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid
#e5e7eb;padding-bottom:4px}.meta{color:#4b5563}.badge{display:inline-block;padding:1px 8px;
border-radius:9px;background:#fef3c7;color:#92400e;font-size:12px;margin-left:6px}
table{border-collapse:collapse;margin:4px 0}th,td{padding:3px 8px;border-bottom:1px solid
#f3f4f6;text-align:left;white-space:nowrap}th{font-weight:600;background:#f9fafb}
td.num{text-align:right;font-variant-numeric:tabular-nums}.note{color:#6b7280;font-style:italic}
td.cell{text-align:center;width:90px;cursor:default}.ok{background:#dcfce7}.stale{background:
#fef9c3}.gap{background:#fee2e2}.missing{background:#f3f4f6;color:#6b7280}.none{color:#9ca3af}
.gap-mark{color:#b91c1c;font-weight:700}.legend span{margin-right:14px}
.kpis{display:flex;gap:24px;flex-wrap:wrap;margin:12px 0}.kpi b{display:block;font-size:18px}
svg .grid{stroke:#e5e7eb}svg .tick{font-size:11px;fill:#6b7280}svg .pos{fill:#16a34a}
svg .neg{fill:#dc2626}svg .under{fill:#fecaca;stroke:#dc2626}svg .worst{fill:#991b1b}
.pnl-pos{color:#15803d}.pnl-neg{color:#b91c1c}
"""
SYMBOL = {"ok": "✓", "stale": "!", "gap": "✗", "missing": "·", "none": "–"}


def document(title: str, body: Sequence[str]) -> str:
    """A complete page: inline styles, no script, no external resource of any kind."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        + "".join(body)
        + "</body></html>\n"
    )


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, Mapping):  # per-currency figures: never added together
        return " · ".join(f"{k} {fmt(v, digits)}" for k, v in value.items())
    return str(value)


def pct(value: Any) -> str:
    return "—" if not isinstance(value, int | float) else f"{value * 100:.1f}%"


def table(
    head: Sequence[str], rows: Sequence[Sequence[Any]], numeric: set[int] | None = None
) -> str:
    nums = numeric or set()
    out = ["<table><thead><tr>", *(f"<th>{escape(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for row in rows:
        out.append("<tr>")
        for i, cell in enumerate(row):
            cls = ' class="num"' if i in nums else ""
            out.append(f"<td{cls}>{cell if isinstance(cell, Markup) else escape(str(cell))}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


class Markup(str):
    """HTML that is already escaped (table cells that carry markup)."""


def note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def section(title: str, *parts: str, ident: str) -> str:
    return f'<section id="{ident}"><h2>{escape(title)}</h2>{"".join(parts)}</section>'


# -- sections -------------------------------------------------------------------------------------


def _header(report: Mapping[str, Any]) -> str:
    meta = report.get("discovery_metadata") or {}
    ps = report.get("portfolio_summary") or {}
    pm = report.get("performance_metrics") or {}
    upstream = meta.get("upstream")
    badge = '<span class="badge">synthetic data (sandbox)</span>' if upstream == "sandbox" else ""
    kpis = [
        ("trades", f"{fmt(ps.get('total_trades'))} ({fmt(ps.get('active_trades'))} open)"),
        ("tickers", fmt(ps.get("unique_tickers"))),
        ("win rate", pct(pm.get("win_rate"))),
        ("profit factor", fmt(pm.get("profit_factor"))),
        ("realized PnL", _money_kpi(pm)),
        ("confidence", fmt(meta.get("confidence_score"))),
        ("gaps", fmt(len(report.get("gaps") or []))),
    ]
    return (
        f"<h1>tradescout · {escape(str(report.get('portfolio')))}{badge}</h1>"
        f'<p class="meta">run {escape(str(meta.get("run_id")))} · '
        f"{escape(str(meta.get('execution_timestamp')))} · upstream {escape(str(upstream))} · "
        f"{escape(str(meta.get('data_source')))} · "
        f"tradescout {escape(str(meta.get('tool_version')))}<br>"
        f"{escape(str(ps.get('first_entry_date')))} → {escape(str(ps.get('last_exit_date')))}</p>"
        '<div class="kpis">'
        + "".join(f'<div class="kpi">{escape(k)}<b>{escape(v)}</b></div>' for k, v in kpis)
        + "</div>"
    )


def _money_kpi(pm: Mapping[str, Any]) -> str:
    """Realized PnL per currency (never one sum across currencies), and the converted total
    with its rates when the report has one; older reports: their single total."""
    by = pm.get("by_currency")
    if not isinstance(by, Mapping) or not by:
        return fmt(pm.get("total_pnl"))
    text = " · ".join(f"{code} {fmt((m or {}).get('total_pnl'))}" for code, m in by.items())
    converted = pm.get("converted")
    if isinstance(converted, Mapping) and len(by) > 1:
        rates = ", ".join(
            f"{r.get('symbol')} {fmt(r.get('rate'))}"
            for r in (converted.get("rates") or {}).values()
        )
        text += f" (≈ {converted.get('currency')} {fmt(converted.get('total_pnl'))} at {rates})"
    return text


def _coverage(report: Mapping[str, Any]) -> str:
    rows = coverage_rows(report)
    if not rows:
        return section("Coverage", note("This report lists no tickers."), ident="coverage")
    head = "".join(f"<th>{escape(label)}</th>" for _, label in COLUMNS)
    out = [f'<table class="coverage"><thead><tr><th>ticker</th>{head}</tr></thead><tbody>']
    for ticker, cells in rows:
        out.append(f"<tr><th>{escape(ticker)}</th>")
        for cell in cells:
            mark = SYMBOL[cell.state]
            inner = f'<span class="gap-mark">{mark}</span>' if cell.state == "gap" else mark
            reasons = f' data-reasons="{escape(" ".join(cell.reasons))}"' if cell.reasons else ""
            out.append(
                f'<td class="cell {cell.state}" data-column="{cell.column}"{reasons} '
                f'title="{escape(cell.hover)}">{inner}</td>'
            )
        out.append("</tr>")
    out.append("</tbody></table>")
    legend = (
        '<p class="legend"><span class="ok">✓ present</span><span class="stale">! stale</span>'
        '<span class="gap">✗ gap (hover: reason, fix)</span><span class="missing">· no local '
        'file</span><span class="none">– no value, no gap</span></p>'
    )
    extra = market_gaps(report)
    listing = ""
    if extra:
        listing = "<h3>Other gaps (market context)</h3>" + table(
            ["subject", "service", "dataset", "reason", "detail", "fix"],
            [
                [
                    g.get("subject") or g.get("ticker") or "",
                    g.get("service") or "",
                    g.get("dataset"),
                    g.get("reason"),
                    g.get("detail") or "",
                    g.get("fix") or "",
                ]
                for g in extra
            ],
        )
    return section("Coverage", legend, "".join(out), listing, ident="coverage")


def _sector_of(report: Mapping[str, Any], ticker: str) -> str:
    by = ((report.get("exposure") or {}).get("by_ticker") or {}).get(ticker) or {}
    local = (
        ((report.get("local_data_integration") or {}).get("fundamental_analysis") or {}).get(
            "tickers"
        )
        or {}
    ).get(ticker) or {}
    profile = ((report.get("ticker_data") or {}).get(ticker) or {}).get("profile") or {}
    return str(by.get("sector") or local.get("sector") or profile.get("sector") or "—")


def _mark_of(report: Mapping[str, Any], position: Mapping[str, Any]) -> str:
    """The position's own mark when the report gives one, else the ticker's last close from
    its price summary (with its date, and marked synthetic when it came from the sandbox)."""
    mark = position.get("mark")
    if isinstance(mark, Mapping):
        value = fmt(mark.get("price") or mark.get("value"))
        return f"{value} {mark.get('currency') or ''} ({mark.get('as_of')})"
    data = (report.get("ticker_data") or {}).get(position.get("ticker")) or {}
    price = data.get("price_history") or {}
    if price.get("end_close") is None:
        return "—"
    prov = (data.get("provenance") or {}).get("price_history") or {}
    synthetic = " synthetic" if prov.get("synthetic") else ""
    close = f"{fmt(price['end_close'])} {price.get('currency') or ''}"
    return f"{close} ({price.get('end_date')}{synthetic})"


def _positions(report: Mapping[str, Any]) -> str:
    positions = report.get("active_positions")
    if not isinstance(positions, list):
        return section(
            "Open positions",
            note("This report has no active_positions section."),
            ident="positions",
        )
    if not positions:
        return section("Open positions", note("No open positions."), ident="positions")
    rows = []
    for p in positions:
        upnl = p.get("csv_unrealized_return", p.get("current_unrealized_pnl"))
        cls = "pnl-pos" if isinstance(upnl, int | float) and upnl >= 0 else "pnl-neg"
        mark = p.get("mark") if isinstance(p.get("mark"), Mapping) else {}
        marked = mark.get("unrealized_return")
        mcls = "pnl-pos" if isinstance(marked, int | float) and marked >= 0 else "pnl-neg"
        csv_as_of = f" ({p['csv_as_of']})" if p.get("csv_as_of") else ""
        rows.append(
            [
                p.get("ticker"),
                p.get("strategy") or "",
                p.get("direction") or "",
                p.get("entry_date") or "",
                fmt(p.get("entry_price")),
                fmt(p.get("position_size")),
                fmt(p.get("days_since_entry")),
                Markup(f'<span class="{cls}">{escape(pct(upnl) + csv_as_of)}</span>'),
                _mark_of(report, p),
                Markup(f'<span class="{mcls}">{escape(pct(marked))}</span>') if mark else "—",
                _sector_of(report, str(p.get("ticker"))),
            ]
        )
    head = [
        "ticker",
        "strategy",
        "direction",
        "entry",
        "entry price",
        "size",
        "days",
        "unrealized (CSV, as of)",
        "last close / mark",
        "unrealized (mark)",
        "sector",
    ]
    return section("Open positions", table(head, rows, {4, 5, 6, 7, 9}), ident="positions")


def _strategy_row(stats: Mapping[str, Any]) -> dict[str, Any]:
    """A strategy's figures as flat columns: money per currency becomes `total_pnl USD`, …"""
    flat: dict[str, Any] = {}
    for k, v in (stats or {}).items():
        if k == "by_currency" and isinstance(v, Mapping):
            for code, money in v.items():
                flat[f"total_pnl {code}"] = (money or {}).get("total_pnl")
        elif not isinstance(v, list):
            flat[k] = v
    return flat


def _strategies(report: Mapping[str, Any]) -> str:
    perf = report.get("strategy_performance")
    if isinstance(perf, Mapping) and perf:
        flat = {name: _strategy_row(stats) for name, stats in perf.items()}
        keys: list[str] = []
        for stats in flat.values():
            keys.extend(k for k in stats if k not in keys)
        rows = [[name, *(fmt(stats.get(k)) for k in keys)] for name, stats in flat.items()]
        return section(
            "Strategy performance",
            table(["strategy", *keys], rows, set(range(1, len(keys) + 1))),
            ident="strategies",
        )
    parts = [note("Strategy performance is not in this report (a newer tradescout adds it).")]
    dist = report.get("strategy_distribution")
    if isinstance(dist, Mapping) and dist:
        parts.append(table(["strategy", "trades"], [[k, fmt(v)] for k, v in dist.items()], {1}))
    return section("Strategy performance", *parts, ident="strategies")


def _equity(report: Mapping[str, Any], trades: TradeColumns | None, source: str) -> str:
    if trades is None or not trades.count:
        return section("Realized equity curve", note(f"Not drawn: {source}."), ident="equity")
    curves = series.equity_curves(trades)
    parts = [svg.line_chart(list(curves.items()), label="cumulative realized PnL in exit order")]
    given = (report.get("period_performance") or {}).get("max_drawdown")
    for name, points in curves.items():
        worst = series.max_drawdown(points)
        mine = given.get(name) if isinstance(given, Mapping) else None  # per currency
        if isinstance(mine, Mapping) and "value" in mine:
            worst, origin = dict(mine), "period_performance.max_drawdown"
        elif isinstance(given, Mapping) and len(curves) == 1 and "value" in given:
            worst, origin = dict(given), "period_performance.max_drawdown"
        else:
            origin = "computed from closed_trades"
        w = worst or {}
        parts.append(
            f"<h3>Drawdown · {escape(name)}</h3>"
            + svg.area_below_zero(series.drawdown(points), label=f"drawdown {name}")
            + note(
                f"max drawdown {fmt(w.get('value'))} from {w.get('peak_date')} "
                f"to {w.get('trough_date')} ({origin})"
            )
        )
    skipped = (
        f"; {trades.skipped} records without an exit date or PnL left out" if trades.skipped else ""
    )
    parts.append(note(f"{trades.count:,} closed trades {source}{skipped}."))
    return section("Realized equity curve", *parts, ident="equity")


def _monthly(report: Mapping[str, Any], trades: TradeColumns | None) -> str:
    bars = series.monthly_from_report((report.get("period_performance") or {}).get("monthly"))
    origin = "period_performance.monthly"
    if not bars and trades is not None and trades.count:
        bars, origin = series.monthly_from_trades(trades), "computed from closed_trades"
    if not bars:
        return section(
            "Monthly PnL",
            note("Not drawn: this report has no period_performance or closed_trades."),
            ident="monthly",
        )
    parts = [
        f"<h3>{escape(name)}</h3>"
        + svg.bar_chart(points, label=f"realized PnL by exit month {name}")
        for name, points in bars.items()
    ]
    return section("Monthly PnL", *parts, note(f"By exit month ({origin})."), ident="monthly")


def _usage(report: Mapping[str, Any]) -> str:
    usage = report.get("service_usage")
    if not isinstance(usage, Mapping) or not usage:
        return section(
            "Service usage", note("This report has no service_usage section."), ident="usage"
        )
    cols = ["planned", "cache_hits", "network_requests", "retries", "rate_limited", "errors"]
    rows = []
    for name, u in usage.items():
        hits, net = int(u.get("cache_hits") or 0), int(u.get("network_requests") or 0)
        share = f"{100 * hits / (hits + net):.0f}%" if hits + net else "—"
        rows.append(
            [
                name,
                *(fmt(u.get(c)) for c in cols),
                share,
                u.get("breaker_state") or "—",
                fmt(u.get("quota_used_today")),
            ]
        )
    head = ["service", *(c.replace("_", " ") for c in cols), "from cache", "breaker", "quota used"]
    return section("Service usage", table(head, rows, set(range(1, 9))), ident="usage")


def _trend(trend: list[dict[str, Any]] | None) -> str:
    points = [
        (str(d.get("day")), float(d["hit_ratio"]))
        for d in trend or []
        if d.get("hit_ratio") is not None
    ]
    if not points:
        return section(
            "Cache hit ratio by day",
            note("No run ledger with discover runs in this data root yet."),
            ident="trend",
        )
    chart = svg.line_chart(
        [("hit ratio", points)],
        height=180,
        fmt=lambda v: f"{v * 100:.0f}%",
        label="cache hit ratio by day",
    )
    return section(
        "Cache hit ratio by day",
        chart,
        note("Cache hits / (hits + network requests) of discover runs, from the run ledger."),
        ident="trend",
    )


def report_page(
    report: Mapping[str, Any],
    *,
    trades: TradeColumns | None,
    trades_source: str,
    trend: list[dict[str, Any]] | None,
) -> str:
    body = [
        _header(report),
        _coverage(report),
        _positions(report),
        _strategies(report),
        _equity(report, trades, trades_source),
        _monthly(report, trades),
        _usage(report),
        _trend(trend),
    ]
    return document(f"tradescout · {report.get('portfolio')}", body)
