"""Sector exposure, and local analysis overtaken by newer filings. Pure.

A ticker's sector is its local analysis file's (already a canonical id), else its fetched
profile's, normalized through the alias map (`discovery.local.sectors`); when both are known
and disagree, the profile's is listed under `conflicts`. A label the alias map does not know is
no sector (null), never the nearest guess; a crypto pair has none (`asset_class: crypto`) and
its positions are grouped under `crypto`. Open positions are grouped by that sector with their
marked value (mark price × size, negative for a Short) per currency.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from discovery.ingest.figures import money
from discovery.local.inventory import Inventory
from discovery.report.facts import Learned
from services import coingecko

UNKNOWN_SECTOR = "unknown"
CRYPTO = "crypto"
LOCAL = "local_analysis"


def sector_by_ticker(
    tickers: Sequence[str], inventory: Inventory, learned: Learned
) -> dict[str, dict[str, Any]]:
    """`exposure.by_ticker`: one reconciled sector per traded ticker."""
    local = inventory.entries()
    out: dict[str, dict[str, Any]] = {}
    for ticker in tickers:
        entry = local.get(ticker)
        fetched = learned.profile_sector.get(ticker)
        conflicts: list[dict[str, Any]] = []
        if entry is not None and entry.sector is not None:
            sector, source = entry.sector, LOCAL
            if fetched is not None and fetched.value != entry.sector:
                conflicts.append(
                    {
                        "source": fetched.source,
                        "sector": fetched.value,
                        "reported": fetched.reported,
                    }
                )
        elif fetched is not None:
            sector, source = fetched.value, fetched.source
        else:
            sector, source = None, None
        asset_class = CRYPTO if coingecko.coin_id(ticker) is not None else "security"
        out[ticker] = {
            "sector": sector,
            "source": source,
            "conflicts": conflicts,
            "asset_class": asset_class,
        }
    return out


def sector_exposure(
    positions: Sequence[Mapping[str, Any]], by_ticker: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """`exposure.by_sector`: open positions per sector (`unknown` when no source says), their
    tickers, and their marked value per currency; positions without a mark are counted in
    `unmarked_positions`, never valued."""
    out: dict[str, dict[str, Any]] = {}
    for p in positions:
        ticker = str(p["ticker"])
        known = by_ticker.get(ticker) or {}
        fallback = CRYPTO if known.get("asset_class") == CRYPTO else UNKNOWN_SECTOR
        sector = known.get("sector") or fallback
        group = out.setdefault(
            sector, {"positions": 0, "tickers": [], "marked_value": {}, "unmarked_positions": 0}
        )
        group["positions"] += 1
        if ticker not in group["tickers"]:
            group["tickers"].append(ticker)
        value = _marked_value(p)
        if value is None:
            group["unmarked_positions"] += 1
            continue
        currency = p.get("currency") or "unknown"
        group["marked_value"][currency] = group["marked_value"].get(currency, 0.0) + value
    for group in out.values():
        group["tickers"].sort()
        group["marked_value"] = {c: money(v) for c, v in sorted(group["marked_value"].items())}
    return dict(sorted(out.items()))


def _marked_value(position: Mapping[str, Any]) -> float | None:
    mark = position.get("mark")
    size = position.get("position_size")
    sign = {"Long": 1.0, "Short": -1.0}.get(position.get("direction") or "")
    if not isinstance(mark, Mapping) or size is None or sign is None:
        return None
    price = mark.get("price")
    return None if price is None else sign * float(price) * float(size)


def outdated_analysis(
    inventory: Inventory, learned: Learned, filings_known: set[str]
) -> dict[str, dict[str, Any]]:
    """Per ticker with a local fundamental file: the first 10-K/10-Q/8-K filed after the file's
    date (`outdated_by`, null when none was), and whether its filings were known at all
    (`checked`: false when they were a gap, so null does not read as "up to date")."""
    out: dict[str, dict[str, Any]] = {}
    for ticker, entry in inventory.entries().items():
        filing = learned.filed_after.get(ticker)
        out[ticker] = {
            "file": entry.file,
            "file_date": entry.date.isoformat(),
            "checked": ticker in filings_known,
            "outdated_by": None
            if filing is None
            else {
                "form": filing.form,
                "filing_date": filing.filing_date.isoformat(),
                "accession_number": filing.accession_number,
            },
        }
    return out


def sectors_without_analysis(
    by_ticker: Mapping[str, Mapping[str, Any]], inventory: Inventory
) -> list[str]:
    """Traded sectors (canonical ids) that have no local sector analysis file."""
    traded = {str(v["sector"]) for v in by_ticker.values() if v.get("sector")}
    return sorted(traded - set(inventory.sectors))
