"""IMF DataMapper `/external/datamapper/api/v1/{IND}/{ISO3}[/{ISO3}…][?periods=2024,2025]`.

`{"values": {IND: {ISO3: {"1980": v, …}}}, "api": {…}}` with years from 1980 (or a country's first
year) to five years past the current one — the last ones are projections, as on the real service.
Nothing known answers just the `api` block.
"""

from __future__ import annotations

from functools import lru_cache

from services.sandbox.reply import Call, Reply, json_reply, text_reply
from services.sandbox.synthetic import rng_for, unit_for
from services.sandbox.upstreams.base import Upstream, route

API_BLOCK = {"version": "1", "output-method": "json"}
EMPTY = json_reply({"api": API_BLOCK})
FIRST_YEAR = 1980
PROJECTION_YEARS = 5

COUNTRIES = [
    "USA",
    "CAN",
    "MEX",
    "BRA",
    "ARG",
    "CHL",
    "COL",
    "PER",
    "GBR",
    "DEU",
    "FRA",
    "ITA",
    "ESP",
    "NLD",
    "BEL",
    "CHE",
    "SWE",
    "NOR",
    "DNK",
    "FIN",
    "POL",
    "AUT",
    "IRL",
    "PRT",
    "GRC",
    "TUR",
    "RUS",
    "CHN",
    "JPN",
    "KOR",
    "IND",
    "IDN",
    "AUS",
    "NZL",
    "ZAF",
    "NGA",
    "EGY",
    "SAU",
    "ARE",
    "ISR",
    "SGP",
    "HKG",
    "THA",
    "VNM",
    "PHL",
    "MYS",
]

# indicator: (centre, country spread, yearly noise, persistence, decimals)
INDICATORS: dict[str, tuple[float, float, float, float, int]] = {
    "NGDP_RPCH": (2.6, 1.5, 1.4, 0.3, 3),  # real GDP growth, %
    "PCPIPCH": (3.5, 2.0, 2.0, 0.6, 3),  # inflation, average consumer prices, %
    "LUR": (6.5, 3.0, 0.8, 0.85, 3),  # unemployment rate, %
    "GGXWDG_NGDP": (60.0, 25.0, 3.0, 0.95, 3),  # general government gross debt, % of GDP
    "BCA_NGDPD": (0.0, 3.0, 1.5, 0.7, 3),  # current account balance, % of GDP
}
_SHOCKS = {2009: -4.0, 2020: -6.0, 2021: 3.5}  # common shocks to growth


@lru_cache(maxsize=2048)
def _history(indicator: str, country: str, last_year: int) -> dict[str, float]:
    centre, spread, noise, persistence, decimals = INDICATORS[indicator]
    mean = centre + (unit_for(indicator, country, "mean") - 0.5) * 2 * spread
    first = FIRST_YEAR + (0 if unit_for(country, "coverage") < 0.7 else int(unit_for(country) * 16))
    rng = rng_for(indicator, country, "history")
    value = mean
    out: dict[str, float] = {}
    for year in range(FIRST_YEAR, last_year + 1):
        value = mean + persistence * (value - mean) + rng.gauss(0.0, noise)
        shown = value + (_SHOCKS.get(year, 0.0) if indicator == "NGDP_RPCH" else 0.0)
        if indicator in {"LUR", "GGXWDG_NGDP"}:
            shown = max(0.5, shown)
        if year >= first:
            out[str(year)] = round(shown, decimals)
    return out


def datamapper(call: Call) -> Reply:
    parts = [p for p in call.match["rest"].split("/") if p]
    if not parts:
        return EMPTY
    indicator, wanted = parts[0].upper(), [p.upper() for p in parts[1:]] or list(COUNTRIES)
    if indicator not in INDICATORS:
        return EMPTY
    last_year = call.today.year + PROJECTION_YEARS
    periods = {p.strip() for p in call.params.get("periods", "").split(",") if p.strip()}
    by_country: dict[str, dict[str, float]] = {}
    for country in wanted:
        if country not in COUNTRIES or country in by_country:
            continue
        years = _history(indicator, country, last_year)
        if periods:
            years = {y: v for y, v in years.items() if y in periods}
        if years:
            by_country[country] = years
    if not by_country:
        return EMPTY
    return json_reply({"values": {indicator: by_country}, "api": API_BLOCK})


def too_many_requests(retry_after: int) -> Reply:
    return text_reply("Too Many Requests", 429)


UPSTREAM = Upstream(
    name="imf",
    routes=(route(r"/external/datamapper/api/v1/(?P<rest>.*)", datamapper),),
    too_many_requests=too_many_requests,
    no_route=text_reply("Not Found", 404),
)
