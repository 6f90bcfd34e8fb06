"""Stage 4: assemble the discovery report (DESIGN.md §5) and its short summary. Pure.

The confidence score is computed from measured completeness, never a constant:

    confidence = 0.4·trade_quality + 0.2·local_coverage + 0.2·ticker_data + 0.2·market_context

* trade_quality  — share of CSV rows without a data-quality issue (from the TradeBook);
* local_coverage — tickers with a local fundamental file (a stale file counts half);
* ticker_data    — share of the per-ticker datasets (profile, price history, filings where
                   applicable) present in the report;
* market_context — share of the market-context values present (benchmark, VIX, each FRED series,
                   crypto market, global growth).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from importlib import resources
from typing import Any

from discovery.plan import PlannedGap

INHERENT_GAP_REASONS = frozenset({"not_found", "not_applicable"})
SUMMARY_LIMIT = 6000

WEIGHTS = {"trade_quality": 0.4, "local_coverage": 0.2, "ticker_data": 0.2, "market_context": 0.2}


@dataclass(frozen=True)
class Gap:
    ticker: str | None
    service: str | None
    dataset: str
    reason: str
    detail: str | None = None
    subject: str | None = None  # the ticker, or the market series/coin (None: the ticker)

    @classmethod
    def from_planned(cls, gap: PlannedGap) -> Gap:
        return cls(gap.ticker, gap.service, gap.dataset, gap.reason, gap.detail, gap.subject)

    @property
    def about(self) -> str:
        return self.subject or self.ticker or self.dataset

    @property
    def is_fault(self) -> bool:
        """A gap caused by a service or by the run (exit 3), not by the data itself."""
        return self.reason not in INHERENT_GAP_REASONS

    def to_json(self) -> dict[str, Any]:
        return {
            "ticker": self.ticker,
            "service": self.service,
            "dataset": self.dataset,
            "reason": self.reason,
            "detail": self.detail,
            "subject": self.about,
        }


def load_schema() -> dict[str, Any]:
    text = resources.files("discovery").joinpath("report.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def validate_report(report: Mapping[str, Any]) -> None:
    """Raise `jsonschema.ValidationError` when the report breaks the shipped schema."""
    import jsonschema

    jsonschema.validate(report, load_schema())


def confidence(components: Mapping[str, float]) -> float:
    total = sum(WEIGHTS[name] * max(0.0, min(1.0, components.get(name, 0.0))) for name in WEIGHTS)
    return round(total, 4)


def dedupe_gaps(gaps: Sequence[Gap]) -> list[Gap]:
    """One gap per (ticker, service, dataset, subject): the first reason found wins."""
    seen: set[tuple[str | None, str | None, str, str]] = set()
    out: list[Gap] = []
    for gap in gaps:
        ident = (gap.ticker, gap.service, gap.dataset, gap.about)
        if ident not in seen:
            seen.add(ident)
            out.append(gap)
    return out


def next_phase_inputs(
    *,
    report_path: str,
    closed_trades: int,
    active_trades: int,
    confidence_score: float,
    fault_gaps: int,
    tickers_missing_analysis: Sequence[str],
    stale_analysis: Sequence[str],
) -> dict[str, Any]:
    return {
        "report_path": report_path,
        "analysis_ready": closed_trades > 0,
        "confidence_score": confidence_score,
        "closed_trades": closed_trades,
        "active_trades": active_trades,
        "statistical_adequacy": closed_trades >= 30,
        "complete": fault_gaps == 0,
        "tickers_missing_analysis": list(tickers_missing_analysis),
        "stale_analysis": list(stale_analysis),
    }


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


def iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
