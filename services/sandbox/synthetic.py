"""Deterministic synthetic numbers: seeds, trading calendars and random walks.

Everything the sandbox serves is a pure function of (what was asked, the calendar date), so the
same request always gets the same answer. A price on a given day depends only on the symbol and
that day — never on the range that was asked for — because each calendar year is an independent
Brownian bridge pinned between two per-year anchors: any day is computed from its own year alone,
and adjacent years meet at the shared anchor, so the walk is continuous.
"""

from __future__ import annotations

import hashlib
import math
import random
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np

ANCHOR_YEAR = 2026
"""Walks are centred so that a symbol trades near its base price in this year."""


def seed_for(*parts: object) -> int:
    """A 64-bit seed from any parts (stable across runs and machines, unlike `hash()`)."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def rng_for(*parts: object) -> random.Random:
    return random.Random(seed_for(*parts))


def unit_for(*parts: object) -> float:
    """A deterministic number in [0, 1) for the given parts."""
    return seed_for(*parts) / 2**64


# --- calendars ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Market:
    """Where a symbol trades: its calendar, time zone and the local time of its daily bar."""

    name: str  # "us", "asx" or "crypto"
    tz: str
    close: time
    open: time
    holidays: tuple[tuple[int, int], ...]  # (month, day) closed every year
    weekends: bool  # closed on weekends


US = Market("us", "America/New_York", time(16, 0), time(9, 30), ((1, 1), (7, 4), (12, 25)), True)
ASX = Market(
    "asx",
    "Australia/Sydney",
    time(16, 0),
    time(10, 0),
    ((1, 1), (1, 26), (4, 25), (12, 25), (12, 26)),
    True,
)
CRYPTO = Market("crypto", "UTC", time(0, 0), time(0, 0), (), False)
# Currency pairs trade round the clock on weekdays; Yahoo dates their daily bar at 00:00 London.
FX = Market("fx", "Europe/London", time(0, 0), time(0, 0), (), True)


def is_trading_day(day: date, market: Market) -> bool:
    if market.weekends and day.weekday() >= 5:
        return False
    return (day.month, day.day) not in market.holidays


@lru_cache(maxsize=512)
def trading_days(year: int, market: Market) -> tuple[date, ...]:
    first = date(year, 1, 1)
    days = (first + timedelta(days=i) for i in range((date(year + 1, 1, 1) - first).days))
    return tuple(d for d in days if is_trading_day(d, market))


def bar_timestamp(day: date, market: Market) -> int:
    """Unix time of a daily bar: the market's close in its own time zone (crypto: 00:00 UTC)."""
    local = datetime.combine(day, market.close, tzinfo=ZoneInfo(market.tz))
    return int(local.timestamp())


def local_today(now: datetime, market: Market) -> date:
    return now.astimezone(ZoneInfo(market.tz)).date()


# --- walks -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WalkShape:
    """How a series moves: daily log-volatility, yearly drift and how far yearly anchors scatter."""

    daily_sigma: float
    annual_drift: float
    anchor_sigma: float


def _anchor(key: str, year: int, shape: WalkShape) -> float:
    if year == ANCHOR_YEAR:
        return 0.0
    # Anchors scatter around the drift line; ANCHOR_YEAR is pinned at 0 (the base price).
    return shape.annual_drift * (year - ANCHOR_YEAR) + rng_for(key, "anchor", year).gauss(
        0.0, shape.anchor_sigma
    )


@dataclass(frozen=True)
class Walk:
    """Everything that determines a symbol's bars (hashable: it keys the per-year cache)."""

    key: str
    market: Market
    shape: WalkShape
    base: float
    base_volume: float
    decimals: int  # prices are rounded once, when a year is generated


