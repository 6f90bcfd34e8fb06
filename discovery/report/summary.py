"""The short summary `discover` prints: bounded (< 6,000 characters) whatever the portfolio.

Money is shown per currency (never one total across currencies), with the converted total and
the rate behind it where there is one; gaps are grouped by service and reason with the subjects
they are about (symbols, series), each group's examples its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from services.reasons import is_fault

SUMMARY_LIMIT = 6000
EXAMPLES = 6
GAP_GROUPS = 10


def plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def _signed(value: float) -> str:
    return f"{value:+,.2f}"


def _listed(items: Sequence[str], limit: int = EXAMPLES) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" … +{len(items) - limit}" if len(items) > limit else "")


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def money_line(pm: Mapping[str, Any]) -> str:
    """`Realized PnL: USD +480.12 · AUD +35.13 (≈ USD +503.47 at AUDUSD=X 0.6512 on …)`."""
    by = pm.get("by_currency") or {}
    if not by:
        return "Realized PnL: no closed trade with a PnL"
    parts = [f"{code} {_signed(m['total_pnl'])}" for code, m in by.items()]
    line = "Realized PnL: " + " · ".join(parts)
    converted = pm.get("converted")
    if converted and len(by) > 1:
        rates = ", ".join(
            f"{r['symbol']} {r['rate']:.4g} on {r['as_of']}" for r in converted["rates"].values()
        )
        line += f" (≈ {converted['currency']} {_signed(converted['total_pnl'])} at {rates})"
    elif pm.get("not_converted") and len(by) > 1:
        line += f" (no {pm.get('base_currency')} total: no rate for "
        line += ", ".join(pm["not_converted"]) + ")"
    unknown = pm.get("currency_unknown") or []
    if unknown and "unknown" in by:
        line += f"; currency unknown for {_listed(unknown)}"
    return line


def marks_line(positions: Sequence[Mapping[str, Any]]) -> str | None:
    if not positions:
        return None
    marked = [p for p in positions if p.get("mark")]
    totals: dict[str, float] = {}
    for p in marked:
        pnl = p["mark"].get("unrealized_pnl")
        if pnl is not None:
            code = p["mark"].get("currency") or "unknown"
            totals[code] = totals.get(code, 0.0) + pnl
    line = f"Open positions: {len(positions):,}, {len(marked):,} marked to market"
    if totals:
        line += " (unrealized " + " · ".join(f"{c} {_signed(v)}" for c, v in totals.items()) + ")"
    unmarked = _unique(str(p["ticker"]) for p in positions if not p.get("mark"))
    if unmarked:
        line += f"; no price for {_listed(unmarked)}"
    return line


def requests_lines(usage: Mapping[str, Mapping[str, Any]]) -> list[str]:
    def total(field: str) -> int:
        return sum(int(u.get(field) or 0) for u in usage.values())

    lines = [
        f"Requests: {total('network_requests'):,} network · {total('planned'):,} planned · "
        f"{total('retries'):,} retries · {total('cache_hits'):,} cache hits"
    ]
    per = []
    for name, u in sorted(usage.items()):
        counts = {k: int(u.get(k) or 0) for k in ("network_requests", "planned", "retries")}
        hits, errors = int(u.get("cache_hits") or 0), int(u.get("errors") or 0)
        if not any(counts.values()) and not hits and not errors:
            continue  # a service this run did not use at all
        text = f"{name} {counts['network_requests']} network/{counts['planned']} planned"
        if counts["retries"]:
            text += f"/{counts['retries']} retries"
        if hits:
            text += f"/{hits} hits"
        if errors:
            text += f", {plural(errors, 'error')}"
        if u.get("breaker_state") == "open":
            text += " [breaker open]"
        per.append(text)
    if per:
        lines.append("  " + "; ".join(per))
    return lines


def gap_lines(gaps: Sequence[Mapping[str, Any]]) -> list[str]:
    """`Gaps: 3 (1 fault)` and one line per (service, reason) with its own subjects."""
    if not gaps:
        return ["Gaps: none"]
    faults = sum(1 for g in gaps if is_fault(str(g.get("reason"))))
    groups: dict[tuple[str, str], list[str]] = {}
    for g in gaps:
        key = (str(g.get("service") or "-"), str(g.get("reason")))
        groups.setdefault(key, []).append(str(g.get("subject") or g.get("ticker") or "-"))
    lines = [f"Gaps: {len(gaps):,} ({plural(faults, 'fault')})"]
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    for (service, reason), subjects in ordered[:GAP_GROUPS]:
        lines.append(f"  {service}: {reason} ×{len(subjects)} ({_listed(_unique(subjects))})")
    if len(ordered) > GAP_GROUPS:
        lines.append(f"  … {plural(len(ordered) - GAP_GROUPS, 'more group')}")
    return lines


def render_summary(report: Mapping[str, Any], report_path: str, latest: str | None = None) -> str:
    """A short, bounded summary for humans and assistants (< 6,000 characters always).
    `report_path`: this run's own report file; `latest`: the daily file it also became."""
    meta = report["discovery_metadata"]
    ps = report["portfolio_summary"]
    pm = report["performance_metrics"]
    fa = report["local_data_integration"]["fundamental_analysis"]
    cov = fa.get("coverage", {})
    pf = pm.get("profit_factor")
    lines = [
        f"tradescout discover · {report['portfolio']} · upstream {meta['upstream']} · "
        f"confidence {meta['confidence_score']:.2f}",
        f"Trades {ps['total_trades']:,} ({ps['closed_trades']:,} closed, "
        f"{ps['active_trades']:,} open) over {plural(ps['unique_tickers'], 'ticker')}, "
        f"{ps['first_entry_date']} → {ps['last_exit_date']}",
        f"Win rate {_pct(pm['win_rate'])}"
        + (f" · profit factor {pf:.2f} ({pm.get('currency')})" if pf is not None else ""),
        money_line(pm),
    ]
    marks = marks_line(report.get("active_positions") or [])
    if marks:
        lines.append(marks)
    stale = len(fa.get("stale", []) or [])
    local = (
        f"Local analysis: {cov.get('with_analysis', 0)}/{plural(cov.get('total', 0), 'ticker')} "
        f"({_pct(cov.get('ratio'))}), {stale} stale"
    )
    overtaken = report["next_phase_inputs"].get("analysis_predates_filing") or []
    if overtaken:
        local += f"; older than a filing: {_listed(overtaken)}"
    lines.append(local)
    mc = report["market_context"]
    bench = next(iter(mc["benchmarks"].values()), None) if mc["benchmarks"] else None
    if bench and bench.get("period_return") is not None:
        lines.append(
            f"Benchmark {bench.get('symbol')}: {_pct(bench['period_return'])} "
            f"({bench.get('start_date')} → {bench.get('end_date')})"
        )
    vix = mc["volatility"].get("vix")
    if vix:
        lines.append(f"VIX {vix['value']:.2f} ({vix['regime']}), as of {vix['as_of']}")
    lines.extend(requests_lines(report["service_usage"]))
    quality = report["data_quality_assessment"]
    counts = quality.get("issue_counts") or {}
    if counts:
        first = next((i.get("row") for i in quality.get("issues") or [] if i.get("row")), None)
        kinds = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:6]
        lines.append(
            "Data-quality issues: "
            + ", ".join(f"{k} ×{n}" for k, n in kinds)
            + (f" (first at row {first})" if first else "")
        )
    lines.extend(gap_lines(report["gaps"]))
    missing = report["next_phase_inputs"].get("tickers_missing_analysis", [])
    if missing:
        lines.append(f"No local analysis: {_listed(missing, 20)}")
    tail = [f"Report: {report_path}"] + ([f"Latest: {latest}"] if latest else [])
    text = "\n".join([*lines, *tail])
    if len(text) > SUMMARY_LIMIT:  # bounded by construction; this is the last guard
        text = text[: SUMMARY_LIMIT - 200] + "\n… (truncated)\n" + "\n".join(tail)
    return text
