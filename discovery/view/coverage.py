"""The coverage matrix: for each traded ticker, what the report holds per dataset (pure).

A cell is `ok` (a value with its provenance), `stale` (a local analysis past its age limit),
`gap` (no value, and the report's gaps say why: reason, detail, fix when given), `missing`
(no local analysis file) or `none` (no value and no gap: e.g. filings of a crypto pair).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.recordclass import record

COLUMNS: tuple[tuple[str, str], ...] = (
    ("local_analysis", "local analysis"),
    ("profile", "profile"),
    ("price_history", "price history"),
    ("filings", "filings"),
)
# The datasets behind each column, as gaps name them (a gap may also name its slot directly).
GAP_COLUMN = {
    "profile": "profile",
    "overview": "profile",
    "simple_price": "profile",
    "chart": "price_history",
    "submissions": "filings",
    "cik_map": "filings",
}


@record
class Cell:
    column: str
    state: str  # ok | stale | gap | missing | none
    hover: str
    reasons: tuple[str, ...] = ()


def gap_column(gap: Mapping[str, Any]) -> str | None:
    slot = gap.get("slot")
    if isinstance(slot, str) and slot in dict(COLUMNS):
        return slot
    return GAP_COLUMN.get(str(gap.get("dataset")))


def _gap_line(gap: Mapping[str, Any]) -> str:
    parts = [f"{gap.get('service') or '-'}/{gap.get('dataset')}: {gap.get('reason')}"]
    for key in ("detail", "fix"):
        if gap.get(key):
            parts.append(str(gap[key]))
    return " — ".join(parts)


def _provenance(data: Mapping[str, Any], column: str) -> str:
    prov = (data.get("provenance") or {}).get(column) or {}
    if not prov:
        return "present"
    text = f"{prov.get('service')} ({prov.get('origin')}, {prov.get('fetched_at')})"
    return text + (" · synthetic (sandbox)" if prov.get("synthetic") else "")


def ticker_gaps(report: Mapping[str, Any]) -> dict[tuple[str, str], list[Mapping[str, Any]]]:
    out: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for gap in report.get("gaps") or []:
        ticker, column = gap.get("ticker"), gap_column(gap)
        if ticker and column:
            out.setdefault((ticker, column), []).append(gap)
    return out


def coverage_rows(report: Mapping[str, Any]) -> list[tuple[str, list[Cell]]]:
    tickers = list(report.get("ticker_performance") or {})
    local = ((report.get("local_data_integration") or {}).get("fundamental_analysis") or {}).get(
        "tickers"
    ) or {}
    data_all = report.get("ticker_data") or {}
    gaps = ticker_gaps(report)
    rows = []
    for ticker in tickers:
        cells = []
        entry = local.get(ticker)
        if entry:
            state = "stale" if entry.get("stale") else "ok"
            hover = f"{entry.get('file')} ({entry.get('age_days')} days old"
            hover += ", stale)" if entry.get("stale") else ")"
            cells.append(Cell("local_analysis", state, hover))
        else:
            cells.append(Cell("local_analysis", "missing", "no local analysis file"))
        data = data_all.get(ticker) or {}
        for column, _ in COLUMNS[1:]:
            found = gaps.get((ticker, column), [])
            if data.get(column):
                cells.append(Cell(column, "ok", _provenance(data, column)))
            elif found:
                reasons = tuple(str(g.get("reason")) for g in found)
                cells.append(Cell(column, "gap", "\n".join(map(_gap_line, found)), reasons))
            else:
                cells.append(Cell(column, "none", "no value, and no gap recorded"))
        rows.append((ticker, cells))
    return rows


def market_gaps(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Gaps that are about no traded ticker's cell (market context, maps, coins)."""
    return [g for g in report.get("gaps") or [] if not (g.get("ticker") and gap_column(g))]
