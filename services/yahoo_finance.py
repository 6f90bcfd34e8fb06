"""Yahoo Finance v8 chart: daily price history and instrument meta for tickers, benchmarks, ^VIX.

No key, but a browser session: requests go through a Chrome-impersonating TLS client and carry
the cookie + crumb of `services/yahoo_session.py`. Unknown symbols answer HTTP 404 with
`{"chart":{"result":null,"error":{...}}}`: a negative result. A daily history changes once a
day, so it stays fresh until the next close.

Refusals: a 429 without Retry-After is Yahoo taking us for a bot (`blocked`: retrying makes it
worse, so Yahoo is left alone for `blocked_cooldown_seconds`, remembered in state/); a 401 or
"Invalid Crumb" means the session went stale (renewed once); a redirect to the consent pages is
`consent_required`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from services import yahoo_session
from services._common import (
    as_float,
    as_int,
    as_str,
    padded,
    parsed_verdict,
    upstream_message,
)
from services.errors import BadResponse, Blocked, ConsentRequired, ServiceError, SessionRefused
from services.records import CloseHistory, PriceBar, PriceHistory
from services.spec import DatasetSpec, Reply, ServiceRequest, ServiceSpec, Verdict

NAME = "yahoo_finance"
NEW_YORK = ZoneInfo("America/New_York")
MARKET_CLOSE = time(16, 0)
RANGES: tuple[tuple[str, int], ...] = (  # name, calendar months it spans
    ("1mo", 1),
    ("3mo", 3),
    ("6mo", 6),
    ("1y", 12),
    ("2y", 24),
    ("5y", 60),
    ("10y", 120),
)


def next_market_close(now: datetime) -> datetime:
    """16:00 New York time on the first weekday whose close is after `now` (exchange holidays
    are not modelled: on a holiday the entry simply refreshes a day early)."""
    local = now.astimezone(NEW_YORK)
    day = local.date()
    while True:
        close = datetime.combine(day, MARKET_CLOSE, tzinfo=NEW_YORK)
        if day.weekday() < 5 and close > local:
            return close.astimezone(UTC)
        day += timedelta(days=1)


def until_next_close(now: datetime) -> timedelta:
    return next_market_close(now) - now


def _months_back(today: date, months: int) -> date:
    month_index = today.year * 12 + (today.month - 1) - months
    year, month = divmod(month_index, 12)
    month += 1
    for day in (today.day, 30, 29, 28):
        try:
            return date(year, month, day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def range_covering(start: date, today: date) -> str:
    """The smallest Yahoo `range` whose window reaches back to `start` (else "max")."""
    for name, months in RANGES:
        if _months_back(today, months) <= start:
            return name
    return "max"


def chart_request(symbol: str, range_: str = "1y", interval: str = "1d") -> ServiceRequest:
    sym = symbol.strip().upper()
    return ServiceRequest(
        service=NAME,
        dataset="chart",
        path=f"/v8/finance/chart/{quote(sym, safe='-.=')}",
        params={"range": range_, "interval": interval},
        subjects=(sym,),
    )


def probe_request() -> ServiceRequest:
    """A five-day SPY chart: a few bars, behind the whole session set-up (cookie, crumb)."""
    return chart_request("SPY", "5d")


def _column(block: Any, name: str, length: int) -> list[Any]:
    return padded(block.get(name) if isinstance(block, dict) else None, length)


_EPOCH_DAY = date(1970, 1, 1).toordinal()
_LAST_DAY = date.max.toordinal()
_EXACT = 2**53  # below it an int survives as_int's float round trip unchanged


def _day(seconds: int) -> date:
    """The UTC calendar day of epoch `seconds` (what fromtimestamp(..., UTC).date() gives)."""
    return date.fromordinal(_EPOCH_DAY + seconds // 86_400)


def _floats(values: list[Any], kept: list[int]) -> list[float | None]:
    """`as_float` of the kept values, finite floats (nearly all of them) passed straight."""
    return [
        v if type(v) is float and v - v == 0.0 else as_float(v)
        for v in map(values.__getitem__, kept)
    ]


def _ints(values: list[Any], kept: list[int]) -> list[int | None]:
    return [
        v if type(v) is int and -_EXACT < v < _EXACT else as_int(v)
        for v in map(values.__getitem__, kept)
    ]


def _chart_parts(payload: Any) -> tuple[dict[str, Any], list[Any], Any, Any]:
    """(meta, timestamps, quote block, adjclose block) of a chart payload, shape-checked."""
    chart = payload.get("chart") if isinstance(payload, dict) else None
    results = chart.get("result") if isinstance(chart, dict) else None
    if not isinstance(results, list) or not results or not isinstance(results[0], dict):
        raise BadResponse(NAME, "chart payload has no result")
    result = results[0]
    meta = result.get("meta")
    if not isinstance(meta, dict) or not as_str(meta.get("symbol")):
        raise BadResponse(NAME, "chart payload has no meta.symbol")
    stamps = result.get("timestamp") or []
    if not isinstance(stamps, list):
        raise BadResponse(NAME, "chart timestamp is not a list")
    indicators = result.get("indicators") or {}
    quotes = indicators.get("quote") if isinstance(indicators, dict) else None
    quote_block = quotes[0] if isinstance(quotes, list) and quotes else {}
    adj = indicators.get("adjclose") if isinstance(indicators, dict) else None
    adj_block = adj[0] if isinstance(adj, list) and adj else {}
    return meta, stamps, quote_block, adj_block


def _instrument(meta: dict[str, Any]) -> dict[str, Any]:
    """The instrument's fields of a chart's `meta` (both chart records carry them)."""
    return {
        "symbol": str(meta["symbol"]).upper(),
        "currency": as_str(meta.get("currency")),
        "exchange": as_str(meta.get("exchangeName")),
        "instrument_type": as_str(meta.get("instrumentType")),
        "regular_market_price": as_float(meta.get("regularMarketPrice")),
    }


def _bounds(since: date | None, until: date | None) -> tuple[int | None, int | None]:
    """Epoch seconds of the window [since, until + 1 day) in exchange-local time."""
    lo = hi = None
    if since is not None:
        lo = int(datetime(since.year, since.month, since.day, tzinfo=UTC).timestamp())
    if until is not None:
        after = until + timedelta(days=1)
        hi = int(datetime(after.year, after.month, after.day, tzinfo=UTC).timestamp())
    return lo, hi


def parse_chart(
    payload: Any, *, since: date | None = None, until: date | None = None
) -> PriceHistory:
    """Bars from the aligned `timestamp` / `indicators.quote[0]` / `indicators.adjclose[0]`
    arrays; dates are exchange-local (timestamp + `meta.gmtoffset`).

    `since` / `until` skip bars dated before / after them without converting them: a
    `range=max` chart holds decades of bars where a holding-period summary needs a few months."""
    meta, stamps, quote_block, adj_block = _chart_parts(payload)
    n = len(stamps)
    opens, highs, lows, closes, volumes = (
        _column(quote_block, name, n) for name in ("open", "high", "low", "close", "volume")
    )
    adjcloses = _column(adj_block, "adjclose", n)
    offset = as_int(meta.get("gmtoffset")) or 0
    lo, hi = _bounds(since, until)
    # Column-wise over the kept bars only.
    kept: list[int] = []
    days: list[date] = []
    for i, stamp in enumerate(stamps):
        if type(stamp) is int:
            local = stamp + offset
            if (lo is not None and local < lo) or (hi is not None and local >= hi):
                continue
        else:
            seconds = as_int(stamp)
            if seconds is None:
                continue
            local = seconds + offset
        kept.append(i)
        days.append(_day(local))
    bars = tuple(
        map(
            PriceBar,
            days,
            _floats(opens, kept),
            _floats(highs, kept),
            _floats(lows, kept),
            _floats(closes, kept),
            _floats(adjcloses, kept),
            _ints(volumes, kept),
        )
    )
    return PriceHistory(**_instrument(meta), bars=bars)


_PLAIN_NUMBERS = frozenset({float, int, type(None)})


def _float_array(values: list[Any]) -> npt.NDArray[np.float64]:
    """`as_float` of every value as one array (NaN where it gives None). Numbers and nulls —
    what a real chart holds — are converted in one step; anything else value by value."""
    if set(map(type, values)) <= _PLAIN_NUMBERS:
        try:
            out = np.array(values, dtype=np.float64)  # None → NaN
        except OverflowError:  # an int beyond float range: as_float decides, value by value
            pass
        else:
            out[~np.isfinite(out)] = np.nan
            return out
    return np.array([np.nan if (f := as_float(v)) is None else f for v in values], np.float64)


def _seconds(stamps: list[Any]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Epoch seconds as `as_int` reads them, and which of them are usable. Whole numbers —
    what a real chart holds — are taken as they are (no round trip through float)."""
    if set(map(type, stamps)) == {int}:
        try:
            whole = np.fromiter(stamps, np.int64, len(stamps))
        except OverflowError:  # beyond 64 bits: the general path below decides
            pass
        else:
            return whole, np.abs(whole) < _EXACT
    truncated = np.trunc(_float_array(stamps))  # as_int truncates
    usable = np.isfinite(truncated) & (np.abs(truncated) < _EXACT)
    return np.where(usable, truncated, 0).astype(np.int64), usable


