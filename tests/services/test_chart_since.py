"""`parse_chart(since=…)` drops exactly the bars before the date, nothing else; `parse_closes`
(what the report reads) gives the same closes as the bars."""

from __future__ import annotations

import json
from datetime import date

import pytest

from services.errors import BadResponse
from services.yahoo_finance import parse_chart, parse_closes
from tests.conftest import FIXTURES

PAYLOADS = FIXTURES / "payloads"
REAL = FIXTURES / "real"


def test_since_keeps_the_same_bars_from_that_date_on() -> None:
    name = next(
        p
        for p in sorted(PAYLOADS.iterdir())
        if p.name.startswith("yahoo")
        and "chart" in p.name
        and "error" not in p.name
        and "unknown" not in p.name
    )
    payload = json.loads(name.read_text("utf-8"))
    full = parse_chart(payload)
    assert len(full.bars) > 4
    cut = full.bars[len(full.bars) // 2].date
    part = parse_chart(payload, since=cut)
    assert part.bars == tuple(b for b in full.bars if b.date >= cut)
    assert part.bars and part.bars[0].date == cut
    assert parse_chart(payload, since=date(1900, 1, 1)).bars == full.bars
    assert parse_chart(payload, since=date(2999, 1, 1)).bars == ()


def closes_by_bars(payload: object, **window: date) -> list[tuple[date, float]]:
    """The reference: parse_chart's bars with a close, as (day, close)."""
    return [(b.date, b.close) for b in parse_chart(payload, **window).bars if b.close is not None]


def closes_by_arrays(payload: object, **window: date) -> list[tuple[date, float]]:
    parsed = parse_closes(payload, **window)
    return [
        (date.fromordinal(d), c)
        for d, c in zip(parsed.days.tolist(), parsed.closes.tolist(), strict=True)
    ]


def test_parse_closes_agrees_with_the_bars_on_real_charts() -> None:
    for path in (REAL / "yahoo_chart.json", *sorted(PAYLOADS.glob("yahoo*chart*.json"))):
        payload = json.loads(path.read_text("utf-8"))
        try:
            bars = parse_chart(payload)
        except BadResponse:
            continue  # an error body: both refuse it (checked below)
        assert closes_by_arrays(payload) == closes_by_bars(payload), path.name
        if len(bars.bars) > 4:
            cut = bars.bars[len(bars.bars) // 3].date
            end = bars.bars[2 * len(bars.bars) // 3].date
            assert closes_by_arrays(payload, since=cut, until=end) == closes_by_bars(
                payload, since=cut, until=end
            )
        meta = parse_closes(payload)
        assert (meta.symbol, meta.currency, meta.exchange) == (
            bars.symbol,
            bars.currency,
            bars.exchange,
        )


def test_parse_closes_reads_values_as_as_float_does() -> None:
    """Odd values (a numeric string, a bool, NaN/Infinity, a null, an unusable timestamp) are
    read exactly as parse_chart reads them; a bar without a finite close is not a close."""
    day = 86_400
    payload = {
        "chart": {
            "result": [
                {
                    "meta": {"symbol": "odd", "currency": "USD", "gmtoffset": -18_000},
                    "timestamp": [19_000 * day, 19_001 * day, None, 19_003 * day, "x",
                                  19_005 * day + 0.5, 19_006 * day, 19_007 * day],
                    "indicators": {"quote": [{"close": [
                        1.5, "2.25", 3.0, float("nan"), 5.0, 6, True, float("inf"),
                    ]}]},
                }
            ]
        }
    }  # fmt: skip
    assert closes_by_arrays(payload) == closes_by_bars(payload)
    assert [c for _, c in closes_by_arrays(payload)] == [1.5, 2.25, 6.0]
    short = {"chart": {"result": [{**payload["chart"]["result"][0], "timestamp": [19_000 * day]}]}}
    assert closes_by_arrays(short) == closes_by_bars(short)


def test_parse_closes_refuses_what_parse_chart_refuses() -> None:
    for bad in ({}, {"chart": {"result": None}}, {"chart": {"result": [{"meta": {}}]}}):
        with pytest.raises(BadResponse):
            parse_closes(bad)
        with pytest.raises(BadResponse):
            parse_chart(bad)


def test_parse_closes_drops_timestamps_no_date_can_hold() -> None:
    """A timestamp beyond 64 bits, or one whose day is past year 9999, is no close (parse_chart
    refuses such a chart outright: a day it cannot date)."""
    day = 86_400
    payload = {
        "chart": {
            "result": [
                {
                    "meta": {"symbol": "far"},
                    "timestamp": [19_000 * day, 2**70, 10**15, 19_001 * day],
                    "indicators": {"quote": [{"close": [1.0, 2.0, 3.0, 4.0]}]},
                }
            ]
        }
    }
    assert [c for _, c in closes_by_arrays(payload)] == [1.0, 4.0]
    with pytest.raises((ValueError, OverflowError)):
        parse_chart(payload)


def test_an_integer_no_float_can_hold_is_no_price() -> None:
    """JSON integers have no length limit (the cache's fallback decoder keeps them whole): one
    too large for a float is no close, in either parser, rather than an OverflowError."""
    day = 86_400
    payload = {
        "chart": {
            "result": [
                {
                    "meta": {"symbol": "big"},
                    "timestamp": [19_000 * day, 19_001 * day, 19_002 * day],
                    "indicators": {"quote": [{"close": [1.0, 10**400, 3.0]}]},
                }
            ]
        }
    }
    assert closes_by_arrays(payload) == closes_by_bars(payload)
    assert [c for _, c in closes_by_arrays(payload)] == [1.0, 3.0]
