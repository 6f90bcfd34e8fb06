"""Sector labels from file names, analysis files and profile services map to one canonical id."""

from __future__ import annotations

import pytest

from discovery.local.sectors import CANONICAL_SECTORS, canonical_sector


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        # sector file names as found on disk
        ("technology", "technology"),
        ("TECHNOLOGY", "technology"),
        ("FINANCE", "financials"),
        ("Industrial", "industrials"),
        ("communication_services", "communication_services"),
        ("COMMUNICATION_SERVICES", "communication_services"),
        ("HealthCare", "healthcare"),
        ("real-estate", "real_estate"),
        # fundamental files and profile services (FMP, Alpha Vantage)
        ("Financial Services", "financials"),
        ("Consumer Cyclical", "consumer_discretionary"),
        ("Consumer Discretionary", "consumer_discretionary"),
        ("Consumer Defensive", "consumer_staples"),
        ("consumer staples", "consumer_staples"),
        ("Basic Materials", "materials"),
        ("Communication Services", "communication_services"),
        ("Telecom", "communication_services"),
        ("Health Care", "healthcare"),
        ("Information Technology", "technology"),
        ("Tech", "technology"),
        ("Real Estate", "real_estate"),
        ("Utilities", "utilities"),
        ("  Energy  ", "energy"),
        ("LIFE SCIENCES", "healthcare"),
    ],
)
def test_aliases(label: str, expected: str) -> None:
    assert canonical_sector(label) == expected


@pytest.mark.parametrize(
    "label",
    [
        "",
        None,
        "Widgets",
        "TRADE & SERVICES",
        "MANUFACTURING",
        "ENERGY & TRANSPORTATION",
        "consumer",
        "technologies",
    ],
)
def test_unknown_labels_are_none(label: str | None) -> None:
    # Ambiguous Alpha Vantage groupings are not mapped to a "nearest" sector.
    assert canonical_sector(label) is None


def test_every_canonical_id_maps_to_itself() -> None:
    assert len(CANONICAL_SECTORS) == 11
    for sector in CANONICAL_SECTORS:
        assert canonical_sector(sector) == sector
        assert canonical_sector(sector.upper().replace("_", " ")) == sector
