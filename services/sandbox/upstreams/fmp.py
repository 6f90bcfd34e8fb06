"""Financial Modeling Prep `/stable/profile?symbol=SYM&apikey=K`.

A JSON list with one object in the stable field names (`marketCap`, `changePercentage`, …); `[]`
for a symbol FMP does not cover (crypto pairs, indices, `ZZ…`); HTTP 401 with an
`Error Message` object when no API key is given.
"""

from __future__ import annotations

from typing import Any

from services.sandbox.companies import company, quote
from services.sandbox.reply import Call, Reply, json_reply
from services.sandbox.synthetic import local_today
from services.sandbox.universe import Security, universe
from services.sandbox.upstreams.base import Upstream, route

MISSING_KEY = json_reply(
    {
        "Error Message": "Invalid API KEY. Get a free key or check the key you sent "
        "(tradescout sandbox: any non-empty apikey is accepted)."
    },
    401,
)


def _slug(name: str) -> str:
    return "".join(c for c in name.lower().split(",")[0] if c.isalnum())[:24] or "company"


def profile_of(sec: Security, call: Call) -> dict[str, Any]:
    facts = company(sec)
    q = quote(sec, local_today(call.now, sec.market))
    change = round(q.price - q.previous_close, 2)
    is_us = sec.country == "US"
    return {
        "symbol": sec.symbol,
        "price": q.price,
        "marketCap": int(q.price * facts.shares_outstanding),
        "beta": facts.beta,
        "lastDividend": round(q.price * facts.dividend_yield, 2),
        "range": f"{q.year_low}-{q.year_high}",
        "change": change,
        "changePercentage": round(change / q.previous_close * 100, 4),
        "volume": q.volume,
        "averageVolume": q.average_volume,
        "companyName": sec.name,
        "currency": sec.currency,
        "cik": f"{sec.cik:010d}" if sec.cik is not None else None,
        "isin": facts.isin if is_us else None,
        "cusip": facts.cusip if is_us else None,
        "exchangeFullName": sec.exchange_full,
        "exchange": sec.exchange,
        "industry": sec.industry,
        "website": f"https://www.{_slug(sec.name)}.example",
        "description": facts.description,
        "ceo": facts.ceo,
        "sector": sec.sector,
        "country": sec.country,
        "fullTimeEmployees": str(facts.employees),
        "phone": facts.phone,
        "address": facts.street,
        "city": facts.city,
        "state": facts.state,
        "zip": facts.zip,
        "image": f"https://images.financialmodelingprep.com/symbol/{sec.symbol}.png",
        "ipoDate": facts.ipo_date.isoformat(),
        "defaultImage": False,
        "isEtf": sec.kind == "etf",
        "isActivelyTrading": True,
        "isAdr": False,
        "isFund": False,
    }


def profile(call: Call) -> Reply:
    if not call.params.get("apikey"):
        return MISSING_KEY
    symbol = call.params.get("symbol", "").strip().upper()
    sec = universe().security(symbol) if symbol else None
    if sec is None or sec.kind not in {"equity", "etf"}:
        return json_reply([])
    return json_reply([profile_of(sec, call)])


def too_many_requests(retry_after: int) -> Reply:
    return json_reply(
        {
            "Error Message": "Limit Reach . Too many requests per second for this plan; "
            "slow down or upgrade your plan."
        },
        429,
    )


UPSTREAM = Upstream(
    name="fmp",
    routes=(route(r"/stable/profile", profile),),
    too_many_requests=too_many_requests,
    no_route=json_reply({"Error Message": "Not Found"}, 404),
)