@dataclass(frozen=True)
class Bars:
    """Daily bars in columns (what the chart payload is made of), oldest first."""

    days: list[date]
    timestamps: list[int]
    open: list[float]
    high: list[float]
    low: list[float]
    close: list[float]
    volume: list[int]

    def __len__(self) -> int:
        return len(self.days)

    def tail(self, count: int) -> Bars:
        return self.slice(max(0, len(self) - count), len(self))

    def slice(self, lo: int, hi: int) -> Bars:
        return Bars(
            self.days[lo:hi],
            self.timestamps[lo:hi],
            self.open[lo:hi],
            self.high[lo:hi],
            self.low[lo:hi],
            self.close[lo:hi],
            self.volume[lo:hi],
        )

    def extend(self, other: Bars) -> None:
        self.days.extend(other.days)
        self.timestamps.extend(other.timestamps)
        self.open.extend(other.open)
        self.high.extend(other.high)
        self.low.extend(other.low)
        self.close.extend(other.close)
        self.volume.extend(other.volume)


def _empty() -> Bars:
    return Bars([], [], [], [], [], [], [])


@lru_cache(maxsize=512)
def day_timestamps(year: int, market: Market) -> tuple[int, ...]:
    """Bar timestamps of a market's trading days in `year` (shared by every symbol)."""
    return tuple(bar_timestamp(d, market) for d in trading_days(year, market))


@dataclass(frozen=True)
class YearBars:
    """One symbol's year, compact (numpy columns; days and timestamps shared by all symbols)."""

    days: tuple[date, ...]
    timestamps: tuple[int, ...]
    columns: np.ndarray  # rows: open, high, low, close (rounded), volume

    def bars(self, lo: int, hi: int) -> Bars:
        o, h, low, c, v = self.columns[:, lo:hi]
        return Bars(
            list(self.days[lo:hi]),
            list(self.timestamps[lo:hi]),
            o.tolist(),
            h.tolist(),
            low.tolist(),
            c.tolist(),
            v.astype(np.int64).tolist(),
        )


@lru_cache(maxsize=1024)
def year_bars(walk: Walk, year: int) -> YearBars:
    """Daily OHLCV of one symbol in `year`: a Brownian bridge in log space between two anchors.

    numpy draws the noise (one generator per symbol and year, so any year is computed alone).
    """
    days = trading_days(year, walk.market)
    n = len(days)
    noise = np.random.default_rng(seed_for(walk.key, "walk", year)).standard_normal((4, n + 1))
    a0, a1 = _anchor(walk.key, year, walk.shape), _anchor(walk.key, year + 1, walk.shape)
    sigma = walk.shape.daily_sigma
    walked = np.cumsum(noise[0] * sigma)
    t = np.arange(1, n + 1) / (n + 1)
    level = a0 + t * (a1 - a0) + walked[:n] - t * walked[n]
    close = walk.base * np.exp(level)
    prev = np.concatenate(([walk.base * math.exp(a0)], close[:-1]))
    open_ = prev * np.exp(noise[1, :n] * sigma * 0.3)
    spread = np.abs(noise[2, :n] * sigma * 0.6)
    high = np.maximum(open_, close) * (1.0 + spread)
    low = np.minimum(open_, close) * (1.0 - spread * 0.9)
    volume = np.round(walk.base_volume * np.exp(noise[3, :n] * 0.35))
    prices = np.round(np.vstack((open_, high, low, close)), walk.decimals)
    return YearBars(days, day_timestamps(year, walk.market), np.vstack((prices, volume)))


def bars_between(walk: Walk, first: date, last: date) -> Bars:
    """Every bar with first <= day <= last, in date order."""
    out = _empty()
    for year in range(first.year, last.year + 1):
        yb = year_bars(walk, year)
        out.extend(yb.bars(bisect_left(yb.days, first), bisect_right(yb.days, last)))
    return out


def last_bars(walk: Walk, last: date, count: int) -> Bars:
    """The `count` most recent bars on or before `last`."""
    span = max(10, int(count * 1.6) + 10)
    while True:
        bars = bars_between(walk, last - timedelta(days=span), last)
        if len(bars) >= count or span > 40_000:
            return bars.tail(count)
        span *= 2


def utc_midnight(day: date) -> int:
    return int(datetime.combine(day, time(0, 0), tzinfo=UTC).timestamp())
