"""IMF DataMapper (World Economic Outlook): real GDP growth by country and year.

No key. Countries are batched in one path (`/{IND}/{ISO3}/{ISO3}...`). Values by year include
the IMF's projections; they are labelled, never mixed silently with actuals. A query without data
answers only `{"api": {...}}`: a negative result.

Projection rule: a year is a projection when `year >= current_year` — the WEO publishes the
current year and later as projections (the latest complete year is the last actual one).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from services._common import as_float, parsed_verdict
from services.errors import BadResponse
from services.records import YearValue
from services.spec import DatasetSpec, ServiceRequest, ServiceSpec, Verdict

NAME = "imf"
GDP_GROWTH = "NGDP_RPCH"


def growth_request(indicator: str, countries: Sequence[str]) -> ServiceRequest:
    ind = indicator.strip().upper()
    isos = tuple(sorted({c.strip().upper() for c in countries if c.strip()}))
    if not ind.replace("_", "").isalnum() or not isos:
        raise ValueError("growth_request needs an indicator and at least one ISO3 country")
    if any(not (len(c) == 3 and c.isalpha()) for c in isos):
        raise ValueError(f"not ISO3 country codes: {', '.join(isos)}")
    return ServiceRequest(
        service=NAME,
        dataset="datamapper",
        path=f"/external/datamapper/api/v1/{ind}/{'/'.join(isos)}",
        subjects=isos,
    )


def probe_request() -> ServiceRequest:
    """One indicator for one country: US real GDP growth."""
    return growth_request(GDP_GROWTH, ["USA"])


def is_projection(year: int, current_year: int) -> bool:
    return year >= current_year


def parse_datamapper(
    payload: Any, indicator: str, *, current_year: int
) -> dict[str, list[YearValue]]:
    """ISO3 → values sorted by year; `{}` when the payload holds nothing for the indicator."""
    if not isinstance(payload, dict):
        raise BadResponse(NAME, "datamapper payload is not an object")
    values = payload.get("values")
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise BadResponse(NAME, "datamapper values is not an object")
    by_country = values.get(indicator.strip().upper())
    if not isinstance(by_country, dict):
        return {}
    result: dict[str, list[YearValue]] = {}
    for country, years in by_country.items():
        if not isinstance(years, dict):
            continue
        series = []
        for year_text, value in years.items():
            try:
                year = int(str(year_text))
            except ValueError:
                continue
            series.append(
                YearValue(
                    year=year, value=as_float(value), projection=is_projection(year, current_year)
                )
            )
        result[str(country).upper()] = sorted(series, key=lambda v: v.year)
    return result


def classify(request: ServiceRequest, status: int, body: Any) -> Verdict:
    indicator = request.path.split("/api/v1/", 1)[-1].split("/", 1)[0]
    return parsed_verdict(
        request,
        status,
        body,
        lambda b: parse_datamapper(b, indicator, current_year=2000),
        empty="negative",
    )


SPEC = ServiceSpec(
    name=NAME,
    default_base_urls={"default": "https://www.imf.org"},
    datasets={"datamapper": DatasetSpec("datamapper", ttl=timedelta(days=1))},
    rate_per_second=2.0,
    max_connections=2,
    timeout_seconds=15.0,
    classify=classify,
    probe=probe_request,
)
