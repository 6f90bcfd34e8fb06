"""Sector names: one canonical snake_case id per sector, whatever spelling a source uses.

Sector labels arrive from sector file names (`FINANCE_20261020.md`, `HealthCare_…`), from
fundamental files (`**Primary Sector**: Consumer Cyclical`) and from profile services (FMP says
"Financial Services", Alpha Vantage "TECHNOLOGY"). Matching them by string equality is how local
sector analysis went unfound; everything compares canonical ids instead. A label that is not in
the alias map is unknown (None) — never the nearest guess.
"""

from __future__ import annotations

import re

CANONICAL_SECTORS: tuple[str, ...] = (
    "communication_services",
    "consumer_discretionary",
    "consumer_staples",
    "energy",
    "financials",
    "healthcare",
    "industrials",
    "materials",
    "real_estate",
    "technology",
    "utilities",
)

# Aliases in any spelling; they are compacted (lower-case, letters and digits only) at import.
_ALIASES: dict[str, tuple[str, ...]] = {
    "communication_services": (
        "communication services",
        "communications services",
        "communication",
        "communications",
        "telecom",
        "telecoms",
        "telecommunication",
        "telecommunications",
        "telecommunication services",
        "telecommunications services",
    ),
    "consumer_discretionary": ("consumer discretionary", "consumer cyclical", "consumer cyclicals"),
    "consumer_staples": ("consumer staples", "consumer defensive"),
    "energy": ("energy",),
    "financials": ("financials", "financial", "finance", "financial services"),
    "healthcare": ("healthcare", "health care", "life sciences"),
    "industrials": ("industrials", "industrial"),
    "materials": ("materials", "basic materials"),
    "real_estate": ("real estate", "realestate", "reit", "reits"),
    "technology": ("technology", "tech", "information technology"),
    "utilities": ("utilities", "utility"),
}

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def _compact(name: str) -> str:
    """`Health-Care`, `health_care`, `HealthCare` and `HEALTH CARE` all become `healthcare`."""
    return _NON_ALNUM.sub("", name.lower())


_LOOKUP: dict[str, str] = {
    _compact(alias): canonical
    for canonical, aliases in _ALIASES.items()
    for alias in (canonical, *aliases)
}


def canonical_sector(name: str | None) -> str | None:
    """The canonical snake_case id for a sector label, or None when the label is not known."""
    if not name:
        return None
    return _LOOKUP.get(_compact(name))
