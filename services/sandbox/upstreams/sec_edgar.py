"""SEC EDGAR: `/files/company_tickers.json` (www.sec.gov) and `/submissions/CIK##########.json`
(data.sec.gov) — one sandbox base stands in for both hosts.

The ticker map is a dict keyed "0".."N" (largest companies first) of `{cik_str, ticker, title}`;
submissions carry columnar `filings.recent` (parallel lists, newest first). Like the real
service, an unknown CIK is a 404 from the storage layer; its refusals (an undeclared User-Agent,
the rate-threshold block) are the defences' (services/sandbox/defences.py).
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache
from typing import Any

from services.sandbox.companies import company
from services.sandbox.reply import Call, Reply, encode, json_reply, text_reply
from services.sandbox.synthetic import rng_for
from services.sandbox.universe import Security, universe
from services.sandbox.upstreams.base import Upstream, route

NO_SUCH_KEY = text_reply(
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
    "<Message>The specified key does not exist.</Message></Error>",
    404,
    "application/xml",
)
_SIC = {
    "Technology": ("7372", "Services-Prepackaged Software", "06 Technology"),
    "Healthcare": ("2834", "Pharmaceutical Preparations", "03 Life Sciences"),
    "Financial Services": ("6022", "State Commercial Banks", "02 Finance"),
    "Consumer Cyclical": ("5900", "Retail-Miscellaneous Retail", "07 Trade & Services"),
    "Consumer Defensive": ("2000", "Food and Kindred Products", "04 Manufacturing"),
    "Industrials": ("3560", "General Industrial Machinery & Equipment", "04 Manufacturing"),
    "Energy": ("1311", "Crude Petroleum & Natural Gas", "01 Energy & Transportation"),
    "Utilities": ("4911", "Electric Services", "01 Energy & Transportation"),
    "Real Estate": ("6798", "Real Estate Investment Trusts", "05 Real Estate & Construction"),
    "Basic Materials": ("2800", "Chemicals & Allied Products", "09 Industrial Applications"),
    "Communication Services": ("4899", "Communications Services, NEC", "07 Trade & Services"),
}
_EIGHT_K_ITEMS = ("5.02", "7.01,9.01", "8.01,9.01", "5.07", "1.01,9.01")


@lru_cache(maxsize=1)
def _ticker_map_bytes() -> bytes:
    u = universe()
    filers = [s for s in u.securities.values() if s.cik is not None]
    filers.sort(key=lambda s: (-company(s).shares_outstanding * s.base_price, s.symbol))
    payload = {
        str(i): {"cik_str": s.cik, "ticker": s.symbol, "title": s.name.upper()}
        for i, s in enumerate(filers)
    }
    return encode(payload)


def company_tickers(call: Call) -> Reply:
    return Reply(200, _ticker_map_bytes())


def _business_day(day: date) -> date:
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def _quarter_ends(fiscal_month: int, first: date, last: date) -> list[tuple[date, bool]]:
    """(quarter end, is fiscal year end) between two dates."""
    out: list[tuple[date, bool]] = []
    for year in range(first.year - 1, last.year + 1):
        for k in range(4):
            month = (fiscal_month - 1 + 3 * k) % 12 + 1
            nxt = date(year + (month == 12), month % 12 + 1, 1)
            end = nxt - timedelta(days=1)
            if first <= end <= last:
                out.append((end, month == fiscal_month))
    return sorted(out)


def _filings(sec: Security, today: date) -> list[dict[str, Any]]:
    """Every filing dated within ~3 years before `today`, newest first (deterministic)."""
    assert sec.cik is not None
    facts = company(sec)
    start = today - timedelta(days=3 * 365)
    rows: list[dict[str, Any]] = []
    for end, annual in _quarter_ends(
        facts.fiscal_year_end_month, start - timedelta(days=90), today
    ):
        lag = 58 if annual else 38
        rng = rng_for(sec.cik, "periodic", end.isoformat())
        filed = _business_day(end + timedelta(days=lag + rng.randrange(0, 6)))
        form = "10-K" if annual else "10-Q"
        rows.append({"form": form, "filed": filed, "report": end, "items": ""})
        release = _business_day(filed - timedelta(days=rng.randrange(1, 10)))
        rows.append({"form": "8-K", "filed": release, "report": release, "items": "2.02,9.01"})
    for year in range(start.year, today.year + 1):
        rng = rng_for(sec.cik, "events", year)
        for _ in range(2):
            day = _business_day(date(year, 1, 1) + timedelta(days=rng.randrange(0, 360)))
            items = rng.choice(_EIGHT_K_ITEMS)
            rows.append({"form": "8-K", "filed": day, "report": day, "items": items})
        for _ in range(6):
            traded = _business_day(date(year, 1, 1) + timedelta(days=rng.randrange(0, 360)))
            filed = _business_day(traded + timedelta(days=2))
            rows.append({"form": "4", "filed": filed, "report": traded, "items": ""})
    rows = [r for r in rows if start <= r["filed"] <= today]
    rows.sort(key=lambda r: (r["filed"], r["form"]), reverse=True)
    return rows


def _recent(sec: Security, today: date) -> dict[str, list[Any]]:
    assert sec.cik is not None
    columns: dict[str, list[Any]] = {
        name: []
        for name in (
            "accessionNumber",
            "filingDate",
            "reportDate",
            "acceptanceDateTime",
            "act",
            "form",
            "fileNumber",
            "filmNumber",
            "items",
            "size",
            "isXBRL",
            "isInlineXBRL",
            "primaryDocument",
            "primaryDocDescription",
        )
    }
    file_number = f"001-{rng_for(sec.cik, 'file').randrange(10000, 99999)}"
    stem = sec.symbol.lower().replace("-", "").replace(".", "")
    for row in _filings(sec, today):
        filed: date = row["filed"]
        form: str = row["form"]
        rng = rng_for(sec.cik, form, filed.isoformat(), row["items"])
        insider = form == "4"
        filer = rng.randrange(1_000_000, 2_000_000) if insider else sec.cik
        columns["accessionNumber"].append(
            f"{filer:010d}-{filed.year % 100:02d}-{rng.randrange(1, 999_999):06d}"
        )
        columns["filingDate"].append(filed.isoformat())
        columns["reportDate"].append(row["report"].isoformat())
        hour, minute, second = rng.randrange(10, 22), rng.randrange(60), rng.randrange(60)
        columns["acceptanceDateTime"].append(
            f"{filed.isoformat()}T{hour:02d}:{minute:02d}:{second:02d}.000Z"
        )
        columns["act"].append("" if insider else "34")
        columns["form"].append(form)
        columns["fileNumber"].append("" if insider else file_number)
        columns["filmNumber"].append(
            "" if insider else str(rng.randrange(200_000_000, 299_999_999))
        )
        columns["items"].append(row["items"])
        periodic = form in {"10-K", "10-Q"}
        columns["size"].append(
            rng.randrange(5_000_000, 15_000_000) if periodic else rng.randrange(4_000, 400_000)
        )
        columns["isXBRL"].append(1 if periodic or form == "8-K" else 0)
        columns["isInlineXBRL"].append(1 if periodic or form == "8-K" else 0)
        if insider:
            document = f"xslF345X05/wk-form4_{rng.randrange(10**9, 2 * 10**9)}.xml"
        elif periodic:
            document = f"{stem}-{row['report']:%Y%m%d}.htm"
        else:
            document = f"{stem}-{filed:%Y%m%d}.htm"
        columns["primaryDocument"].append(document)
        columns["primaryDocDescription"].append("PRIMARY DOCUMENT" if insider else form)
    return columns


def submissions(call: Call) -> Reply:
    sec = universe().by_cik(int(call.match["cik"]))
    if sec is None or sec.cik is None:
        return NO_SUCH_KEY
    facts = company(sec)
    sic, sic_description, owner = _SIC.get(sec.sector, ("6726", "Unit Inv Trusts", "02 Finance"))
    address = {
        "street1": facts.street.upper(),
        "street2": None,
        "city": facts.city.upper(),
        "stateOrCountry": facts.state,
        "zipCode": facts.zip,
        "stateOrCountryDescription": facts.state,
    }
    fiscal_end = date(
        2001 + (facts.fiscal_year_end_month == 12), facts.fiscal_year_end_month % 12 + 1, 1
    )
    fiscal_end -= timedelta(days=1)
    body = {
        "cik": f"{sec.cik:010d}",
        "entityType": "operating" if sec.kind == "equity" else "other",
        "sic": sic,
        "sicDescription": sic_description,
        "ownerOrg": owner,
        "insiderTransactionForOwnerExists": 0,
        "insiderTransactionForIssuerExists": 1,
        "name": sec.name,
        "tickers": [sec.symbol],
        "exchanges": ["Nasdaq" if sec.exchange == "NASDAQ" else "NYSE"],
        "ein": f"{rng_for(sec.cik, 'ein').randrange(10**8, 10**9)}",
        "lei": None,
        "description": "",
        "website": "",
        "investorWebsite": "",
        "category": "Large accelerated filer",
        "fiscalYearEnd": f"{fiscal_end:%m%d}",
        "stateOfIncorporation": "DE",
        "stateOfIncorporationDescription": "DE",
        "addresses": {
            "mailing": {**address, "isForeignLocation": 0},
            "business": {**address, "isForeignLocation": None},
        },
        "phone": facts.phone,
        "flags": "",
        "formerNames": [],
        "filings": {"recent": _recent(sec, call.today), "files": []},
    }
    return json_reply(body)


def too_many_requests(retry_after: int) -> Reply:
    return text_reply(
        "<html><body><h1>Request Rate Threshold Exceeded</h1><p>More than 10 requests per "
        "second (tradescout sandbox).</p></body></html>",
        429,
        "text/html",
    )


UPSTREAM = Upstream(
    name="sec_edgar",
    routes=(
        route(r"/files/company_tickers\.json", company_tickers),
        route(r"/submissions/CIK(?P<cik>\d{10})\.json", submissions),
    ),
    too_many_requests=too_many_requests,
    no_route=NO_SUCH_KEY,
)
