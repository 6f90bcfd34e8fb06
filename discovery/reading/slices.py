"""Parts of a report: one top-level section, or everything the report says about one ticker.

Pure functions on the report's JSON. Unknown names are `InputError`s that list the valid ones,
so a caller (a person, an assistant) can correct itself in one step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from discovery.errors import InputError
from discovery.tickers import normalize_ticker

# Sections keyed by ticker, and where the ticker sits inside each list-shaped section.
_BY_TICKER_DICTS: tuple[tuple[str, ...], ...] = (
    ("ticker_performance",),
    ("ticker_data",),
    ("local_data_integration", "fundamental_analysis", "tickers"),
    ("exposure", "by_ticker"),
)


def section_names(report: Mapping[str, Any]) -> list[str]:
    return list(report)


def section(report: Mapping[str, Any], name: str) -> Any:
    """One top-level section; an unknown name lists the valid ones."""
    if name not in report:
        raise InputError(
            f"No section {name!r} in this report; sections: {', '.join(section_names(report))}."
        )
    return report[name]


def tickers_of(report: Mapping[str, Any]) -> list[str]:
    """Every traded ticker, in the report's order."""
    perf = report.get("ticker_performance")
    return list(perf) if isinstance(perf, Mapping) else []


def _dig(report: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = report
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def check_ticker(report: Mapping[str, Any], ticker: str) -> str:
    symbol = normalize_ticker(ticker)
    known = tickers_of(report)
    if symbol not in known:
        shown = ", ".join(known[:40]) + (f" … ({len(known)} in all)" if len(known) > 40 else "")
        raise InputError(
            f"Ticker {ticker[:20]!r} is not in this report's portfolio; tickers: {shown or 'none'}."
        )
    return symbol


def _about(item: Any, symbol: str) -> bool:
    return isinstance(item, Mapping) and (
        item.get("ticker") == symbol
        or (item.get("ticker") is None and item.get("subject") == symbol)
    )


def ticker_gaps(report: Mapping[str, Any], symbol: str) -> list[Any]:
    gaps = report.get("gaps")
    return [g for g in gaps if _about(g, symbol)] if isinstance(gaps, list) else []


def ticker_slice(report: Mapping[str, Any], ticker: str) -> dict[str, Any]:
    """Everything about one ticker: performance, its trades (when the report lists them), open
    positions, local analysis, profile, price summary, filings, exposure and its gaps."""
    symbol = check_ticker(report, ticker)
    data = _dig(report, ("ticker_data", symbol)) or {}
    positions = report.get("active_positions")
    closed = report.get("closed_trades")
    out: dict[str, Any] = {
        "ticker": symbol,
        "performance": _dig(report, ("ticker_performance", symbol)),
        "active_positions": [p for p in positions if _about(p, symbol)]
        if isinstance(positions, list)
        else None,
    }
    if isinstance(closed, list):
        out["closed_trades"] = [t for t in closed if _about(t, symbol)]
    out["local_analysis"] = _dig(
        report, ("local_data_integration", "fundamental_analysis", "tickers", symbol)
    )
    for key in ("profile", "price_history", "filings", "provenance"):
        out[key] = data.get(key) if isinstance(data, Mapping) else None
    exposure = _dig(report, ("exposure", "by_ticker", symbol))
    if exposure is not None:
        out["exposure"] = exposure
    out["gaps"] = ticker_gaps(report, symbol)
    return out


def section_for_ticker(report: Mapping[str, Any], name: str, ticker: str) -> Any:
    """A section narrowed to one ticker: its entry where the section is keyed by ticker, its
    items where the section is a list of records with a `ticker` field."""
    value = section(report, name)
    symbol = check_ticker(report, ticker)
    for path in _BY_TICKER_DICTS:
        if path[0] == name:
            node = _dig(report, path)
            return {symbol: node.get(symbol)} if isinstance(node, Mapping) else None
    if isinstance(value, list):
        return [item for item in value if _about(item, symbol)]
    raise InputError(
        f"Section {name!r} is not broken down by ticker; drop --ticker, or use --ticker alone "
        "for everything about one ticker."
    )


def overview(report: Mapping[str, Any]) -> dict[str, Any]:
    """What the report holds: per section its size in characters and entries, to ask for."""
    from discovery.reading.bounded import dumps

    sizes = {}
    for name, value in report.items():
        entries = len(value) if isinstance(value, (list, dict)) else None
        sizes[name] = {"chars": len(dumps(value)), "entries": entries}
    meta = report.get("discovery_metadata") or {}
    return {
        "portfolio": report.get("portfolio"),
        "run_id": meta.get("run_id"),
        "executed_at": meta.get("execution_timestamp"),
        "upstream": meta.get("upstream"),
        "confidence_score": meta.get("confidence_score"),
        "tickers": len(tickers_of(report)),
        "gaps": len(report.get("gaps") or []),
        "sections": sizes,
    }
