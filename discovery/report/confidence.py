"""The report's confidence score and its hand-off block for the next phase. Pure.

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

from collections.abc import Mapping, Sequence
from typing import Any

WEIGHTS = {"trade_quality": 0.4, "local_coverage": 0.2, "ticker_data": 0.2, "market_context": 0.2}


def confidence(components: Mapping[str, float]) -> float:
    total = sum(WEIGHTS[name] * max(0.0, min(1.0, components.get(name, 0.0))) for name in WEIGHTS)
    return round(total, 4)


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
