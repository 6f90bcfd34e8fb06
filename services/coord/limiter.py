"""Rate limiters per (upstream, service): one interface, three backends, one pacing rule.

* `LocalLimiter`   — this process only: aiolimiter's no-burst form, exactly as the client does
  today (one call per 1/rate s from the previous call's start).
* `MachineLimiter` — every process on the machine that uses the same data root: the last
  booked slot lives in `state/coord.sqlite` (see `statedb` for why SQLite).
* `RedisLimiter`   — every process on every machine that uses the same Redis: one Lua script
  reserves the next slot with the *server's* clock (`TIME`), so machines' clocks may disagree.
  Why not a library: pyrate-limiter's Redis bucket can express 1 call per 200 ms, but it stamps
  items with each client's own clock and, when refused, sleeps and retries, so the waiters of all
  processes wake together and race (polling, no order); `limits`' async Redis storage counts
  whole-second windows (no 1-per-200 ms) and its `hit()` only says yes or no, leaving the waiting
  (polling again) to the caller. The script below is ten lines and makes one round trip.

The two shared backends follow `pacing` (reserve, sleep without a lock, go only if on time).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from aiolimiter import AsyncLimiter

from services.coord.keys import Scope, rate_key
from services.coord.pacing import PaceStats, Pacing, paced, reserve

if TYPE_CHECKING:
    import sqlite3

    from redis.asyncio import Redis

    from services.coord.statedb import StateDB


class RateLimiter(Protocol):
    scope: Scope

    async def acquire(self) -> None:
        """Wait for this scope's next call slot; the call may start when this returns."""


class LocalLimiter:
    """In-process pacing (aiolimiter, no burst): today's behaviour."""

    def __init__(self, scope: Scope, rate_per_second: float) -> None:
        self.scope = scope
        self.pacing = Pacing(rate_per_second, tolerance=0.0)
        self._limiter = AsyncLimiter(1, 1.0 / rate_per_second)

    async def acquire(self) -> None:
        await self._limiter.acquire()


class MachineLimiter:
    """Shared by the processes of one data root through `state/coord.sqlite`."""

    def __init__(
        self,
        scope: Scope,
        rate_per_second: float,
        db: StateDB,
        *,
        wall: Callable[[], float] | None = None,
    ) -> None:
        self.scope = scope
        self.pacing = Pacing(rate_per_second)
        self.stats = PaceStats()
        self._db = db
        self._wall: Callable[[], float] = wall or time.time

    async def acquire(self) -> None:
        await paced(self._book, self.pacing, self.stats, exact=True)

    async def _book(self) -> tuple[float, bool]:
        """(seconds from now until the slot, booked): measured on the wall clock the slot is
        kept on, when the transaction is over (it may have queued behind other callers)."""
        slot, booked = await self._db.transact(self._book_in)
        return slot - self._wall(), booked

    def _book_in(self, db: sqlite3.Connection) -> tuple[float, bool]:
        scope, now = self.scope, self._wall()
        row = db.execute(
            "SELECT last_slot FROM pacing WHERE upstream=? AND service=?",
            (scope.upstream, scope.service),
        ).fetchone()
        slot, booked = reserve(float(row[0]) if row else None, now, self.pacing)
        if booked:
            db.execute(
                "INSERT INTO pacing (upstream, service, last_slot) VALUES (?, ?, ?) "
                "ON CONFLICT (upstream, service) DO UPDATE SET last_slot = excluded.last_slot",
                (scope.upstream, scope.service, slot),
            )
        return slot, booked


# Microseconds of the server clock. The key holds the last slot booked and expires once idle
# (an interval after that slot, plus a second). Returns {wait, booked}.
RESERVE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local horizon = tonumber(ARGV[2])
local lookahead = tonumber(ARGV[3])
local last = tonumber(redis.call('GET', KEYS[1]) or '')
local slot = now
if last ~= nil and last <= now + horizon then slot = math.max(now, last + interval) end
if slot - now > lookahead then return {slot - now, 0} end
redis.call('SET', KEYS[1], string.format('%d', slot),
           'PX', math.floor((slot + interval - now) / 1000) + 1000)
return {slot - now, 1}
"""


class RedisLimiter:
    """Shared by every process that uses this Redis; see the module docstring."""

    def __init__(self, scope: Scope, rate_per_second: float, redis: Redis) -> None:
        self.scope = scope
        self.pacing = Pacing(rate_per_second)
        self.stats = PaceStats()
        self._key = rate_key(scope)
        self._script = redis.register_script(RESERVE_LUA)
        self._args = (
            round(self.pacing.interval * 1e6),
            round(self.pacing.horizon * 1e6),
            round(self.pacing.lookahead * 1e6),
        )

    async def acquire(self) -> None:
        await paced(self._book, self.pacing, self.stats)

    async def _book(self) -> tuple[float, bool]:
        wait_us, booked = await self._script(keys=[self._key], args=list(self._args))
        return int(wait_us) / 1e6, bool(int(booked))
