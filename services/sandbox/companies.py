"""Company facts and market quotes shared by the simulated FMP, Alpha Vantage and SEC endpoints.

One source per fact, so the services agree with each other the way real ones roughly do: FMP's
`price` is Yahoo's latest close, FMP's `cik` is SEC's, AV's `MarketCapitalization` matches FMP's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

from services.sandbox.synthetic import last_bars, rng_for
from services.sandbox.universe import Security

_CITIES = (
    ("New York", "NY", "10001", "(212)"),
    ("San Jose", "CA", "95113", "(408)"),
    ("Austin", "TX", "78701", "(512)"),
    ("Chicago", "IL", "60601", "(312)"),
    ("Boston", "MA", "02110", "(617)"),
    ("Seattle", "WA", "98101", "(206)"),
    ("Atlanta", "GA", "30303", "(404)"),
    ("Denver", "CO", "80202", "(303)"),
    ("Charlotte", "NC", "28202", "(704)"),
    ("Minneapolis", "MN", "55401", "(612)"),
)
_STREETS = ("Market Street", "Main Street", "Commerce Drive", "Park Avenue", "Innovation Way")
_FIRST = ("Alex", "Jordan", "Morgan", "Taylor", "Casey", "Riley", "Jamie", "Avery", "Quinn")
_LAST = ("Hartley", "Okafor", "Lindqvist", "Moreau", "Tanaka", "Castillo", "Brennan", "Novak")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


@dataclass(frozen=True)
class Company:
    """Slow-moving facts about an issuer (invented, deterministic per symbol)."""

    shares_outstanding: int
    beta: float
    dividend_yield: float  # annual, fraction of price (0 = none)
    employees: int
    ceo: str
    street: str
    city: str
    state: str
    zip: str
    phone: str
    ipo_date: date
    fiscal_year_end_month: int  # 1..12
    cusip: str
    profit_margin: float
    revenue_multiple: float  # price/sales
    description: str

    @property
    def isin(self) -> str:
        return f"US{self.cusip}{sum(map(ord, self.cusip)) % 10}"

    @property
    def fiscal_year_end(self) -> str:
        return _MONTHS[self.fiscal_year_end_month - 1]


@lru_cache(maxsize=4096)
def company(sec: Security) -> Company:
    rng = rng_for(sec.symbol, "company")
    city, state, zip_code, area = rng.choice(_CITIES)
    cap = 10 ** rng.uniform(8.7, 11.6) if sec.kind == "equity" else 10 ** rng.uniform(9.5, 11.5)
    if sec.symbol in {"AAPL", "MSFT", "NVDA", "GOOGL", "AMZN", "META"}:
        cap = 10 ** rng.uniform(12.2, 12.6)
    pays = sec.sector in {"Utilities", "Consumer Defensive", "Energy", "Real Estate"}
    dividend = (
        rng.uniform(0.015, 0.045) if pays else rng.choice((0.0, 0.0, rng.uniform(0.003, 0.02)))
    )
    sector_word = sec.sector.lower() or "financial"
    cusip = "".join(rng.choice("0123456789ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(8)) + str(
        rng.randrange(10)
    )
    return Company(
        shares_outstanding=max(1_000_000, int(cap / sec.base_price)),
        beta=round(rng.uniform(0.45, 1.9), 3),
        dividend_yield=dividend,
        employees=int(10 ** rng.uniform(2.3, 5.4)),
        ceo=f"{rng.choice(('Mr.', 'Ms.', 'Dr.'))} {rng.choice(_FIRST)} {rng.choice(_LAST)}",
        street=f"{rng.randrange(1, 9900)} {rng.choice(_STREETS)}",
        city=city,
        state=state,
        zip=zip_code,
        phone=f"{area} {rng.randrange(200, 999)}-{rng.randrange(1000, 9999)}",
        ipo_date=date(1981, 1, 2) + timedelta(days=rng.randrange(0, 15_000)),
        fiscal_year_end_month=rng.choice((12, 12, 12, 9, 6, 3, 1)),
        cusip=cusip,
        profit_margin=round(rng.uniform(-0.08, 0.32), 4),
        revenue_multiple=rng.uniform(0.6, 12.0),
        description=(
            f"{sec.name} is a synthetic {sector_word} company in the {sec.industry.lower()} "
            f"industry, invented by the tradescout sandbox; it is headquartered in {city}, "
            f"{state}."
        ),
    )


@dataclass(frozen=True)
class Quote:
    """The latest daily figures of a symbol, as of the injected clock's date."""

    day: date
    price: float
    previous_close: float
    volume: int
    average_volume: int
    year_high: float
    year_low: float
    average_50: float
    average_200: float


def quote(sec: Security, day: date) -> Quote:
    """Latest figures on or before `day` (the market's local today, from the injected clock)."""
    bars = last_bars(sec.walk, day, 252)
    closes = bars.close
    recent_volume = bars.volume[-63:]
    return Quote(
        day=bars.days[-1],
        price=round(closes[-1], 2),
        previous_close=round(closes[-2], 2),
        volume=bars.volume[-1],
        average_volume=int(sum(recent_volume) / len(recent_volume)),
        year_high=round(max(bars.high), 2),
        year_low=round(min(bars.low), 2),
        average_50=round(sum(closes[-50:]) / len(closes[-50:]), 4),
        average_200=round(sum(closes[-200:]) / len(closes[-200:]), 4),
    )
