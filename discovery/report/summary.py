"""The short summary `discover` prints: bounded (< 6,000 characters) whatever the portfolio."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

SUMMARY_LIMIT = 6000


def _fmt_pct(value: Any) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def render_summary(report: Mapping[str, Any], report_path: str) -> str:
    """A short, bounded summary for humans and assistants (< 6,000 characters always)."""
    meta = report["discovery_metadata"]
    ps = report["portfolio_summary"]
    pm = report["performance_metrics"]
    fa = report["local_data_integration"]["fundamental_analysis"]
    cov = fa.get("coverage", {})
    gaps = report["gaps"]
    lines = [
        f"tradescout discover · {report['portfolio']} · upstream {meta['upstream']} · "
        f"confidence {meta['confidence_score']:.2f}",
        f"Trades {ps['total_trades']} ({ps['closed_trades']} closed, {ps['active_trades']} open) "
        f"over {ps['unique_tickers']} tickers, {ps['first_entry_date']} → {ps['last_exit_date']}",
        f"Win rate {_fmt_pct(pm['win_rate'])} · profit factor "
        f"{'n/a' if pm['profit_factor'] is None else format(pm['profit_factor'], '.2f')} · "
        f"total PnL {pm['total_pnl']:.2f}",
        f"Local analysis: {cov.get('with_analysis', 0)}/{cov.get('total', 0)} tickers "
        f"({_fmt_pct(cov.get('ratio'))}), {len(fa.get('stale', []) or [])} stale",
    ]
    mc = report["market_context"]
    bench = next(iter(mc["benchmarks"].values()), None) if mc["benchmarks"] else None
    if bench and bench.get("period_return") is not None:
        lines.append(
            f"Benchmark {bench.get('symbol')}: {_fmt_pct(bench['period_return'])} "
            f"({bench.get('start_date')} → {bench.get('end_date')})"
        )
    vix = mc["volatility"].get("vix")
    if vix:
        lines.append(f"VIX {vix['value']:.2f} ({vix['regime']}), as of {vix['as_of']}")
    usage = report["service_usage"]
    calls = sum(u["network_requests"] for u in usage.values())
    hits = sum(u["cache_hits"] for u in usage.values())
    lines.append(f"Requests: {calls} network, {hits} cache hits")
    per = [
        f"{name} {u['network_requests']}/{u['planned']}"
        + (f" err {u['errors']}" if u["errors"] else "")
        + (f" [{u['breaker_state']}]" if u["breaker_state"] == "open" else "")
        for name, u in sorted(usage.items())
        if u["planned"] or u["network_requests"] or u["cache_hits"]
    ]
    if per:
        lines.append("  " + ", ".join(per))
    issues = report["data_quality_assessment"]["issues"]
    if issues:
        kinds = Counter(i["kind"] for i in issues)
        lines.append(
            "Data-quality issues: "
            + ", ".join(f"{k} ×{n}" for k, n in kinds.most_common(6))
            + (f" (first at row {issues[0]['row']})" if issues[0].get("row") else "")
        )
    if gaps:
        by_reason = Counter((g["reason"], g["service"] or "-") for g in gaps)
        lines.append(f"Gaps: {len(gaps)}")
        for (reason, service), n in by_reason.most_common(8):
            sample = [g["ticker"] or g["dataset"] for g in gaps if g["reason"] == reason][:6]
            lines.append(f"  {service}: {reason} ×{n} (e.g. {', '.join(map(str, sample))})")
    else:
        lines.append("Gaps: none")
    missing = report["next_phase_inputs"].get("tickers_missing_analysis", [])
    if missing:
        shown = ", ".join(missing[:20]) + (f" … +{len(missing) - 20}" if len(missing) > 20 else "")
        lines.append(f"No local analysis: {shown}")
    lines.append(f"Report: {report_path}")
    text = "\n".join(lines)
    if len(text) > SUMMARY_LIMIT:  # bounded by construction; this is the last guard
        text = text[: SUMMARY_LIMIT - 40] + f"\n… (truncated)\nReport: {report_path}"
    return text