def parse_closes(
    payload: Any, *, since: date | None = None, until: date | None = None
) -> CloseHistory:
    """The finite closes dated on [since, until] (exchange-local days, as in `parse_chart`)
    and the instrument's meta: what the report reads of a chart, parsed as arrays."""
    meta, stamps, quote_block, _ = _chart_parts(payload)
    closes = _float_array(_column(quote_block, "close", len(stamps)))
    seconds, usable = _seconds(stamps)
    local = seconds + (as_int(meta.get("gmtoffset")) or 0)
    days = local // 86_400 + _EPOCH_DAY
    keep = usable & ~np.isnan(closes) & (days >= 1) & (days <= _LAST_DAY)  # a date exists
    lo, hi = _bounds(since, until)
    if lo is not None:
        keep &= local >= lo
    if hi is not None:
        keep &= local < hi
    return CloseHistory(**_instrument(meta), days=days[keep], closes=closes[keep])


def refusal(request: ServiceRequest, reply: Reply) -> ServiceError | None:
    status = reply.status
    location = reply.headers.get("location", "")
    if 300 <= status < 400 and location and yahoo_session.is_consent_url(location):
        return ConsentRequired(
            NAME, "Yahoo redirected to its cookie-consent page (not followed)", dataset="chart"
        )
    if status == 429 and not reply.headers.get("retry-after"):
        return Blocked(
            NAME,
            f"HTTP 429 without Retry-After for {request.path} (Yahoo took the client for a bot)",
            dataset=request.dataset,
        )
    if status == 401 or "invalid crumb" in reply.text.lower():
        return SessionRefused(
            NAME, f"HTTP {status} for {request.path}: Invalid Crumb", dataset=request.dataset
        )
    return None


