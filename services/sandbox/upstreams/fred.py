"""FRED `/fred/series/observations?series_id=X&api_key=K&file_type=json[&observation_start=…]`.

Values are strings; daily series show `"."` on market holidays. `observation_start`,
`observation_end`, `sort_order`, `limit` and `offset` are honoured; a series only has observations
its (simulated) release date has passed. Errors are HTTP 400 with `error_code`/`error_message`;
without `file_type=json` FRED answers XML, and so does the sandbox.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from xml.sax.saxutils import quoteattr

from services.sandbox.reply import Call, Reply, json_reply
from services.sandbox.synthetic import ANCHOR_YEAR, rng_for, unit_for
from services.sandbox.upstreams.base import Upstream, route


@dataclass(frozen=True)
class Series:
    id: str
    frequency: str  # "d" business daily, "m" monthly, "q" quarterly
    start: date
    level: float  # typical value in the anchor year
    log: bool  # trending series walk in log space
    drift: float  # per year (log units when log)
    step: float  # per-observation noise
    anchor_sigma: float
    decimals: int
    floor: float | None = None


CATALOG: dict[str, Series] = {
    s.id: s
    for s in (
        Series("FEDFUNDS", "m", date(1954, 7, 1), 3.9, False, 0.0, 0.12, 1.2, 2, 0.05),
        Series("DGS10", "d", date(1962, 1, 2), 4.2, False, 0.0, 0.05, 0.9, 2, 0.3),
        Series("DGS2", "d", date(1976, 6, 1), 3.8, False, 0.0, 0.05, 1.1, 2, 0.1),
        Series("T10Y2Y", "d", date(1976, 6, 1), 0.4, False, 0.0, 0.03, 0.6, 2),
        Series("VIXCLS", "d", date(1990, 1, 2), 17.0, True, 0.0, 0.06, 0.25, 2),
        Series("CPIAUCSL", "m", date(1947, 1, 1), 324.0, True, 0.035, 0.002, 0.004, 3),
        Series("UNRATE", "m", date(1948, 1, 1), 4.3, False, 0.0, 0.12, 0.9, 1, 2.5),
        Series("GDPC1", "q", date(1947, 1, 1), 24100.0, True, 0.03, 0.006, 0.01, 3),
        Series("PAYEMS", "m", date(1939, 1, 1), 159800.0, True, 0.017, 0.002, 0.006, 0),
        Series("M2SL", "m", date(1959, 1, 1), 22100.0, True, 0.065, 0.004, 0.01, 1),
        Series("DEXUSEU", "d", date(1999, 1, 4), 1.09, True, 0.0, 0.005, 0.08, 4),
    )
}
_HOLIDAYS = {(1, 1), (7, 4), (11, 11), (12, 25)}


def _error(status: int, message: str) -> Reply:
    return json_reply({"error_code": status, "error_message": message}, status)


MISSING_KEY = _error(
    400,
    "Bad Request.  Variable api_key has not been set. (tradescout sandbox: any non-empty "
    "api_key is accepted)",
)
UNKNOWN_SERIES = _error(400, "Bad Request.  The series does not exist.")


def _dates(series: Series, year: int) -> list[date]:
    if series.frequency == "m":
        return [date(year, m, 1) for m in range(1, 13)]
    if series.frequency == "q":
        return [date(year, m, 1) for m in (1, 4, 7, 10)]
    first = date(year, 1, 1)
    days = (first + timedelta(days=i) for i in range((date(year + 1, 1, 1) - first).days))
    return [d for d in days if d.weekday() < 5]


def _anchor(series: Series, year: int) -> float:
    centre = math.log(series.level) if series.log else series.level
    if year == ANCHOR_YEAR:
        return centre
    noise = rng_for(series.id, "anchor", year).gauss(0.0, series.anchor_sigma)
    return centre + series.drift * (year - ANCHOR_YEAR) + noise


@lru_cache(maxsize=1024)
def _year(series: Series, year: int) -> tuple[tuple[str, str], ...]:
    """(date, value) pairs of one year: a bridge between the year's anchors, "." on holidays."""
    days = _dates(series, year)
    n = len(days)
    rng = rng_for(series.id, "walk", year)
    steps = [rng.gauss(0.0, series.step) for _ in range(n + 1)]
    total = math.fsum(steps)
    a0, a1 = _anchor(series, year), _anchor(series, year + 1)
    out: list[tuple[str, str]] = []
    walked = 0.0
    for i, day in enumerate(days):
        walked += steps[i]
        t = (i + 1) / (n + 1)
        level = a0 + t * (a1 - a0) + walked - t * total
        value = math.exp(level) if series.log else level
        if series.floor is not None:
            value = max(series.floor, value)
        missing = series.frequency == "d" and (
            (day.month, day.day) in _HOLIDAYS or unit_for(series.id, day) < 0.004
        )
        out.append((day.isoformat(), "." if missing else f"{value:.{series.decimals}f}"))
    return tuple(out)


