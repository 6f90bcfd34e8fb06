"""Yahoo Finance v8 chart: `/v8/finance/chart/{SYM}?range=1y&interval=1d` (or `period1/period2`).

Shape as recorded from the live API: `{"chart": {"result": [{meta, timestamp, indicators}],
"error": null}}`; an unknown symbol is HTTP 404 with `result: null` and an error object. Daily bars
carry the market's closing time (crypto: 00:00 UTC).
"""

from __future__ import annotations

import calendar
from bisect import bisect_left, bisect_right
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from services.sandbox.reply import Call, Reply, json_reply, text_reply
from services.sandbox.synthetic import Market, bars_between, last_bars, local_today, unit_for
from services.sandbox.universe import Security, universe
from services.sandbox.upstreams.base import Upstream, route

VALID_RANGES = ("1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max")
_INSTRUMENT = {
    "equity": "EQUITY",
    "etf": "ETF",
    "index": "INDEX",
    "crypto": "CRYPTOCURRENCY",
    "fx": "CURRENCY",
}


def _error(status: int, code: str, description: str) -> Reply:
    body = {"chart": {"result": None, "error": {"code": code, "description": description}}}
    return json_reply(body, status)


NOT_FOUND = _error(404, "Not Found", "No data found, symbol may be delisted")


def first_trade_day(sec: Security) -> date:
    if sec.kind == "crypto":
        return date(2017, 11, 9) if sec.symbol != "BTC-USD" else date(2014, 9, 17)
    return date(1981, 1, 2) + timedelta(days=int(unit_for(sec.symbol, "ipo") * 12_000))


