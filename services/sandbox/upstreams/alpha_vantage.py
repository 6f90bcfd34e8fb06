"""Alpha Vantage `/query?function=OVERVIEW&symbol=SYM&apikey=K`.

Every value is a string (numbers included, `"None"` when not applicable), as in the real API; an
unknown symbol is `{}`. Throttling is HTTP 200 with a `Note` (per minute) or `Information` (per
day) body — the app decides when; this module only says what they look like.
"""

from __future__ import annotations

from datetime import date, timedelta

from services.sandbox.companies import company, quote
from services.sandbox.reply import Call, Reply, json_reply
from services.sandbox.synthetic import local_today, rng_for
from services.sandbox.universe import universe
from services.sandbox.upstreams.base import Upstream, route

NOTE = json_reply(
    {
        "Note": "Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls "
        "per minute and 25 calls per day. This is the tradescout sandbox imitating that limit. "
    }
)
INFORMATION = json_reply(
    {
        "Information": "Thank you for using Alpha Vantage! Our standard API rate limit is 25 "
        "requests per day. This is the tradescout sandbox imitating that limit."
    }
)
MISSING_KEY = json_reply(
    {
        "Error Message": "the parameter apikey is invalid or missing. "
        "(tradescout sandbox: any non-empty apikey is accepted)"
    }
)


def _num(value: float, places: int = 4) -> str:
    return f"{value:.{places}f}".rstrip("0").rstrip(".") if places else str(round(value))


def _latest_quarter(today: date, fiscal_month: int) -> date:
    """Last day of the most recent fiscal quarter that ended at least ~45 days ago."""
    probe = today - timedelta(days=45)
    month = probe.month
    while (month - fiscal_month) % 3 != 0:
        month -= 1
    year = probe.year
    if month <= 0:
        month += 12
        year -= 1
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return nxt - timedelta(days=1)


def overview(call: Call) -> Reply:
    if not call.params.get("apikey"):
        return MISSING_KEY
    function = call.params.get("function", "")
    if function != "OVERVIEW":
        return json_reply(
            {
                "Error Message": f"This API function ({function}) does not exist in the "
                "tradescout sandbox (OVERVIEW only)."
            }
        )
    symbol = call.params.get("symbol", "").strip().upper()
    sec = universe().security(symbol) if symbol else None
    if sec is None or not sec.is_us_equity or sec.cik is None:
        return json_reply({})
    facts = company(sec)
    q = quote(sec, local_today(call.now, sec.market))
    rng = rng_for(sec.symbol, "overview", q.day.isoformat())
    cap = q.price * facts.shares_outstanding
    revenue = cap / facts.revenue_multiple
    income = revenue * facts.profit_margin
    eps = income / facts.shares_outstanding
    pe = q.price / eps if eps > 0 else None
    dividend = q.price * facts.dividend_yield
    book = q.price / rng.uniform(1.2, 12.0)
    ratings = [rng.randrange(0, 25) for _ in range(5)]
    quarter = _latest_quarter(q.day, facts.fiscal_year_end_month)
    ex_div = quarter + timedelta(days=40)

    def maybe(value: float | None, places: int = 4) -> str:
        return "None" if value is None else _num(value, places)

    body = {
        "Symbol": sec.symbol,
        "AssetType": "Common Stock",
        "Name": sec.name,
        "Description": facts.description,
        "CIK": f"{sec.cik:010d}",
        "Exchange": sec.exchange,
        "Currency": sec.currency,
        "Country": "USA",
        "Sector": sec.sector,
        "Industry": sec.industry,
        "Address": f"{facts.street}, {facts.city}, {facts.state}, US",
        "FullTimeEmployees": str(facts.employees),
        "OfficialSite": f"https://www.{sec.symbol.lower().replace('-', '')}.example",
        "FiscalYearEnd": facts.fiscal_year_end,
        "LatestQuarter": quarter.isoformat(),
        "MarketCapitalization": str(int(cap)),
        "EBITDA": str(int(revenue * max(facts.profit_margin + 0.08, 0.02))),
        "PERatio": maybe(pe),
        "PEGRatio": maybe(rng.uniform(0.5, 3.5)),
        "BookValue": _num(book, 3),
        "DividendPerShare": maybe(dividend if dividend > 0 else None, 2),
        "DividendYield": _num(facts.dividend_yield, 4),
        "EPS": _num(eps, 2),
        "RevenuePerShareTTM": _num(revenue / facts.shares_outstanding, 2),
        "ProfitMargin": _num(facts.profit_margin, 4),
        "OperatingMarginTTM": _num(facts.profit_margin + rng.uniform(0.01, 0.08), 4),
        "ReturnOnAssetsTTM": _num(rng.uniform(-0.05, 0.2), 4),
        "ReturnOnEquityTTM": _num(rng.uniform(-0.1, 0.45), 4),
        "RevenueTTM": str(int(revenue)),
        "GrossProfitTTM": str(int(revenue * rng.uniform(0.25, 0.7))),
        "DilutedEPSTTM": _num(eps * 0.99, 2),
        "QuarterlyEarningsGrowthYOY": _num(rng.uniform(-0.4, 0.6), 3),
        "QuarterlyRevenueGrowthYOY": _num(rng.uniform(-0.15, 0.35), 3),
        "AnalystTargetPrice": _num(q.price * rng.uniform(0.9, 1.3), 2),
        "AnalystRatingStrongBuy": str(ratings[0]),
        "AnalystRatingBuy": str(ratings[1]),
        "AnalystRatingHold": str(ratings[2]),
        "AnalystRatingSell": str(ratings[3] // 4),
        "AnalystRatingStrongSell": str(ratings[4] // 8),
        "TrailingPE": maybe(pe),
        "ForwardPE": maybe(pe * rng.uniform(0.7, 1.0) if pe else None),
        "PriceToSalesRatioTTM": _num(facts.revenue_multiple, 3),
        "PriceToBookRatio": _num(q.price / book, 3),
        "EVToRevenue": _num(facts.revenue_multiple * rng.uniform(1.0, 1.2), 3),
        "EVToEBITDA": _num(rng.uniform(6, 40), 3),
        "Beta": _num(facts.beta, 3),
        "52WeekHigh": _num(q.year_high, 2),
        "52WeekLow": _num(q.year_low, 2),
        "50DayMovingAverage": _num(q.average_50, 2),
        "200DayMovingAverage": _num(q.average_200, 2),
        "SharesOutstanding": str(facts.shares_outstanding),
        "SharesFloat": str(int(facts.shares_outstanding * rng.uniform(0.85, 0.99))),
        "PercentInsiders": _num(rng.uniform(0.05, 12.0), 3),
        "PercentInstitutions": _num(rng.uniform(40.0, 90.0), 3),
        "ForwardAnnualDividendRate": _num(dividend, 2),
        "ForwardAnnualDividendYield": _num(facts.dividend_yield, 4),
        "PayoutRatio": _num(dividend / eps, 3) if eps > 0 and dividend else "0",
        "LastSplitFactor": "None",
        "LastSplitDate": "None",
        "DividendDate": (ex_div + timedelta(days=14)).isoformat() if dividend else "None",
        "ExDividendDate": ex_div.isoformat() if dividend else "None",
    }
    return json_reply(body)


def too_many_requests(retry_after: int) -> Reply:
    return NOTE  # Alpha Vantage never answers 429; the app sends Note/Information itself


UPSTREAM = Upstream(
    name="alpha_vantage",
    routes=(route(r"/query", overview),),
    too_many_requests=too_many_requests,
    no_route=json_reply(
        {"Error Message": "Invalid API call. Please retry or visit the documentation."}
    ),
)