def _latest_published(series: Series, today: date) -> date:
    """The last observation date whose (simulated) release is on or before today."""
    if series.frequency == "d":
        return today - timedelta(days=1)
    if series.frequency == "m":
        probe = today - timedelta(days=12)
        month_index = probe.year * 12 + probe.month - 2
        return date(month_index // 12, month_index % 12 + 1, 1)
    probe = today - timedelta(days=30)
    month_index = probe.year * 12 + probe.month - 4
    year, month = month_index // 12, month_index % 12 + 1
    return date(year, month - (month - 1) % 3, 1)


def _parse_date(raw: str) -> date | None:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return None


def _xml(meta: dict[str, str], rows: list[tuple[str, str]], realtime: str) -> Reply:
    attrs = " ".join(f"{k}={quoteattr(v)}" for k, v in meta.items())
    lines = [
        '<?xml version="1.0" encoding="utf-8" ?>',
        f"<observations {attrs}>",
        *(
            f'  <observation realtime_start="{realtime}" realtime_end="{realtime}" '
            f'date="{d}" value="{v}"/>'
            for d, v in rows
        ),
        "</observations>",
    ]
    return Reply(200, "\n".join(lines).encode(), "text/xml; charset=UTF-8")


def observations(call: Call) -> Reply:
    as_json = call.params.get("file_type", "xml") == "json"
    if not call.params.get("api_key"):
        return MISSING_KEY
    series_id = call.params.get("series_id", "")
    if not series_id:
        return _error(400, "Bad Request.  Variable series_id is not set.")
    series = CATALOG.get(series_id.upper())
    if series is None:
        return UNKNOWN_SERIES
    bounds: dict[str, date] = {}
    for name, default in (("observation_start", "1600-01-01"), ("observation_end", "9999-12-31")):
        raw = call.params.get(name, default)
        parsed = _parse_date(raw)
        if parsed is None:
            return _error(400, f'Bad Request.  Variable {name} can not be "{raw}".')
        bounds[name] = parsed
    sort_order = call.params.get("sort_order", "asc")
    if sort_order not in {"asc", "desc"}:
        return _error(400, "Bad Request.  Variable sort_order is not one of the values: asc, desc")
    try:
        limit = int(call.params.get("limit", "100000"))
        offset = int(call.params.get("offset", "0"))
    except ValueError:
        return _error(400, "Bad Request.  Variables limit and offset must be integers.")
    if not 1 <= limit <= 100000 or offset < 0:
        return _error(400, "Bad Request.  Variable limit is not between 1 and 100000.")
    first = max(bounds["observation_start"], series.start)
    last = min(bounds["observation_end"], _latest_published(series, call.today))
    rows: list[tuple[str, str]] = []
    if first <= last:
        lo, hi = first.isoformat(), last.isoformat()
        for year in range(first.year, last.year + 1):
            rows.extend(r for r in _year(series, year) if lo <= r[0] <= hi)
    count = len(rows)
    if sort_order == "desc":
        rows.reverse()
    rows = rows[offset : offset + limit]
    realtime = call.today.isoformat()
    meta = {
        "realtime_start": realtime,
        "realtime_end": realtime,
        "observation_start": call.params.get("observation_start", "1600-01-01"),
        "observation_end": call.params.get("observation_end", "9999-12-31"),
        "units": "lin",
        "output_type": "1",
        "file_type": "json" if as_json else "xml",
        "order_by": "observation_date",
        "sort_order": sort_order,
        "count": str(count),
        "offset": str(offset),
        "limit": str(limit),
    }
    if not as_json:
        return _xml(meta, rows, realtime)
    body = {
        **meta,
        "output_type": 1,
        "count": count,
        "offset": offset,
        "limit": limit,
        "observations": [
            {"realtime_start": realtime, "realtime_end": realtime, "date": d, "value": v}
            for d, v in rows
        ],
    }
    return json_reply(body)


def too_many_requests(retry_after: int) -> Reply:
    return _error(429, "Too Many Requests.  Exceeded Rate Limit")


UPSTREAM = Upstream(
    name="fred",
    routes=(route(r"/fred/series/observations", observations),),
    too_many_requests=too_many_requests,
    no_route=_error(404, "Not Found.  The requested URL was not found on this server."),
)