def classify(request: ServiceRequest, status: int, body: Any) -> Verdict:
    chart = body.get("chart") if isinstance(body, dict) else None
    error = chart.get("error") if isinstance(chart, dict) else None
    if status == 404 or (isinstance(error, dict) and chart.get("result") is None):  # type: ignore[union-attr]
        code = str(error.get("code", "")) if isinstance(error, dict) else ""
        if status == 404 or code.lower() == "not found":
            return "negative"
        raise BadResponse(
            NAME,
            f"HTTP {status} for {request.path}: {upstream_message(error, 'description')}",
            dataset=request.dataset,
        )
    return parsed_verdict(request, status, body, parse_chart)


SPEC = ServiceSpec(
    name=NAME,
    # "fc" answers the session cookie; a configured base URL replaces both hosts.
    default_base_urls={"default": "https://query1.finance.yahoo.com", "fc": "https://fc.yahoo.com"},
    datasets={
        "chart": DatasetSpec(
            "chart", ttl=until_next_close, negative_ttl=timedelta(hours=6), max_bytes=8 << 20
        )
    },
    rate_per_second=2.0,
    max_connections=4,
    timeout_seconds=10.0,
    classify=classify,
    refusal=refusal,
    impersonate="chrome",
    session=yahoo_session.CrumbSession,
    blocked_cooldown_seconds=900.0,
    probe=probe_request,
)