def _months_back(day: date, months: int) -> date:
    month_index = day.year * 12 + day.month - 1 - months
    year, month = divmod(month_index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def _range_start(rng: str, today: date, first: date) -> date | None:
    """First calendar day of a `range=` window (None: count bars instead, for 1d/5d)."""
    months = {"1mo": 1, "3mo": 3, "6mo": 6, "1y": 12, "2y": 24, "5y": 60, "10y": 120}
    if rng in months:
        return _months_back(today, months[rng])
    if rng == "ytd":
        return date(today.year, 1, 1)
    if rng == "max":
        return first
    return None


def _session(day: date, market: Market, start: time, end: time) -> dict[str, Any]:
    tz = ZoneInfo(market.tz)
    begin = datetime.combine(day, start, tzinfo=tz)
    finish = datetime.combine(day, end, tzinfo=tz)
    offset = begin.utcoffset() or timedelta(0)
    return {
        "timezone": begin.tzname(),
        "start": int(begin.timestamp()),
        "end": int(finish.timestamp()),
        "gmtoffset": int(offset.total_seconds()),
    }


def _trading_period(day: date, market: Market) -> dict[str, Any]:
    if market.name == "crypto":
        whole = _session(day, market, time(0, 0), time(23, 59))
        return {"pre": whole, "regular": whole, "post": whole}
    return {
        "pre": _session(day, market, time(4, 0), market.open),
        "regular": _session(day, market, market.open, market.close),
        "post": _session(day, market, market.close, time(20, 0)),
    }


def _parse_period(raw: str | None, default: int) -> int | None:
    if raw is None or raw == "":
        return default
    try:
        return int(float(raw))
    except ValueError:
        return None


def chart(call: Call) -> Reply:
    symbol = call.match["symbol"].upper()
    interval = call.params.get("interval", "1d")
    if interval != "1d":
        return _error(
            400,
            "Bad Request",
            f"Invalid input - interval={interval} is not supported by the sandbox. "
            "Valid intervals: [1d]",
        )
    sec = universe().security(symbol)
    if sec is None:
        return NOT_FOUND
    market = sec.market
    today = local_today(call.now, market)
    first_day = first_trade_day(sec)
    range_label = ""
    if "period1" in call.params or "period2" in call.params:
        p1 = _parse_period(call.params.get("period1"), 0)
        p2 = _parse_period(call.params.get("period2"), 2**40)
        if p1 is None or p2 is None:
            return _error(400, "Bad Request", "Invalid input - period1/period2 must be integers")
        if p1 > p2:
            return _error(
                400, "Bad Request", "Invalid input - start date cannot be after the end date."
            )
        start = max(first_day, datetime.fromtimestamp(max(p1, 0), UTC).date() - timedelta(days=1))
        end = min(today, datetime.fromtimestamp(min(p2, 2**40), UTC).date() + timedelta(days=1))
        bars = bars_between(sec.walk, start, end)
        lo = bisect_left(bars.timestamps, p1)
        bars = bars.slice(lo, bisect_right(bars.timestamps, p2, lo=lo))
    else:
        range_label = call.params.get("range", "1mo")
        if range_label not in VALID_RANGES:
            return _error(
                400, "Bad Request", f"Invalid input - range={range_label} is not supported"
            )
        start_day = _range_start(range_label, today, first_day)
        if start_day is None:
            bars = last_bars(sec.walk, today, 1 if range_label == "1d" else 5)
            bars = bars.slice(bisect_left(bars.days, first_day), len(bars))
        else:
            bars = bars_between(sec.walk, max(start_day, first_day), today)
    year = last_bars(sec.walk, today, 252)
    hint = sec.price_hint
    at = len(year) - 1
    before = bisect_left(year.days, bars.days[0]) - 1 if bars else -1
    previous = year.close[before] if before >= 0 else (bars.open[0] if bars else year.open[at])
    tz = ZoneInfo(market.tz)
    latest_local = datetime.fromtimestamp(year.timestamps[at], tz)
    offset = latest_local.utcoffset() or timedelta(0)
    meta: dict[str, Any] = {
        "currency": sec.currency,
        "symbol": sec.symbol,
        "exchangeName": sec.yahoo_exchange,
        "fullExchangeName": sec.exchange_full,
        "instrumentType": _INSTRUMENT[sec.kind],
        "firstTradeDate": int(datetime.combine(first_day, market.open, tzinfo=tz).timestamp()),
        "regularMarketTime": year.timestamps[at],
        "hasPrePostMarketData": market.name == "us" and sec.kind != "index",
        "gmtoffset": int(offset.total_seconds()),
        "timezone": latest_local.tzname(),
        "exchangeTimezoneName": market.tz,
        "regularMarketPrice": year.close[at],
        "fiftyTwoWeekHigh": max(year.high),
        "fiftyTwoWeekLow": min(year.low),
        "regularMarketDayHigh": year.high[at],
        "regularMarketDayLow": year.low[at],
        "regularMarketVolume": year.volume[at],
        "longName": sec.name,
        "shortName": sec.name[:32],
        "chartPreviousClose": previous,
        "priceHint": hint,
        "currentTradingPeriod": _trading_period(today, market),
        "dataGranularity": "1d",
        "range": range_label,
        "validRanges": list(VALID_RANGES),
    }
    result: dict[str, Any] = {"meta": meta}
    if bars:
        result["timestamp"] = bars.timestamps
        result["indicators"] = {
            "quote": [
                {
                    "open": bars.open,
                    "high": bars.high,
                    "low": bars.low,
                    "close": bars.close,
                    "volume": bars.volume,
                }
            ],
            "adjclose": [{"adjclose": bars.close}],
        }
    else:
        result["indicators"] = {"quote": [{}], "adjclose": [{}]}
    return json_reply({"chart": {"result": [result], "error": None}})


def too_many_requests(retry_after: int) -> Reply:
    return text_reply("Too Many Requests\r\n", 429)


UPSTREAM = Upstream(
    name="yahoo_finance",
    routes=(route(r"/v8/finance/chart/(?P<symbol>[^/]+)", chart),),
    too_many_requests=too_many_requests,
    no_route=text_reply("Not Found", 404),
)
